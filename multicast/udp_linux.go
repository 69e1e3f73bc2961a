package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Socket options not exported by package syscall on every architecture.
const (
	soReusePort     = 0xf // SO_REUSEPORT
	ipMulticastAll  = 49  // IP_MULTICAST_ALL
	readBufferBytes = MaxUDPPayload + 1
)

// udpLink is the Linux UDP implementation of link.
type udpLink struct {
	group   netip.AddrPort
	gconn   *net.UDPConn // bound to the group
	uconn   *net.UDPConn // bound to the interface address
	local   netip.AddrPort
	granted int
	wg      sync.WaitGroup
	once    sync.Once
	closed  atomic.Bool
	other   atomic.Uint64 // datagrams for other groups
}

func sockopt(c syscall.RawConn, f func(fd int) error) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = f(int(fd)) }); err != nil {
		return err
	}
	return serr
}

func openUDP(cfg Config, ifi *net.Interface, ifAddr netip.Addr) (*udpLink, error) {
	group := cfg.Group
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return sockopt(c, func(fd int) error {
			if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
				return fmt.Errorf("SO_REUSEADDR: %w", err)
			}
			if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, soReusePort, 1); err != nil {
				return fmt.Errorf("SO_REUSEPORT: %w", err)
			}
			return nil
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("multicast: bind group socket %s: %w", group, err)
	}
	gconn := pc.(*net.UDPConn)
	fail := func(err error) (*udpLink, error) {
		gconn.Close()
		return nil, err
	}
	graw, err := gconn.SyscallConn()
	if err != nil {
		return fail(err)
	}
	mreq := &syscall.IPMreqn{Multiaddr: group.Addr().As4(), Address: ifAddr.As4(), Ifindex: int32(ifi.Index)}
	err = sockopt(graw, func(fd int) error {
		if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("join %s on %s: %w", group.Addr(), ifi.Name, err)
		}
		// Only the groups this socket joined, not those of other sockets.
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, ipMulticastAll, 0); err != nil {
			return fmt.Errorf("IP_MULTICAST_ALL: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1); err != nil {
			return fmt.Errorf("IP_PKTINFO: %w", err)
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("multicast: %w", err))
	}
	if err := gconn.SetReadBuffer(cfg.RecvBuffer); err != nil {
		return fail(fmt.Errorf("multicast: set receive buffer: %w", err))
	}
	granted := 0
	_ = sockopt(graw, func(fd int) error {
		v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		granted = v / 2 // Linux reports twice the usable size
		return err
	})

	uconn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ifAddr, cfg.UnicastPort)))
	if err != nil {
		return fail(fmt.Errorf("multicast: bind unicast socket on %s: %w", ifAddr, err))
	}
	uraw, err := uconn.SyscallConn()
	if err != nil {
		uconn.Close()
		return fail(err)
	}
	loop := 0
	if cfg.Loopback {
		loop = 1
	}
	err = sockopt(uraw, func(fd int) error {
		ifreq := &syscall.IPMreqn{Address: ifAddr.As4(), Ifindex: int32(ifi.Index)}
		if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, ifreq); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF %s: %w", ifi.Name, err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, cfg.TTL); err != nil {
			return fmt.Errorf("IP_MULTICAST_TTL: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, loop); err != nil {
			return fmt.Errorf("IP_MULTICAST_LOOP: %w", err)
		}
		return nil
	})
	if err == nil {
		err = uconn.SetReadBuffer(cfg.RecvBuffer)
	}
	if err != nil {
		uconn.Close()
		return fail(fmt.Errorf("multicast: %w", err))
	}
	return &udpLink{
		group:   group,
		gconn:   gconn,
		uconn:   uconn,
		local:   uconn.LocalAddr().(*net.UDPAddr).AddrPort(),
		granted: granted,
	}, nil
}

func (l *udpLink) send(b []byte, to netip.AddrPort) error {
	if !to.IsValid() {
		to = l.group
	}
	_, err := l.uconn.WriteToUDPAddrPort(b, to)
	return err
}

func (l *udpLink) start(recv func([]byte, netip.AddrPort) bool) {
	l.wg.Add(2)
	go l.read(l.gconn, true, recv)
	go l.read(l.uconn, false, recv)
}

func (l *udpLink) read(c *net.UDPConn, filter bool, recv func([]byte, netip.AddrPort) bool) {
	defer l.wg.Done()
	buf := make([]byte, readBufferBytes)
	oob := make([]byte, 128)
	want := l.group.Addr().As4()
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if filter && !dstIs(oob[:oobn], want) {
			l.other.Add(1)
			continue
		}
		if !recv(append([]byte(nil), buf[:n]...), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())) {
			return
		}
	}
}

// dstIs reports whether the IP_PKTINFO control message names dst as the
// datagram's destination address.
func dstIs(oob []byte, dst [4]byte) bool {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_PKTINFO && len(m.Data) >= int(unsafe.Sizeof(syscall.Inet4Pktinfo{})) {
			info := (*syscall.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
			return info.Addr == dst
		}
	}
	return false
}

func (l *udpLink) close() error {
	var err error
	l.once.Do(func() {
		l.closed.Store(true)
		err = errors.Join(l.gconn.Close(), l.uconn.Close())
	})
	l.wg.Wait()
	return err
}

// extraRejected reports drops made below the engine.
func (l *udpLink) extraRejected() map[string]uint64 {
	return map[string]uint64{"other_group": l.other.Load()}
}
