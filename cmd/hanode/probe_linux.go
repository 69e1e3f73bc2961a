//go:build linux

package main

// Local checks of `hanode probe` that read Linux's state: the routing
// decision for the group, /proc/net/igmp, the receive buffer.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/hanode/hanode/multicast"
)

// probeOpenGroup opens the group socket as the transport does
// (multicast.ListenGroup: joined on ifi only, IP_MULTICAST_ALL 0,
// IP_PKTINFO, SO_REUSEADDR so that a probe and hanode can share the
// port) with hanode's receive buffer.
func probeOpenGroup(group netip.AddrPort, ifi *net.Interface, ifAddr netip.Addr) (*net.UDPConn, error) {
	return multicast.ListenGroup(group, ifi, probeRecvAsk)
}

// probeOpenUnicast binds the unicast socket on the interface's address
// and the probe port. Linux takes a socket bound to the group address and
// one bound to the interface address on the same port for a conflict
// unless both set SO_REUSEADDR.
func probeOpenUnicast(addr netip.AddrPort) (*net.UDPConn, error) {
	pc, err := reuseAddrListen().ListenPacket(context.Background(), "udp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	c := pc.(*net.UDPConn)
	_ = c.SetReadBuffer(probeRecvAsk)
	return c, nil
}

// reuseAddrListen sets SO_REUSEADDR before the bind (the unicast socket
// shares the group socket's port).
func reuseAddrListen() *net.ListenConfig {
	return &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				serr = fmt.Errorf("SO_REUSEADDR: %w", err)
			}
		}); err != nil {
			return err
		}
		return serr
	}}
}

// probeSetSender makes c send multicast out of ifi with ttl
// (multicast.SetMulticastSender).
func probeSetSender(c *net.UDPConn, ifi *net.Interface, ifAddr netip.Addr, ttl int, loop bool) error {
	return multicast.SetMulticastSender(c, ifi, ttl, loop)
}

// probePktDst returns the destination address from the IP_PKTINFO control
// message of a datagram read from a probeOpenGroup socket.
func probePktDst(oob []byte) (netip.Addr, bool) {
	var cm ipv4.ControlMessage
	if err := cm.Parse(oob); err != nil || cm.Dst == nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(cm.Dst.To4())
	return a, ok
}

// procRoute is one line of /proc/net/route (the main table).
type procRoute struct {
	Iface  string
	Dst    netip.Prefix
	Metric int
}

// parseProcRoute parses /proc/net/route (addresses in host byte order).
func parseProcRoute(s string) []procRoute {
	var out []procRoute
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		mask, err3 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || flags&1 == 0 { // RTF_UP
			continue
		}
		var d, m [4]byte
		binary.NativeEndian.PutUint32(d[:], uint32(dst))
		binary.NativeEndian.PutUint32(m[:], uint32(mask))
		ones := bits.OnesCount32(binary.BigEndian.Uint32(m[:]))
		out = append(out, procRoute{Iface: f[0], Dst: netip.PrefixFrom(netip.AddrFrom4(d), ones), Metric: atoiDefault(f[6], 0)})
	}
	return out
}

// bestRoute returns the most specific route of routes to ip.
func bestRoute(routes []procRoute, ip netip.Addr) (procRoute, bool) {
	var best procRoute
	found := false
	for _, r := range routes {
		if !r.Dst.Contains(ip) {
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() || r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric {
			best, found = r, true
		}
	}
	return best, found
}

// probeRouteCheck asks the kernel where a socket that does not pin the
// interface would send to the group (like `ip route get GROUP`): a
// connected UDP socket fails with "network is unreachable" without a
// route, and its source address names the outgoing interface.
func probeRouteCheck(group netip.AddrPort, ifi *net.Interface, ifAddr netip.Addr) probeCheck {
	c := probeCheck{Name: "route", Level: "ok"}
	table := "/proc/net/route unreadable"
	var viaTable string
	if s, err := readProcFile("/proc/net/route"); err == nil {
		if r, ok := bestRoute(parseProcRoute(s), group.Addr()); ok {
			viaTable = r.Iface
			table = fmt.Sprintf("/proc/net/route: %s dev %s", r.Dst, r.Iface)
		} else {
			table = "/proc/net/route: no 224.0.0.0/4 or default route"
		}
	}
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(group))
	if err != nil {
		c.Level = "warn"
		c.Detail = fmt.Sprintf("no route for %s (%v); %s", group.Addr(), unwrapSyscall(err), table)
		return c
	}
	src := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	conn.Close()
	outIf := viaTable
	if src != ifAddr {
		if out, _, err := multicast.LookupInterface(src.String()); err == nil {
			outIf = out.Name
		}
	}
	if outIf != "" && outIf != ifi.Name {
		c.Level = "warn"
		c.Detail = fmt.Sprintf("route for %s goes out %s (source %s), not %s; %s", group.Addr(), outIf, src, ifi.Name, table)
		return c
	}
	c.Detail = fmt.Sprintf("%s routes out %s (source %s); %s", group.Addr(), ifi.Name, src, table)
	return c
}

func unwrapSyscall(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// igmpGroups parses /proc/net/igmp: the groups joined per device.
func igmpGroups(s string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	dev := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "Idx" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			if len(f) >= 2 {
				dev = strings.TrimSuffix(f[1], ":")
			}
			continue
		}
		v, err := strconv.ParseUint(f[0], 16, 32)
		if err != nil || dev == "" {
			continue
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(v))
		out[dev] = append(out[dev], netip.AddrFrom4(a))
	}
	return out
}

// probeJoinedCheck confirms in /proc/net/igmp that the kernel holds the
// membership of group on the interface.
func probeJoinedCheck(group netip.Addr, ifi *net.Interface) probeCheck {
	c := probeCheck{Name: "joined"}
	s, err := readProcFile("/proc/net/igmp")
	if err != nil {
		c.Level, c.Detail = "skip", "cannot read /proc/net/igmp: "+err.Error()
		return c
	}
	for _, g := range igmpGroups(s)[ifi.Name] {
		if g == group {
			c.Level, c.Detail = "ok", fmt.Sprintf("%s joined on %s (/proc/net/igmp)", group, ifi.Name)
			return c
		}
	}
	c.Level, c.Detail = "fail", fmt.Sprintf("%s not listed for %s in /proc/net/igmp", group, ifi.Name)
	return c
}

// probeRcvbufCheck reads back the receive buffer the kernel granted
// (Linux reports twice the usable size) against what hanode asks for.
func probeRcvbufCheck(c *net.UDPConn, asked int) probeCheck {
	ch := probeCheck{Name: "rcvbuf"}
	raw, err := c.SyscallConn()
	if err != nil {
		ch.Level, ch.Detail = "skip", err.Error()
		return ch
	}
	got := 0
	var gerr error
	_ = raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if gerr != nil {
		ch.Level, ch.Detail = "skip", "SO_RCVBUF: "+gerr.Error()
		return ch
	}
	got /= 2
	rmem := "net.core.rmem_max unreadable in this namespace"
	if s, err := readProcFile("/proc/sys/net/core/rmem_max"); err == nil {
		rmem = "net.core.rmem_max " + strings.TrimSpace(s)
	}
	ch.Detail = fmt.Sprintf("SO_RCVBUF %d bytes usable (asked %d); %s", got, asked, rmem)
	ch.Level = "ok"
	if got < asked {
		ch.Level = "warn"
	}
	return ch
}
