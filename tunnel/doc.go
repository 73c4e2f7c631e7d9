// Package tunnel is the connector-to-gateway tunnel of DESIGN section 5: mutual TLS
// with connector identities (a SAN URI cmg://<site>/<name>), a versioned hello and
// its ack, then a yamux session on which only the gateway opens streams: first one
// control stream (pings, route and role-health updates, drain notices,
// notifications), then one fresh stream per device request.
//
// The gateway side is Server, with its Registry of live sessions by connector and
// site; the connector side is Client, which dials every gateway instance, keeps
// each tunnel up on its own with jittered exponential backoff, and serves the
// streams it is given to an http.Handler.
package tunnel
