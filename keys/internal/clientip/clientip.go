// Package clientip groups client addresses the way the auth throttle
// (keys/limits) and the anomaly detector (keys/audit) both count them.
package clientip

import "net/netip"

// Group parses a client address and groups it: an IPv4-mapped address is
// unmapped, and an IPv6 one becomes its /64 (what one host or household
// is usually given, so rotating through it does not evade a count). An
// unparsable ip gives the zero Addr.
func Group(ip string) netip.Addr {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		a = p.Addr()
	}
	return a
}
