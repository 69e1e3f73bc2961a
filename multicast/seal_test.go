package multicast

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func testEngine(t testing.TB, mod func(*Config)) *engine {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEngine(cfg)
	e.wall = func() time.Time { return t0 } // the test clock: packets are fresh at t0
	return e
}

var addrA = netip.MustParseAddrPort("10.0.0.1:4000")

func sealedData(t testing.TB, e *engine, msg []byte) [][]byte {
	t.Helper()
	_, pkts, err := e.broadcast(msg, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, p := range pkts {
		out = append(out, p.b)
	}
	return out
}

func totalRejected(s Stats) uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

func TestSealRoundTrip(t *testing.T) {
	a, b := testEngine(t, nil), testEngine(t, nil)
	for _, p := range sealedData(t, a, []byte("hello")) {
		b.step(p, addrA, t0)
	}
	r := b.drain()
	if len(r.messages) != 1 || string(r.messages[0].Payload) != "hello" || r.messages[0].From != a.id {
		t.Fatalf("got %+v", r.messages)
	}
}

func TestSealRejects(t *testing.T) {
	other := func(c *Config) {
		var k [KeySize]byte
		k[0] = 1
		c.Keyring, _ = NewKeyring(map[uint8][KeySize]byte{1: k}, 1)
	}
	otherID := func(c *Config) {
		var k [KeySize]byte
		c.Keyring, _ = NewKeyring(map[uint8][KeySize]byte{9: k}, 9)
	}
	cases := []struct {
		name   string
		sender func(*Config)
		reason string
	}{
		{"wrong key", other, reasonAuth},
		{"unknown key id", otherID, reasonUnknownKey},
		{"wrong cluster", func(c *Config) { c.ClusterName = "other" }, reasonCluster},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := testEngine(t, tc.sender), testEngine(t, nil)
			for _, p := range sealedData(t, a, []byte("secret")) {
				b.step(p, addrA, t0)
			}
			pc, _ := a.sendControl(uuid.Nil, []byte("ctl"))
			b.step(pc.b, addrA, t0)
			r := b.drain()
			if len(r.messages) != 0 || len(r.events) != 0 || len(b.peers) != 0 {
				t.Fatalf("delivered %+v events %+v", r.messages, r.events)
			}
			if got := b.stats.Rejected[tc.reason]; got != 2 {
				t.Fatalf("rejected %v, want 2 × %s", b.stats.Rejected, tc.reason)
			}
		})
	}
}

func TestSealKeyRotation(t *testing.T) {
	var k1, k2 [KeySize]byte
	k2[0] = 2
	old, _ := NewKeyring(map[uint8][KeySize]byte{1: k1}, 1)
	both, _ := NewKeyring(map[uint8][KeySize]byte{1: k1, 2: k2}, 2)
	a := testEngine(t, func(c *Config) { c.Keyring = both })
	b := testEngine(t, func(c *Config) { c.Keyring = old })
	c := testEngine(t, func(c *Config) { c.Keyring = both })
	// a sends with the new key: c (which has it) accepts, b does not yet.
	for _, p := range sealedData(t, a, []byte("x")) {
		b.step(p, addrA, t0)
		c.step(p, addrA, t0)
	}
	if len(b.drain().messages) != 0 || b.stats.Rejected[reasonUnknownKey] != 1 {
		t.Fatal("old keyring accepted the new key")
	}
	if len(c.drain().messages) != 1 {
		t.Fatal("rotated keyring refused")
	}
	// b (old primary) → c (accepts both).
	for _, p := range sealedData(t, b, []byte("y")) {
		c.step(p, addrA, t0)
	}
	if len(c.drain().messages) != 1 {
		t.Fatal("old key refused during rotation")
	}
}

func TestSealBitFlips(t *testing.T) {
	a, b := testEngine(t, nil), testEngine(t, nil)
	pkts := sealedData(t, a, []byte("attack at dawn"))
	ctl, _ := a.sendControl(uuid.Nil, []byte("ping"))
	for _, orig := range [][]byte{pkts[0], ctl.b} {
		flips := 0
		before := totalRejected(b.stats)
		for i := range orig {
			for bit := range 8 {
				p := bytes.Clone(orig)
				p[i] ^= 1 << bit
				if i == 4 && packet.Flags(1<<bit) == packet.FlagRetransmit {
					continue // the one unauthenticated bit: same packet, checked below
				}
				b.step(p, addrA, t0)
				flips++
			}
		}
		r := b.drain()
		if len(r.messages) != 0 || len(r.events) != 0 {
			t.Fatalf("a bit-flipped packet was delivered: %+v", r.messages)
		}
		if got := totalRejected(b.stats) - before; got != uint64(flips) {
			t.Fatalf("%d of %d flipped packets rejected: %v", got, flips, b.stats.Rejected)
		}
	}
	if b.stats.Rejected[reasonAuth] == 0 || b.stats.Rejected[reasonMalformed] == 0 || b.stats.Rejected[reasonCluster] == 0 || b.stats.Rejected[reasonUnknownKey] == 0 {
		t.Fatalf("reasons %v", b.stats.Rejected)
	}
	// Flipping the retransmit bit yields the authentic packet, once. (A
	// second later: the flips spent this second's budget of key
	// derivations for unknown senders.)
	p := bytes.Clone(pkts[0])
	p[4] ^= byte(packet.FlagRetransmit)
	b.step(p, addrA, t0.Add(time.Second))
	b.step(pkts[0], addrA, t0.Add(time.Second))
	if r := b.drain(); len(r.messages) != 1 || string(r.messages[0].Payload) != "attack at dawn" {
		t.Fatalf("got %+v", r.messages)
	}
	if b.stats.Rejected[reasonDuplicate] != 1 {
		t.Fatalf("duplicate not counted: %v", b.stats.Rejected)
	}
}

