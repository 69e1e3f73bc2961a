package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/ipv4"
)

func TestParsePeers(t *testing.T) {
	good := map[string][]PeerSpec{
		"":                         nil,
		"10.0.0.1":                 {{Host: "10.0.0.1"}},
		" 10.0.0.1:7000 , node-b ": {{Host: "10.0.0.1", Port: 7000}, {Host: "node-b"}},
		"db.example.com:65535":     {{Host: "db.example.com", Port: 65535}},
		"hanode-0.hanode.default.svc.cluster.local.": {{Host: "hanode-0.hanode.default.svc.cluster.local."}},
	}
	for in, want := range good {
		got, err := ParsePeers(in)
		if err != nil {
			t.Errorf("ParsePeers(%q): %v", in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ParsePeers(%q) = %v, want %v", in, got, want)
		}
	}
	bad := map[string]string{
		"10.0.0.1,,10.0.0.2": "empty peer entry",
		"10.0.0.1:0":         "out of range",
		"10.0.0.1:65536":     "out of range",
		"10.0.0.1:http":      "out of range",
		"node:-1":            "out of range",
		"::1":                "IPv6",
		"[::1]:45588":        "IPv6",
		"fe80::1":            "IPv6",
		"239.1.2.3":          "not a unicast address",
		"0.0.0.0":            "not a unicast address",
		"10.0.0":             "not an IPv4 address or host name",
		"300.1.1.1":          "not an IPv4 address or host name",
		"bad host":           "not an IPv4 address or host name",
		"http://x":           "",
		"-x.example":         "not an IPv4 address or host name",
	}
	for in, frag := range bad {
		_, err := ParsePeers(in)
		if err == nil || !errors.Is(err, ErrPeers) || !strings.Contains(err.Error(), frag) {
			t.Errorf("ParsePeers(%q) = %v, want an ErrPeers error mentioning %q", in, err, frag)
		}
	}
}

func TestConfigPeersValidate(t *testing.T) {
	c := testConfig()
	c.Peers = []string{"10.0.0.1"}
	c.Discovery = "dns:hanode.default.svc"
	if err := c.Validate(); err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "both set") {
		t.Errorf("peers and discovery: %v", err)
	}
	c.Peers = nil
	if err := c.Validate(); err != nil {
		t.Errorf("discovery alone: %v", err)
	}
	for _, d := range []string{"hanode.svc", "dns:", "dns:10.0.0.1", "srv:x", "dns:a b"} {
		c.Discovery = d
		if err := c.Validate(); err == nil || !errors.Is(err, ErrPeers) {
			t.Errorf("discovery %q: %v", d, err)
		}
	}
	c.Discovery = ""
	c.Peers = []string{"10.0.0.1:99999"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("port: %v", err)
	}
	if !(&Config{Peers: []string{"x"}}).Unicast() || (&Config{}).Unicast() {
		t.Error("Unicast()")
	}
}

func TestPeersCodec(t *testing.T) {
	in := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:45588"), netip.MustParseAddrPort("192.168.1.2:1")}
	b := appendPeers(nil, in)
	out, err := decodePeers(b)
	if err != nil || fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("round trip: %v %v", out, err)
	}
	// Unusable addresses are skipped, not fatal.
	b = appendPeers(nil, []netip.AddrPort{netip.MustParseAddrPort("239.1.1.1:5"), netip.MustParseAddrPort("10.0.0.1:0")})
	if out, err := decodePeers(b); err != nil || len(out) != 0 {
		t.Fatalf("unusable: %v %v", out, err)
	}
	for _, b := range [][]byte{nil, {2}, {1, 10, 0, 0, 1, 0}} {
		if _, err := decodePeers(b); err == nil {
			t.Errorf("decodePeers(%v) accepted", b)
		}
	}
}

func FuzzDecodePeers(f *testing.F) {
	f.Add(appendPeers(nil, []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:45588")}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := decodePeers(b)
		if err != nil {
			return
		}
		if len(out) > maxPeerAddrs {
			t.Fatalf("%d addresses", len(out))
		}
		again, err := decodePeers(appendPeers(nil, out))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(out) {
			t.Fatalf("re-encode: %v %v", again, err)
		}
	})
}

func FuzzParsePeers(f *testing.F) {
	f.Add("10.0.0.1,node-b:7000")
	f.Add("[::1]:5")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePeers(s)
		if err != nil {
			return
		}
		for _, p := range ps {
			// Every accepted entry parses again to itself.
			q, err := ParsePeer(p.String())
			if err != nil || q != p {
				t.Fatalf("%q: %v reparsed as %v, %v", s, p, q, err)
			}
		}
	})
}

// freePorts returns n UDP ports free on 127.0.0.1 right now.
func freePorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var ports []uint16
	var conns []*net.UDPConn
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

// uniNode is a unicast transport on 127.0.0.1 with its deliveries
// collected.
type uniNode struct {
	*node
	addr string
}

