package multicast

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Linux parts of the UDP link that golang.org/x/net/ipv4 does not cover.

func udpSupported() error { return nil }

// groupSocketControl runs before the group socket is bound: port sharing
// (SO_REUSEADDR and SO_REUSEPORT, so several processes on one host can
// bind the group and port), and IP_MULTICAST_ALL 0 so the socket receives
// only the groups it joined itself, not those joined by other sockets
// bound to the same port.
func groupSocketControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		s := int(fd)
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			serr = fmt.Errorf("SO_REUSEADDR: %w", err)
		} else if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			serr = fmt.Errorf("SO_REUSEPORT: %w", err)
		} else if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
			serr = fmt.Errorf("IP_MULTICAST_ALL: %w", err)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// grantedRecvBuffer reads back the receive buffer the kernel granted,
// which net.core.rmem_max may have clamped. Linux reports twice the
// usable size (it counts its bookkeeping overhead).
func grantedRecvBuffer(c *net.UDPConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil {
		return 0, err
	}
	return v / 2, gerr
}
