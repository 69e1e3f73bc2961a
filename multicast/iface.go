package multicast

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Interface lookup, for every package that names an interface the way
// Config.Interface does: the transports here, replicator/cluster's
// state-transfer listener and hanode's probe.

// LookupInterface finds the interface that s names: an interface name, or
// one of the interface's addresses. prefix is the interface's IPv4 prefix
// holding that address when s is an IPv4 address, else its first IPv4
// prefix; it is invalid when the interface has no IPv4 address. It checks
// no flag (ResolveInterface does).
func LookupInterface(s string) (ifi *net.Interface, prefix netip.Prefix, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, netip.Prefix{}, fmt.Errorf("no interface given")
	}
	want, perr := netip.ParseAddr(s)
	if perr != nil {
		ifi, err := net.InterfaceByName(s)
		if err != nil {
			return nil, netip.Prefix{}, fmt.Errorf("no interface %q", s)
		}
		return ifi, firstIPv4(ifi, netip.Addr{}), nil
	}
	want = want.Unmap()
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("list interfaces: %w", err)
	}
	for i := range ifs {
		for _, pfx := range interfacePrefixes(&ifs[i]) {
			if pfx.Addr() == want {
				return &ifs[i], firstIPv4(&ifs[i], want), nil
			}
		}
	}
	return nil, netip.Prefix{}, fmt.Errorf("no interface has the address %s", s)
}

// ResolveInterface is LookupInterface for a transport: s must name an
// interface that is up, has an IPv4 address and, when multicast is true,
// carries multicast. addr is the IPv4 address to use on it. Errors wrap
// ErrNoInterface.
func ResolveInterface(s string, multicast bool) (ifi *net.Interface, addr netip.Addr, err error) {
	if strings.TrimSpace(s) == "" {
		return nil, netip.Addr{}, ErrNoInterface
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && (!a.Is4() || a.IsUnspecified()) {
		return nil, netip.Addr{}, fmt.Errorf("%w: %q is not a specific IPv4 address", ErrNoInterface, s)
	}
	ifi, prefix, err := LookupInterface(s)
	switch {
	case err != nil:
		return nil, netip.Addr{}, fmt.Errorf("%w: %v", ErrNoInterface, err)
	case !prefix.IsValid():
		return nil, netip.Addr{}, fmt.Errorf("%w: interface %s has no IPv4 address", ErrNoInterface, ifi.Name)
	case ifi.Flags&net.FlagUp == 0:
		return nil, netip.Addr{}, fmt.Errorf("%w: interface %s is down", ErrNoInterface, ifi.Name)
	case multicast && ifi.Flags&net.FlagMulticast == 0:
		return nil, netip.Addr{}, fmt.Errorf("%w: interface %s does not support multicast", ErrNoInterface, ifi.Name)
	}
	return ifi, prefix.Addr(), nil
}

// firstIPv4 returns ifi's IPv4 prefix holding want, or (want invalid or
// not IPv4) its first IPv4 prefix.
func firstIPv4(ifi *net.Interface, want netip.Addr) netip.Prefix {
	var first netip.Prefix
	for _, pfx := range interfacePrefixes(ifi) {
		if !pfx.Addr().Is4() {
			continue
		}
		if pfx.Addr() == want {
			return pfx
		}
		if !first.IsValid() {
			first = pfx
		}
	}
	return first
}

// interfacePrefixes returns ifi's addresses with their prefix lengths,
// IPv4 ones unmapped.
func interfacePrefixes(ifi *net.Interface) []netip.Prefix {
	addrs, _ := ifi.Addrs()
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, _ := n.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out
}
