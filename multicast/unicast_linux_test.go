package multicast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/hanode/hanode/scripts/netlab"
)

// Linux-only unicast tests: DNS discovery (with the DNS server of
// scripts/netlab) and sendmmsg errors.

// TestUnicastDiscovery: peers come from DNS and are re-resolved; a member
// removed from DNS is dropped once forgotten, not before; a transient
// failure keeps the last answer, a name that no longer exists clears it.
func TestUnicastDiscovery(t *testing.T) {
	dns := netlab.StartDNS(t, "127.0.0.1:0")
	var down sync.Mutex // held: the resolver cannot reach the server
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		if !down.TryLock() {
			return nil, errors.New("unreachable")
		}
		down.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "udp4", dns.Addr().String())
	}}
	self := netip.MustParseAddrPort("10.9.0.1:45588")
	set := newPeerSet(self)
	d := &discovery{name: "hanode.test", port: 45588, resolver: res, peers: set, link: &unicastLink{log: slogDiscard()}}
	has := func(want ...string) {
		t.Helper()
		var got []string
		for _, p := range set.targets() {
			got = append(got, p.addr.String())
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("peers %v, want %v", got, want)
		}
	}
	ip := netip.MustParseAddr
	dns.Set("hanode.test", ip("10.9.0.1"), ip("10.9.0.2"), ip("10.9.0.3"))
	d.resolve(context.Background())
	has("10.9.0.2:45588", "10.9.0.3:45588") // itself skipped
	// 10.9.0.3 is alive (the engine holds it); it leaves DNS: kept.
	set.setLearned([]netip.AddrPort{netip.MustParseAddrPort("10.9.0.3:45588")}, time.Now())
	dns.Set("hanode.test", ip("10.9.0.1"), ip("10.9.0.2"))
	d.resolve(context.Background())
	has("10.9.0.2:45588", "10.9.0.3:45588")
	// It dies (forgotten): dropped.
	set.setLearned(nil, time.Now())
	has("10.9.0.2:45588")
	// The DNS server is unreachable: the last answer stays.
	down.Lock()
	d.resolve(context.Background())
	down.Unlock()
	has("10.9.0.2:45588")
	if d.link.dnsErrors.Load() == 0 {
		t.Error("failure not counted")
	}
	// The name is gone (NXDOMAIN): no DNS peers.
	dns.Set("hanode.test")
	d.resolve(context.Background())
	has()
	// Static names resolve too, with their own port.
	dns.Set("seed.test", ip("10.9.0.7"))
	d2 := &discovery{specs: []PeerSpec{{Host: "seed.test", Port: 7000}, {Host: "10.9.0.8"}}, port: 45588, resolver: res, peers: set, link: d.link}
	d2.resolve(context.Background())
	has("10.9.0.7:7000", "10.9.0.8:45588")
}

// TestUnicastListenDiscovery runs Listen with Discovery: the name is
// resolved at start and re-resolved.
func TestUnicastListenDiscovery(t *testing.T) {
	dns := netlab.StartDNS(t, "127.0.0.1:0")
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp4", dns.Addr().String())
	}}
	dns.Set("hanode.test", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"))
	port := freePorts(t, 1)[0]
	x := startUnicast(t, port, func(c *Config) {
		c.Discovery = "dns:hanode.test"
		c.DiscoveryInterval = 50 * time.Millisecond
		c.Resolver = res
	})
	other := fmt.Sprintf("127.0.0.2:%d", port)
	if !x.knows(other) || x.knows(x.addr) {
		t.Fatalf("peers after start: %v", x.Stats().PeerDatagrams)
	}
	dns.Set("hanode.test", netip.MustParseAddr("127.0.0.1"))
	waitFor(t, 5*time.Second, "127.0.0.2 dropped after leaving DNS", func() bool { return !x.knows(other) })
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestUnicastSendBatchError: a datagram the kernel refuses in the middle of
// a sendmmsg batch is counted as an error and the others still go out.
func TestUnicastSendBatchError(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var ts []*peerEntry
	var rs []*net.UDPConn
	for i := range 4 {
		r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rs = append(rs, r)
		a := r.LocalAddr().(*net.UDPAddr).AddrPort()
		if i == 1 {
			a = netip.AddrPortFrom(a.Addr(), 0) // refused: port 0
		}
		ts = append(ts, &peerEntry{addr: a, ua: net.UDPAddrFromAddrPort(a)})
	}
	l := &unicastLink{conn: conn, pc: ipv4.NewPacketConn(conn), batch: true}
	if err := l.sendBatch([]byte("x"), ts); err == nil {
		t.Error("no error for the refused datagram")
	}
	for i, p := range ts {
		want := uint64(1)
		if i == 1 {
			want = 0
		}
		if got := p.sent.Load(); got != want {
			t.Errorf("peer %d: sent %d, want %d", i, got, want)
		}
	}
	buf := make([]byte, 16)
	for i, r := range rs {
		if i == 1 {
			continue
		}
		r.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _, err := r.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "x" {
			t.Errorf("peer %d received %q, %v", i, buf[:n], err)
		}
	}
}
