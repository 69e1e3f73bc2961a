package replicator

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/hanode/hanode/internal/wire"
)

func sameDelta(a, b *Delta) bool {
	if a.ID != b.ID || a.Owner != b.Owner || a.Epoch != b.Epoch || a.Version != b.Version || a.HLC != b.HLC ||
		a.Created != b.Created || a.LastAccess != b.LastAccess || a.IdleTimeout != b.IdleTimeout ||
		a.Deadline != b.Deadline || len(a.Ops) != len(b.Ops) {
		return false
	}
	for i := range a.Ops {
		if a.Ops[i].Kind != b.Ops[i].Kind || a.Ops[i].Key != b.Ops[i].Key || !bytes.Equal(a.Ops[i].Value, b.Ops[i].Value) {
			return false
		}
	}
	return true
}

func TestDeltaRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ds := genDeltas(rng, 200)
	ds = append(ds, &Delta{ID: "x", Created: -5, Deadline: -1 << 62, HLC: 1<<64 - 1, Epoch: 1<<32 - 1})
	for _, d := range ds {
		b := appendDelta([]byte("pfx"), d)
		if len(b)-3 != deltaSize(d) {
			t.Fatalf("deltaSize %d, encoded %d", deltaSize(d), len(b)-3)
		}
		got, n, err := decodeDelta(b[3:])
		if err != nil || n != len(b)-3 || !sameDelta(d, got) {
			t.Fatalf("round trip: %v %+v %+v", err, d, got)
		}
	}
	b := appendBatch(nil, ds)
	got, err := decodeBatch(b)
	if err != nil || len(got) != len(ds) {
		t.Fatal(err)
	}
	for i := range ds {
		if !sameDelta(ds[i], got[i]) {
			t.Fatal("batch round trip")
		}
	}
	// Every truncation fails cleanly.
	for i := 0; i < len(b); i++ {
		if _, err := decodeBatch(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := decodeBatch(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatal("trailing byte accepted")
	}
}

func TestDecodeHostileCounts(t *testing.T) {
	// A batch claiming 60,000 deltas in 4 bytes must fail before
	// allocating them.
	b := []byte{batchVersion, 0xe0, 0xd4, 0x03}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		if _, err := decodeBatch(b); !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 1024 {
		t.Fatalf("%d bytes allocated per hostile batch", per)
	}
	// A delta with a huge value length.
	d := appendDelta(nil, &Delta{ID: "s", Ops: []Op{set("k", "v")}})
	d = append(d[:len(d)-2], 0xff, 0xff, 0xff, 0x7f)
	if _, _, err := decodeDelta(d); !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
	// Unknown op kind.
	d = appendDelta(nil, &Delta{ID: "s", Ops: []Op{{Kind: 99}}})
	if _, _, err := decodeDelta(d); !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
}

func TestSessionRoundTrip(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	for _, d := range genDeltas(rand.New(rand.NewPCG(3, 4)), 300) {
		mustApply(t, r, d)
	}
	r.Touch("s1", 1<<50)
	n := 0
	for _, s := range records(r) {
		b := appendSession(nil, s)
		got, used, err := decodeSession(b)
		if err != nil || used != len(b) || !sameSession(s, got) {
			t.Fatalf("round trip %v:\n%s\n%s", err, dump(s), dump(got))
		}
		n++
	}
	if n == 0 {
		t.Fatal("no records")
	}
	s := &Session{ID: "x", Owner: "a", Attrs: NewAttrs(map[string]Attr{
		"a": {Value: []byte("1"), Stamp: Stamp{HLC: 1, Node: "b"}},
		"b": {Value: []byte("2"), Stamp: Stamp{HLC: 2, Node: "b"}},
		"c": {Deleted: true, Stamp: Stamp{HLC: 3, Node: "a"}},
	}), PrincipalAt: Stamp{Node: "zz"}}
	got, _, err := decodeSession(appendSession(nil, s))
	if err != nil || !sameSession(s, got) {
		t.Fatal(err)
	}
}

// TestDecodeSessionUnsortedAttributes: writers before the sorted
// attribute sets sent attributes in map order; such records still decode,
// sorted, and a duplicate key is still rejected.
func TestDecodeSessionUnsortedAttributes(t *testing.T) {
	attr := func(k string, hlc uint64) map[string]Attr {
		return map[string]Attr{k: {Value: []byte(k + "!"), Stamp: Stamp{HLC: hlc, Node: "n"}}}
	}
	base := &Session{ID: "x", Owner: "o", Epoch: 1}
	head := appendSession(nil, base) // ends with the attribute count 0
	enc := func(k string, hlc uint64) []byte {
		s := *base
		s.Attrs = NewAttrs(attr(k, hlc))
		return appendSession(nil, &s)[len(head):]
	}
	rec := append(append(append(append([]byte{}, head[:len(head)-1]...), 3), enc("c", 3)...), enc("a", 1)...)
	rec = append(rec, enc("b", 2)...)
	s, n, err := decodeSession(rec)
	if err != nil || n != len(rec) {
		t.Fatalf("decode: %v (%d of %d bytes)", err, n, len(rec))
	}
	var keys []string
	for k, a := range s.Attrs.All() {
		keys = append(keys, k)
		if string(a.Value) != k+"!" {
			t.Errorf("%s = %q", k, a.Value)
		}
	}
	if strings.Join(keys, ",") != "a,b,c" || string(s.Attrs.Value("b")) != "b!" {
		t.Fatalf("keys %v", keys)
	}
	dup := append(append(append([]byte{}, head[:len(head)-1]...), 2), enc("a", 1)...)
	dup = append(dup, enc("a", 2)...)
	if _, _, err := decodeSession(dup); err == nil {
		t.Fatal("duplicate attribute accepted")
	}
}

// The codec that runtimes take from internal/wire is this one.
func TestWireCodecInstalled(t *testing.T) {
	c := wire.Of[Delta, Session]()
	d := &Delta{ID: "s", Owner: "n", Version: 1, Ops: []Op{{Kind: OpSet, Key: "k", Value: []byte("v")}}}
	b := c.AppendBatch(nil, []*Delta{d})
	if !bytes.Equal(b, appendBatch(nil, []*Delta{d})) {
		t.Fatal("AppendBatch is not replicator's")
	}
	if ds, err := c.DecodeBatchInto(nil, b); err != nil || len(ds) != 1 || ds[0].ID != "s" {
		t.Fatalf("DecodeBatchInto: %v, %v", ds, err)
	}
	if ds, err := c.DecodeBatch(b); err != nil || len(ds) != 1 {
		t.Fatalf("DecodeBatch: %v, %v", ds, err)
	}
	s := &Session{ID: "s", Owner: "n", Version: 1}
	rec := c.AppendSession(nil, s)
	if got, n, err := c.DecodeSession(rec); err != nil || n != len(rec) || got.ID != "s" {
		t.Fatalf("DecodeSession: %v, %d, %v", got, n, err)
	}
}
