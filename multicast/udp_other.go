//go:build !linux

package multicast

import (
	"errors"
	"net"
	"net/netip"
)

// BUG(hanode): Listen is implemented for Linux only; elsewhere it returns
// an error. MemNetwork works everywhere.

type udpLink struct {
	link
	local   netip.AddrPort
	granted int
	other   interface{ Load() uint64 }
}

func openUDP(Config, *net.Interface, netip.Addr) (*udpLink, error) {
	return nil, errors.New("multicast: Listen is only supported on Linux")
}
