package multicast

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

func TestBodiesRoundTrip(t *testing.T) {
	n := nakBody{target: uuid.New(), ranges: []seqRange{{1, 5}, {9, 9}}}
	gn, err := decodeNak(n.append(nil))
	if err != nil || gn.target != n.target || len(gn.ranges) != 2 || gn.ranges[1] != n.ranges[1] {
		t.Fatalf("nak %+v %v", gn, err)
	}
	s := statusBody{low: 3, entries: []statusEntry{{uuid.New(), 7}}}
	gs, err := decodeStatus(s.append(nil))
	if err != nil || gs.low != 3 || gs.entries[0] != s.entries[0] {
		t.Fatalf("status %+v %v", gs, err)
	}
	a := ackBody{uuid.New(), 42}
	ga, err := decodeAck(a.append(nil))
	if err != nil || ga != a {
		t.Fatalf("ack %+v %v", ga, err)
	}
}

// FuzzOpen feeds arbitrary bytes to the receive path: it must never panic
// and never deliver anything, whatever the bytes.
func FuzzOpen(f *testing.F) {
	// A fixed id: fuzz workers rebuild src and must recognise the seeds.
	src := testEngine(f, func(c *Config) { c.MemberID = uuid.MustParse("6a1f0c3e-8d2b-4f7a-9c4e-1b2d3e4f5a6b") })
	for _, p := range sealedData(f, src, []byte("seed")) {
		f.Add(p)
	}
	ctl, _ := src.sendControl(uuid.Nil, []byte("c"))
	f.Add(ctl.b)
	f.Add(src.statusPacket())
	f.Fuzz(func(t *testing.T, b []byte) {
		e := testEngine(t, nil)
		e.step(b, addrA, t0)
		e.tick(t0)
		r := e.drain()
		if len(r.messages) > 0 && (len(b) < Overhead || !bytes.Equal(b[16:32], src.id[:])) {
			t.Fatalf("delivered %+v from forged bytes", r.messages)
		}
	})
}

// FuzzSealedBodies seals arbitrary bodies with the right key (an insider
// or a bug): parsing after authentication must never panic.
func FuzzSealedBodies(f *testing.F) {
	f.Add(uint8(3), uint8(0), []byte{})
	f.Add(uint8(5), uint8(0), (&statusBody{low: 1, entries: []statusEntry{{uuid.New(), 1 << 62}}}).append(nil))
	f.Add(uint8(3), uint8(packet.FlagAnyone), (&nakBody{target: uuid.New(), ranges: []seqRange{{1, ^uint64(0)}}}).append(nil))
	f.Fuzz(func(t *testing.T, typ, flags uint8, body []byte) {
		src, dst := testEngine(t, nil), testEngine(t, nil)
		if len(body)+Overhead > dst.cfg.MaxDatagram {
			return
		}
		h := packet.Header{Type: packet.Type(typ%5 + 1), Flags: packet.Flags(flags) & packet.FlagAnyone, Sender: src.id, Seq: 1, HighSeq: 1, FragCount: 1}
		if h.Type != packet.TypeNak {
			h.Flags = 0
		}
		dst.step(src.seal.seal(nil, &h, body), addrA, t0)
		for i := range 5 {
			dst.tick(t0.Add(time.Duration(i) * time.Second))
		}
		dst.drain()
	})
}

// FuzzReassembly delivers the fragments of a message in a fuzzer-chosen
// order with losses and duplicates: the message is delivered intact once
// (when every fragment arrived) or not at all, never corrupted.
func FuzzReassembly(f *testing.F) {
	f.Add(uint64(1), uint16(5000), []byte{0, 1, 2, 3, 4})
	f.Add(uint64(2), uint16(20000), []byte{3, 3, 1, 0, 2, 9})
	f.Fuzz(func(t *testing.T, seed uint64, size uint16, order []byte) {
		src := testEngine(t, func(c *Config) { c.Compression = CompressionNone })
		dst := testEngine(t, nil)
		msg := make([]byte, int(size)+1)
		rng := rand.New(rand.NewPCG(seed, 1))
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		pkts := sealedData(t, src, msg)
		seen := map[int]bool{}
		for _, o := range order {
			i := int(o) % len(pkts)
			seen[i] = true
			dst.step(pkts[i], addrA, t0)
		}
		r := dst.drain()
		complete := len(seen) == len(pkts)
		switch {
		case len(r.messages) > 1:
			t.Fatalf("%d deliveries", len(r.messages))
		case len(r.messages) == 1 && !bytes.Equal(r.messages[0].Payload, msg):
			t.Fatal("corrupted message")
		case len(r.messages) == 1 && !complete:
			t.Fatal("delivered with fragments missing")
		}
	})
}

// WireVersion is packet.Version: the header codec speaks this package's
// protocol version.
func TestWireVersion(t *testing.T) {
	if WireVersion != packet.Version {
		t.Fatalf("WireVersion %d, packet.Version %d", WireVersion, packet.Version)
	}
}
