package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
)

// ErrNoInterface is returned by Listen when Config.Interface is empty or
// names no usable IPv4 interface. There is deliberately no wildcard default:
// a group joined on the wrong interface silently receives nothing.
var ErrNoInterface = errors.New("multicast: an explicit IPv4 multicast interface is required (Config.Interface)")

// Listen joins cfg.Group on cfg.Interface and returns a running Transport.
// With cfg.Peers or cfg.Discovery set it joins no group and runs in
// unicast mode instead (see Config.Peers): one socket bound to the
// interface's address and the group's port.
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
	if cfg.Unicast() {
		return listenUnicast(cfg)
	}
	ifi, ifAddr, err := ResolveInterface(cfg.Interface, true)
	if err != nil {
		return nil, err
	}
	l, err := openUDP(cfg, ifi, ifAddr)
	if err != nil {
		return nil, err
	}
	rt := newRuntime(cfg, l)
	log := rt.cfg.Logger // derived once by newRuntime
	rt.recvBuffer, rt.recvClamped = l.granted, l.granted < cfg.RecvBuffer
	if rt.recvClamped {
		log.Warn("multicast: kernel granted a smaller receive buffer than asked; raise net.core.rmem_max",
			"asked", cfg.RecvBuffer, "granted", l.granted)
	}
	log.Info("multicast: joined group", "group", cfg.Group, "interface", ifi.Name,
		"unicast", l.local, "member", rt.eng.id)
	rt.start()
	return rt, nil
}

// readBufferBytes is the read buffer of each socket: one more than the
// largest UDP payload, so that an oversized datagram reaches the engine
// (and is rejected there) instead of being truncated.
const readBufferBytes = MaxUDPPayload + 1

// udpLink is the UDP implementation of link: a group socket and a unicast
// socket, set up with golang.org/x/net/ipv4. The options that package does
// not cover (port sharing, IP_MULTICAST_ALL, reading back the receive
// buffer) are in the platform files.
type udpLink struct {
	group   netip.AddrPort
	ifIndex int
	gconn   *net.UDPConn // bound to the group
	uconn   *net.UDPConn // bound to the interface address
	local   netip.AddrPort
	granted int
	wg      sync.WaitGroup
	once    sync.Once
	closed  atomic.Bool
	other   atomic.Uint64 // datagrams for other groups
	otherIf atomic.Uint64 // group datagrams that arrived on another interface
}

func openUDP(cfg Config, ifi *net.Interface, ifAddr netip.Addr) (*udpLink, error) {
	if err := udpSupported(); err != nil {
		return nil, err
	}
	group := cfg.Group
	gconn, err := ListenGroup(group, ifi, cfg.RecvBuffer)
	if err != nil {
		return nil, fmt.Errorf("multicast: %w", err)
	}
	granted, _ := grantedRecvBuffer(gconn)

	uconn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ifAddr, cfg.UnicastPort)))
	if err != nil {
		gconn.Close()
		return nil, fmt.Errorf("multicast: bind unicast socket on %s: %w", ifAddr, err)
	}
	err = SetMulticastSender(uconn, ifi, cfg.TTL, cfg.Loopback)
	if err == nil {
		err = uconn.SetReadBuffer(cfg.RecvBuffer)
	}
	if err != nil {
		uconn.Close()
		gconn.Close()
		return nil, fmt.Errorf("multicast: %w", err)
	}
	return &udpLink{
		group:   group,
		ifIndex: ifi.Index,
		gconn:   gconn,
		uconn:   uconn,
		local:   uconn.LocalAddr().(*net.UDPAddr).AddrPort(),
		granted: granted,
	}, nil
}

// ListenGroup opens the socket that receives group's datagrams on ifi:
// bound to the group address and port with SO_REUSEADDR and SO_REUSEPORT
// (several processes of a host can share the group) and IP_MULTICAST_ALL
// off (it receives only the groups it joined), joined on ifi only (never
// a default interface), asking for each datagram's destination address and
// arrival interface (IP_PKTINFO), with a receive buffer of recvBuffer
// bytes. The transports and hanode probe open their group socket with it.
// Linux only.
func ListenGroup(group netip.AddrPort, ifi *net.Interface, recvBuffer int) (*net.UDPConn, error) {
	if err := udpSupported(); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: groupSocketControl}
	pc, err := lc.ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("bind group socket %s: %w", group, err)
	}
	c := pc.(*net.UDPConn)
	p := ipv4.NewPacketConn(c)
	if err := p.JoinGroup(ifi, &net.UDPAddr{IP: net.IP(group.Addr().AsSlice())}); err != nil {
		c.Close()
		return nil, fmt.Errorf("join %s on %s: %w", group.Addr(), ifi.Name, err)
	}
	if err := p.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("IP_PKTINFO: %w", err)
	}
	if err := c.SetReadBuffer(recvBuffer); err != nil {
		c.Close()
		return nil, fmt.Errorf("set receive buffer: %w", err)
	}
	return c, nil
}

// SetMulticastSender makes c send multicast out of ifi with ttl, looping
// its datagrams back to this host when loopback is true.
func SetMulticastSender(c *net.UDPConn, ifi *net.Interface, ttl int, loopback bool) error {
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("IP_MULTICAST_IF %s: %w", ifi.Name, err)
	}
	if err := p.SetMulticastTTL(ttl); err != nil {
		return fmt.Errorf("IP_MULTICAST_TTL: %w", err)
	}
	if err := p.SetMulticastLoopback(loopback); err != nil {
		return fmt.Errorf("IP_MULTICAST_LOOP: %w", err)
	}
	return nil
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
	var oob []byte
	var cm ipv4.ControlMessage
	if filter {
		oob = ipv4.NewControlMessage(ipv4.FlagDst | ipv4.FlagInterface)
		cm.Dst = make(net.IP, net.IPv4len) // reused: Parse copies into it
	}
	want := net.IP(l.group.Addr().AsSlice())
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if filter {
			clear(cm.Dst) // no IP_PKTINFO: 0.0.0.0, dropped
			cm.IfIndex = 0
			if cm.Parse(oob[:oobn]) != nil || !cm.Dst.Equal(want) {
				l.other.Add(1)
				continue
			}
			if cm.IfIndex != 0 && cm.IfIndex != l.ifIndex {
				l.otherIf.Add(1)
				continue
			}
		}
		if !recv(append([]byte(nil), buf[:n]...), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())) {
			return
		}
	}
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
	return map[string]uint64{"other_group": l.other.Load(), "other_interface": l.otherIf.Load()}
}