func startUnicast(t *testing.T, port uint16, mod func(*Config)) *uniNode {
	t.Helper()
	cfg := testConfig()
	cfg.Interface = "127.0.0.1"
	cfg.Group = netip.AddrPortFrom(DefaultGroup.Addr(), port)
	cfg.StatusIdleInterval = 200 * time.Millisecond
	mod(&cfg)
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{Transport: tr, msgs: make(map[uuid.UUID][]Message), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range tr.Messages() {
			nd.mu.Lock()
			nd.msgs[m.From] = append(nd.msgs[m.From], m)
			nd.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev := range tr.Events() {
			nd.mu.Lock()
			nd.events = append(nd.events, ev)
			nd.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); close(nd.done) }()
	var once sync.Once
	u := &uniNode{node: nd, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	t.Cleanup(func() { once.Do(nd.stop) })
	return u
}

func (u *uniNode) knows(addr string) bool {
	_, ok := u.Stats().PeerDatagrams[addr]
	return ok
}

// shortGossip speeds up the unicast timings for a test.
func shortGossip(t *testing.T) {
	iv, ttl := peerGossipInterval, peerGossipTTL
	peerGossipInterval, peerGossipTTL = 200*time.Millisecond, time.Second
	t.Cleanup(func() { peerGossipInterval, peerGossipTTL = iv, ttl })
}

// TestUnicastSeeds: A, B and C list each other; D lists only A. Every
// member delivers every other's messages in order, D learns B and C
// through A's gossip, and B and C learn D.
func TestUnicastSeeds(t *testing.T) {
	shortGossip(t)
	ps := freePorts(t, 4)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ps[i]) }
	a := startUnicast(t, ps[0], func(c *Config) { c.Peers = []string{addr(1), addr(2)} })
	b := startUnicast(t, ps[1], func(c *Config) { c.Peers = []string{addr(0), addr(2)} })
	c := startUnicast(t, ps[2], func(c *Config) { c.Peers = []string{addr(0), addr(1), addr(2)} }) // itself too: skipped
	d := startUnicast(t, ps[3], func(c *Config) { c.Peers = []string{addr(0)} })
	nodes := []*uniNode{a, b, c, d}
	waitFor(t, 10*time.Second, "every node knowing every other", func() bool {
		for i, x := range nodes {
			for j, y := range nodes {
				if i != j && !x.knows(y.addr) {
					return false
				}
			}
		}
		return true
	})
	if c.knows(c.addr) {
		t.Error("c sends to itself")
	}
	const n, size = 50, 3000 // fragmented
	for i := range n {
		for _, x := range nodes {
			if _, err := x.Broadcast(context.Background(), payload(i, size), SendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, x := range nodes {
		for _, y := range nodes {
			if x == y {
				continue
			}
			waitFor(t, 10*time.Second, "delivery", func() bool { return x.count(y.LocalID()) >= n })
			checkInOrder(t, x.addr, x.received(y.LocalID()), n, size)
		}
	}
	// Sync acks work over unicast: every other member acknowledges.
	seq, err := d.Broadcast(context.Background(), []byte("ack me"), SendOptions{Ack: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := d.WaitAcked(ctx, seq, 3); err != nil || got < 3 {
		t.Fatalf("WaitAcked = %d, %v", got, err)
	}
	// A control message to one member goes to that member only.
	if err := d.SendControl(b.LocalID(), []byte("hello b")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "control", func() bool {
		for _, m := range b.received(d.LocalID()) {
			if m.Control && string(m.Payload) == "hello b" {
				return true
			}
		}
		return false
	})
	st := d.Stats()
	if !st.Unicast || st.PeerDatagrams[a.addr] == 0 || st.PeerDatagrams[b.addr] == 0 {
		t.Errorf("stats %+v", st)
	}
	// Sealed once, sent to each of the 3 peers: PacketsSent counts the
	// packets, PeerDatagrams the copies.
	var copies uint64
	for _, n := range st.PeerDatagrams {
		copies += n
	}
	if copies < 2*st.PacketsSent || st.PacketsSent < n {
		t.Errorf("%d packets sent, %d datagrams to peers: want about 3 copies a packet", st.PacketsSent, copies)
	}
}

// TestUnicastForget: a member that stops and is forgotten (left) or
// reported down (dead) is dropped from the peers of those that learned it
// (by traffic or gossip), while a static peer is kept.
func TestUnicastForget(t *testing.T) {
	shortGossip(t)
	ps := freePorts(t, 3)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ps[i]) }
	a := startUnicast(t, ps[0], func(c *Config) { c.Peers = []string{addr(1)} })
	b := startUnicast(t, ps[1], func(c *Config) { c.Peers = []string{addr(0)} })
	c := startUnicast(t, ps[2], func(c *Config) { c.Peers = []string{addr(0)} })
	waitFor(t, 10*time.Second, "b and c learning each other", func() bool { return b.knows(c.addr) && c.knows(b.addr) })
	cid := c.LocalID()
	c.stop()
	a.Forget(cid)                                      // left
	b.Transport.(MemberLiveness).MemberDown(cid, true) // died
	waitFor(t, 10*time.Second, "c dropped by b", func() bool { return !b.knows(c.addr) })
	if !b.knows(a.addr) {
		t.Error("b dropped its static peer a")
	}
	// a listed only b; c was learned: dropped too.
	waitFor(t, 10*time.Second, "c dropped by a", func() bool { return !a.knows(c.addr) })
}

var timeZero = time.Now()

func ipv4PacketConn(c *net.UDPConn) *ipv4.PacketConn { return ipv4.NewPacketConn(c) }
