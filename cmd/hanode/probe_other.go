//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
)

// BUG(hanode): hanode probe is implemented for Linux only, like the
// multicast transport.

func probeOpenGroup(netip.AddrPort, *net.Interface, netip.Addr) (*net.UDPConn, error) {
	return nil, errors.New("probe: only supported on Linux")
}

func probeOpenUnicast(netip.AddrPort) (*net.UDPConn, error) {
	return nil, errors.New("probe: only supported on Linux")
}

func probeSetSender(*net.UDPConn, *net.Interface, netip.Addr, int, bool) error {
	return errors.New("probe: only supported on Linux")
}

func probePktDst([]byte) (netip.Addr, bool) { return netip.Addr{}, false }

func probeRouteCheck(netip.AddrPort, *net.Interface, netip.Addr) probeCheck {
	return probeCheck{Name: "route", Level: "skip", Detail: "not checked on this system"}
}

func probeJoinedCheck(netip.Addr, *net.Interface) probeCheck {
	return probeCheck{Name: "joined", Level: "skip", Detail: "not checked on this system"}
}

func probeRcvbufCheck(*net.UDPConn, int) probeCheck {
	return probeCheck{Name: "rcvbuf", Level: "skip", Detail: "not checked on this system"}
}
