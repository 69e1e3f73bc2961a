package multicast

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNoInterface is returned by Listen when Config.Interface is empty or
// names no usable IPv4 interface. There is deliberately no wildcard default:
// a group joined on the wrong interface silently receives nothing.
var ErrNoInterface = errors.New("multicast: an explicit IPv4 multicast interface is required (Config.Interface)")

// Listen joins cfg.Group on cfg.Interface and returns a running Transport.
//
// It opens two sockets. The group socket is bound to the group address and
// port with SO_REUSEADDR and SO_REUSEPORT, so several processes on one
// host can share the port; it joins the group on the configured interface
// only and drops datagrams whose destination (IP_PKTINFO) is not the group,
// so other groups on the same port are ignored. The unicast socket is
// bound to the interface's IPv4 address (Config.UnicastPort, default
// ephemeral); it sends the multicasts, so receivers learn a unicast reply
// address, and receives repairs, acks and unicast control messages.
func Listen(cfg Config) (Transport, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ifi, ifAddr, err := resolveInterface(cfg.Interface)
	if err != nil {
		return nil, err
	}
	l, err := openUDP(cfg, ifi, ifAddr)
	if err != nil {
		return nil, err
	}
	rt := newRuntime(cfg, l)
	rt.recvBuffer, rt.recvClamped = l.granted, l.granted < cfg.RecvBuffer
	if rt.recvClamped {
		cfg.Logger.Warn("multicast: kernel granted a smaller receive buffer than asked; raise net.core.rmem_max",
			"subsystem", "multicast", "asked", cfg.RecvBuffer, "granted", l.granted)
	}
	cfg.Logger.Info("multicast: joined group", "subsystem", "multicast", "group", cfg.Group, "interface", ifi.Name,
		"unicast", l.local, "member", rt.eng.id)
	rt.start()
	return rt, nil
}

// resolveInterface finds the interface named by s (a name or one of its
// IPv4 addresses) and its first IPv4 address.
func resolveInterface(s string) (*net.Interface, netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, netip.Addr{}, ErrNoInterface
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("multicast: list interfaces: %w", err)
	}
	want, isAddr := netip.ParseAddr(s)
	if isAddr == nil && (!want.Is4() || want.IsUnspecified()) {
		return nil, netip.Addr{}, fmt.Errorf("%w: %q is not a specific IPv4 address", ErrNoInterface, s)
	}
	for i := range ifs {
		ifi := &ifs[i]
		if isAddr != nil && ifi.Name != s {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var first netip.Addr
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil || !pfx.Addr().Is4() {
				continue
			}
			if isAddr == nil && pfx.Addr() == want {
				first = want
				break
			}
			if isAddr != nil && !first.IsValid() {
				first = pfx.Addr()
			}
		}
		if !first.IsValid() {
			if isAddr != nil {
				return nil, netip.Addr{}, fmt.Errorf("%w: interface %s has no IPv4 address", ErrNoInterface, s)
			}
			continue
		}
		if ifi.Flags&net.FlagUp == 0 {
			return nil, netip.Addr{}, fmt.Errorf("%w: interface %s is down", ErrNoInterface, ifi.Name)
		}
		if ifi.Flags&net.FlagMulticast == 0 {
			return nil, netip.Addr{}, fmt.Errorf("%w: interface %s does not support multicast", ErrNoInterface, ifi.Name)
		}
		return ifi, first, nil
	}
	return nil, netip.Addr{}, fmt.Errorf("%w: no interface %q", ErrNoInterface, s)
}
