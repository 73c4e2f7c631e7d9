//go:build !unix

package gateway

import "net"

// peerGone cannot look at the socket here; only a failed write notices a device
// that went away.
func peerGone(net.Conn) (gone, checked bool) { return false, false }
