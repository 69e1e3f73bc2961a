//go:build !linux

package multicast

import (
	"errors"
	"net"
	"syscall"
)

// BUG(hanode): Listen is implemented for Linux only; elsewhere it returns
// an error. MemNetwork works everywhere.
//
// The sockets are set up with golang.org/x/net/ipv4, which is portable;
// another Unix needs only its own groupSocketControl (port sharing) and
// grantedRecvBuffer, as in udp_linux.go.

var errUDPUnsupported = errors.New("multicast: Listen is only supported on Linux")

func udpSupported() error { return errUDPUnsupported }

func groupSocketControl(string, string, syscall.RawConn) error { return errUDPUnsupported }

func grantedRecvBuffer(*net.UDPConn) (int, error) { return 0, errUDPUnsupported }
