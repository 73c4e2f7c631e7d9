// Package roles simulates the on-premises site roles that a cloud management gateway
// relays to: a Configuration Manager management point (MP, mounted under /mp/) and a
// software update point (SUP, a WSUS server, mounted under /sup/). It answers the
// requests a real client sends, with replies shaped and sized as the calibrated
// traffic model says (client-traffic.md sections 1, 2 and 6), deterministically from
// a seed so tests can hash what they get.
//
// It also carries test helpers for the gateway's own tests under each mount
// (cmg-echo, cmg-blob, cmg-sink, ?cmg-delay=, ?cmg-status=) and counts requests and
// socket bytes per role, so the load tester can measure the site leg of egress
// independently of the gateway's counters. See README.md for each endpoint and the
// source of each size.
package roles