func TestSealReplay(t *testing.T) {
	a, b := testEngine(t, nil), testEngine(t, nil)
	data := sealedData(t, a, []byte("once"))
	ctl, _ := a.sendControl(uuid.Nil, []byte("ctl"))
	for range 3 {
		b.step(data[0], addrA, t0)
		b.step(ctl.b, addrA, t0)
	}
	r := b.drain()
	if len(r.messages) != 2 {
		t.Fatalf("delivered %d messages, want 2", len(r.messages))
	}
	if b.stats.Rejected[reasonDuplicate] != 2 || b.stats.Rejected[reasonReplay] != 2 {
		t.Fatalf("rejected %v", b.stats.Rejected)
	}
	// Control counters: within the 64-entry window each once, older refused.
	var ctls [][]byte
	for i := range 100 {
		p, _ := a.sendControl(uuid.Nil, []byte{byte(i)})
		ctls = append(ctls, p.b)
	}
	b.step(ctls[99], addrA, t0)
	b.step(ctls[50], addrA, t0) // within the window, first time: accepted
	b.step(ctls[50], addrA, t0) // replay
	b.step(ctls[10], addrA, t0) // below the window
	if r := b.drain(); len(r.messages) != 2 || b.stats.Rejected[reasonReplay] != 4 {
		t.Fatalf("messages %d, rejected %v", len(r.messages), b.stats.Rejected)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, c := range []struct {
		n  uint64
		ok bool
	}{{1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {70, true}, {6, false}, {7, true}, {7, false}, {200, true}, {136, false}, {137, true}} {
		if got := w.accept(c.n); got != c.ok {
			t.Fatalf("accept(%d) = %v", c.n, got)
		}
	}
}

func TestDecompressionBomb(t *testing.T) {
	// A member holding the key sends a message that inflates beyond
	// MaxMessage: refused and counted, nothing delivered.
	for _, mode := range []Compression{CompressionS2, CompressionZstd} {
		big := testEngine(t, func(c *Config) { c.MaxMessage = 1 << 20; c.Compression = mode })
		small := testEngine(t, func(c *Config) { c.MaxMessage = 64 << 10 })
		_, pkts, err := big.broadcast(make([]byte, 1<<20), SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			small.step(p.b, addrA, t0)
		}
		if r := small.drain(); len(r.messages) != 0 || small.stats.Rejected[reasonDecompress] != 1 {
			t.Fatalf("%v: delivered %d, rejected %v", mode, len(r.messages), small.stats.Rejected)
		}
	}
}

func BenchmarkSeal1K(b *testing.B) {
	e := testEngine(b, nil)
	h := packet.Header{Type: packet.TypeData, Sender: e.id, FragCount: 1}
	msg := make([]byte, 1024)
	buf := make([]byte, 0, 2048)
	b.SetBytes(1024)
	for i := 0; b.Loop(); i++ {
		h.Seq, h.HighSeq = uint64(i+1), uint64(i+1)
		buf = e.seal.seal(buf[:0], &h, msg)
	}
}

func BenchmarkOpen1K(b *testing.B) {
	e := testEngine(b, nil)
	h := packet.Header{Type: packet.TypeData, Sender: uuid.New(), Seq: 1, HighSeq: 1, FragCount: 1}
	p := e.seal.seal(nil, &h, make([]byte, 1024))
	scratch := make([]byte, 0, 2048)
	b.SetBytes(1024)
	for b.Loop() {
		if _, _, reason := e.seal.open(p, scratch, nil); reason != "" {
			b.Fatal(reason)
		}
	}
}

// Opening a datagram of a sender whose key is cached allocates nothing
// (the header, the additional data and the nonce stay off the heap).
func TestOpenDoesNotAllocate(t *testing.T) {
	e := testEngine(t, nil)
	h := packet.Header{Type: packet.TypeData, Sender: uuid.New(), Seq: 1, HighSeq: 1, FragCount: 1}
	p := e.seal.seal(nil, &h, make([]byte, 1024))
	scratch := make([]byte, 0, 2048)
	if _, _, reason := e.seal.open(p, scratch, nil); reason != "" { // caches the key
		t.Fatal(reason)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, _, reason := e.seal.open(p, scratch, nil); reason != "" {
			t.Fatal(reason)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per open", n)
	}
}
