package multicast

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

// TestReplayToFreshReceiver: packets captured from the group (data and
// control) and replayed to a receiver that never heard their sender (it
// restarted, or joined) are refused once they are older than
// MaxClockSkew, and counted as "stale" with a warning that says why.
// Within the skew the first contact is accepted, as it must be for a
// sender whose clock is a little apart. (Before, a receiver with no state
// for a sender accepted any authentic packet and started there.)
func TestReplayToFreshReceiver(t *testing.T) {
	a := testEngine(t, nil)
	var captured [][]byte
	captured = append(captured, sealedData(t, a, []byte("set counter=1"))...)
	captured = append(captured, sealedData(t, a, bytes.Repeat([]byte("big "), 1000))...)
	ctl, err := a.sendControl(uuid.Nil, []byte("heartbeat"))
	if err != nil {
		t.Fatal(err)
	}
	captured = append(captured, ctl.b)

	var logs bytes.Buffer
	for _, late := range []time.Duration{11 * time.Second, time.Hour, -11 * time.Second} {
		b := testEngine(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
		for _, p := range captured {
			b.step(p, addrA, t0.Add(late))
		}
		r := b.drain()
		if len(r.messages) != 0 || len(r.events) != 0 || len(b.peers) != 0 {
			t.Fatalf("replayed %v late: delivered %d messages, %d events, %d peers", late, len(r.messages), len(r.events), len(b.peers))
		}
		if got := b.stats.Rejected[reasonStale]; got != uint64(len(captured)) {
			t.Fatalf("replayed %v late: %d stale of %d: %v", late, got, len(captured), b.stats.Rejected)
		}
	}
	for _, want := range []string{"refused a packet of a sender not heard before", "11s behind", "11s ahead of", "more than the 10s tolerated", "synchronise them with NTP", "reason=stale"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// Within the skew: accepted (a new member's clock may differ a little).
	b := testEngine(t, nil)
	for _, p := range captured {
		b.step(p, addrA, t0.Add(9*time.Second))
	}
	if r := b.drain(); len(r.messages) != 3 {
		t.Fatalf("within the skew: %d messages, %v", len(r.messages), b.stats.Rejected)
	}
	// A known sender's later packets are not subject to the skew: its
	// sequence numbers protect them.
	for _, p := range sealedData(t, a, []byte("next")) {
		b.step(p, addrA, t0.Add(time.Hour))
	}
	if r := b.drain(); len(r.messages) != 1 {
		t.Fatalf("known sender, later: %d messages, %v", len(r.messages), b.stats.Rejected)
	}
}

// TestForgedSendersCostBoundedDerivations: datagrams with random sender
// ids cost at most NewSenderRate key derivations per second and never
// enter the derived-key cache, so the keys of real members stay cached
// (before, each cost an HKDF and a full cache was flushed).
func TestForgedSendersCostBoundedDerivations(t *testing.T) {
	a, b := testEngine(t, nil), testEngine(t, nil)
	for _, p := range sealedData(t, a, []byte("real")) {
		b.step(p, addrA, t0)
	}
	if r := b.drain(); len(r.messages) != 1 {
		t.Fatal("real sender not delivered")
	}
	valid := sealedData(t, a, []byte("template"))[0]
	const forged = 3 * maxAEADCache
	for i := range forged {
		p := bytes.Clone(valid)
		rand.Read(p[16:32])
		b.step(p, addrA, t0.Add(time.Duration(i)*time.Microsecond))
	}
	derived := b.stats.Rejected[reasonAuth]
	limited := b.stats.Rejected[reasonSenderRate]
	t.Logf("%d forged senders: %d keys derived (auth failures), %d refused before derivation", forged, derived, limited)
	if derived+limited != forged || derived > uint64(b.cfg.NewSenderRate)*102/100+2 { // the burst, plus the refill over the 12 ms of the flood
		t.Fatalf("derived %d keys for %d forged senders (budget %d/s): %v", derived, forged, b.cfg.NewSenderRate, b.stats.Rejected)
	}
	if len(b.seal.cache) > 2 {
		t.Fatalf("forged senders entered the key cache: %d entries", len(b.seal.cache))
	}
	if _, ok := b.seal.cache[aeadKey{a.id, 1}]; !ok {
		t.Fatal("the real sender's key was evicted")
	}
	// The real sender is still served, the budget refills.
	b.step(valid, addrA, t0.Add(time.Second))
	for _, p := range sealedData(t, a, []byte("after")) {
		b.step(p, addrA, t0.Add(time.Second))
	}
	if r := b.drain(); len(r.messages) != 2 { // "template" and "after"
		t.Fatalf("after the flood: %d messages", len(r.messages))
	}
	newcomer := testEngine(t, nil)
	for _, p := range sealedData(t, newcomer, []byte("hello")) {
		b.step(p, addrA, t0.Add(2*time.Second))
	}
	if r := b.drain(); len(r.messages) != 1 {
		t.Fatalf("a new sender after the flood: %d messages, %v", len(r.messages), b.stats.Rejected)
	}
}

// TestNakHugeRangeIsClamped: a NAK asking for sequence numbers 1 to
// 2^64-1 is answered from what the ring (or the store of another
// member's packets) holds, without scanning the range under the engine
// lock (before, it looped over 2^64 numbers).
func TestNakHugeRangeIsClamped(t *testing.T) {
	a, b, c := testEngine(t, nil), testEngine(t, nil), testEngine(t, nil)
	var sent [][]byte
	for i := range 5 {
		pkts := sealedData(t, a, []byte{byte(i)})
		sent = append(sent, pkts...)
		for _, p := range pkts {
			b.step(p, addrA, t0)
		}
	}
	b.drain()
	huge := []seqRange{{1, math.MaxUint64}, {math.MaxUint64 - 10, math.MaxUint64}}
	done := make(chan [2]int, 1)
	go func() {
		// To the sender itself, and as an "anyone" NAK to b, which holds a's packets.
		own := c.control(packet.TypeNak, 0, (&nakBody{target: a.id, ranges: huge}).append(nil))
		a.step(own, addrA, t0)
		anyone := c.control(packet.TypeNak, packet.FlagAnyone, (&nakBody{target: a.id, ranges: huge}).append(nil))
		b.step(anyone, addrA, t0)
		done <- [2]int{len(a.drain().packets), len(b.drain().packets)}
	}()
	select {
	case n := <-done:
		if n[0] < len(sent) || n[0] > len(sent)+1 || n[1] != len(sent) {
			t.Fatalf("answered %d (sender) and %d (anyone) packets for %d sent", n[0], n[1], len(sent))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a NAK with a huge range is still being scanned after 10s")
	}
}
