//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// peerGone looks, without blocking and without consuming anything, at whether
// the device closed its side of the socket: a recv with MSG_PEEK|MSG_DONTWAIT on
// the descriptor. EAGAIN means the device is there and quiet. End of file, a
// reset, or any data at all (a device sends nothing on its channel after the
// request; a TLS close_notify is data) mean it is gone. checked is false when c
// gives no access to its descriptor (then only a failed write notices).
func peerGone(c net.Conn) (gone, checked bool) {
	sock := socketOf(c)
	if sock == nil {
		return false, false
	}
	rc, err := sock.SyscallConn()
	if err != nil {
		return true, true
	}
	var b [1]byte
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	switch {
	case err != nil:
		return true, true
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR:
		return false, true
	default:
		return true, true
	}
}

// socketOf finds the socket under listener wrappers (PROXY protocol, byte
// counting) that expose what they wrap.
func socketOf(c net.Conn) syscall.Conn {
	for range 8 {
		if s, ok := c.(syscall.Conn); ok {
			return s
		}
		switch u := c.(type) {
		case interface{ NetConn() net.Conn }:
			c = u.NetConn()
		case interface{ Raw() net.Conn }:
			c = u.Raw()
		case interface{ Unwrap() net.Conn }:
			c = u.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
