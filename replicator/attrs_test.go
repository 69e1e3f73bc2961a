package replicator

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestAttrs(t *testing.T) {
	var a Attrs
	if a.Len() != 0 || a.Value("x") != nil {
		t.Fatal("zero Attrs not empty")
	}
	if _, ok := a.Get("x"); ok {
		t.Fatal("found a key in the zero Attrs")
	}
	b := a.With("m", Attr{Value: []byte("1"), Stamp: Stamp{Epoch: 2, HLC: 3, Node: "web-1"}})
	c := b.With("a", Attr{Value: []byte{}, Stamp: Stamp{HLC: 4, Node: "web-2"}}).
		With("z", Attr{Deleted: true, Stamp: Stamp{HLC: 5, Node: "web-1"}}).
		With("m", Attr{Value: []byte("2"), Stamp: Stamp{HLC: 6, Node: "web-3"}})
	if a.Len() != 0 || b.Len() != 1 || string(b.Value("m")) != "1" {
		t.Fatal("With modified its receiver")
	}
	var keys []string
	for k := range c.All() {
		keys = append(keys, k)
	}
	if strings.Join(keys, ",") != "a,m,z" {
		t.Fatalf("keys %v", keys)
	}
	if v := c.Value("a"); v == nil || len(v) != 0 {
		t.Fatalf("empty value came back as %#v (nil and empty differ)", v)
	}
	if m, ok := c.Get("m"); !ok || string(m.Value) != "2" || m.Stamp != (Stamp{HLC: 6, Node: "web-3"}) {
		t.Fatalf("m = %+v", m)
	}
	if z, ok := c.Get("z"); !ok || !z.Deleted || z.Value != nil || z.Stamp.Node != "web-1" || c.Value("z") != nil {
		t.Fatalf("z = %+v", z)
	}
	m := c.Map()
	if len(m) != 3 || NewAttrs(m).Len() != 3 || string(NewAttrs(m).Value("m")) != "2" {
		t.Fatalf("map round trip %v", m)
	}
	for k, v := range c.All() {
		if k == "m" {
			break // yield returning false stops the iteration
		}
		_ = v
	}
}

func TestNodeNamesInterned(t *testing.T) {
	name := strings.Repeat("n", 3) + "-interned"
	id := nodeID(name)
	if nodeID(strings.Clone(name)) != id || nodeName(id) != name || nodeID("") != 0 || nodeName(0) != "" {
		t.Fatal("intern table")
	}
	if internNode(strings.Clone(name)) != name {
		t.Fatal("internNode")
	}
}

// A session of one attribute is one allocation per version (sessionOne),
// and a copy of it (Touch) does not point into the version it replaced,
// which would keep that version alive.
func TestOneAttributeSessionAllocatedOnce(t *testing.T) {
	r := NewReplica(DefaultReplicaConfig())
	d := func(v uint64, val string) *Delta {
		return &Delta{ID: "s1", Owner: "n1", Epoch: 1, Version: v, HLC: v, LastAccess: int64(v),
			Ops: []Op{{Kind: OpSet, Key: "k", Value: []byte(val)}}}
	}
	mustApply(t, r, d(1, "a"))
	s1 := r.Get("s1")
	if !embedsAttrs(s1) || val(s1, "k") != "a" {
		t.Fatalf("first version: embedded %v, k=%q", embedsAttrs(s1), val(s1, "k"))
	}
	r.Touch("s1", 100)
	s2 := r.Get("s1")
	if s2 == s1 || !embedsAttrs(s2) || s2.Attrs.p == s1.Attrs.p || val(s2, "k") != "a" || s2.LastAccess != 100 {
		t.Fatalf("touched copy: embedded %v, shares the old array %v", embedsAttrs(s2), s2.Attrs.p == s1.Attrs.p)
	}
	mustApply(t, r, &Delta{ID: "s1", Owner: "n1", Epoch: 1, Version: 2, HLC: 2, LastAccess: 101,
		Ops: []Op{{Kind: OpSet, Key: "j", Value: []byte("b")}}})
	if s3 := r.Get("s1"); embedsAttrs(s3) || val(s3, "j") != "b" || val(s3, "k") != "a" {
		t.Fatalf("two attributes: embedded %v, j=%q k=%q", embedsAttrs(s3), val(s3, "j"), val(s3, "k"))
	}
	v := uint64(10)
	r2 := NewReplica(DefaultReplicaConfig())
	mustApply(t, r2, d(1, "a"))
	n := testing.AllocsPerRun(100, func() {
		v++
		r2.Apply(d(v, "x"))
	})
	// What d allocates (the delta, its ops, the value: 2 to 3 as the
	// compiler places them) and one for the new version: its Session and
	// attribute array together.
	if n > 3 {
		t.Fatalf("%v allocations per one-attribute update, want ≤ 3", n)
	}
}

// decodeBatchFor gives a delta of a session the replica holds the
// replica's ID string; other deltas decode as with decodeBatchInto.
func TestReplicaDecodeSharesHeldIDs(t *testing.T) {
	r := NewReplica(DefaultReplicaConfig())
	mustApply(t, r, &Delta{ID: "held-session", Owner: "n1", Epoch: 1, Version: 1, HLC: 1, Ops: []Op{{Kind: OpSet, Key: "k", Value: []byte("v")}}})
	b := appendBatch(nil, []*Delta{
		{ID: "held-session", Owner: "n1", Epoch: 1, Version: 2, HLC: 2, Ops: []Op{{Kind: OpSet, Key: "k", Value: []byte("w")}}},
		{ID: "new-session", Owner: "n1", Epoch: 1, Version: 1, HLC: 3},
	})
	ds, err := decodeBatchFor(r, nil, b)
	if err != nil || len(ds) != 2 {
		t.Fatalf("decode: %v, %d deltas", err, len(ds))
	}
	if ds[0].ID != "held-session" || unsafe.StringData(ds[0].ID) != unsafe.StringData(r.Lookup("held-session").ID) {
		t.Fatal("the held session's ID was allocated again")
	}
	if ds[1].ID != "new-session" || string(ds[0].Ops[0].Value) != "w" {
		t.Fatalf("decoded %+v %+v", ds[0], ds[1])
	}
	plain, _ := decodeBatch(b)
	for i := range ds {
		if ds[i].ID != plain[i].ID || ds[i].Version != plain[i].Version || len(ds[i].Ops) != len(plain[i].Ops) {
			t.Fatalf("delta %d differs from DecodeBatch's: %+v vs %+v", i, ds[i], plain[i])
		}
	}
	if _, err := decodeBatchFor(r, nil, b[:len(b)-1]); err == nil {
		t.Fatal("truncated batch accepted")
	}
}

// decodeBatchFor overwrites the deltas of earlier batches (up to the
// slice's capacity) instead of allocating new ones, and decodes the same
// as decodeBatch.
func TestReplicaDecodeReusesDeltas(t *testing.T) {
	r := NewReplica(DefaultReplicaConfig())
	batch := func(v uint64, nops, count int) []byte {
		var ds []*Delta
		for i := range count {
			d := &Delta{ID: fmt.Sprintf("s%d", i), Owner: "n1", Epoch: 1, Version: v, HLC: v}
			for j := range nops {
				d.Ops = append(d.Ops, Op{Kind: OpSet, Key: fmt.Sprintf("k%d", j), Value: []byte{byte(v), byte(j)}})
			}
			ds = append(ds, d)
		}
		return appendBatch(nil, ds)
	}
	var buf []*Delta
	for v, c := range []struct{ nops, count int }{{1, 3}, {3, 1}, {0, 3}, {2, 2}, {5, 3}} {
		b := batch(uint64(v+1), c.nops, c.count)
		prev := slices.Clone(buf[:cap(buf)])
		ds, err := decodeBatchFor(r, buf, b)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := decodeBatch(b)
		for i := range ds {
			if i < len(prev) && prev[i] != nil && ds[i] != prev[i] {
				t.Fatalf("batch %d delta %d allocated anew", v, i)
			}
			if ds[i].ID != want[i].ID || ds[i].Version != want[i].Version || len(ds[i].Ops) != len(want[i].Ops) {
				t.Fatalf("batch %d delta %d: %+v, want %+v", v, i, ds[i], want[i])
			}
			for j := range ds[i].Ops {
				if ds[i].Ops[j].Key != want[i].Ops[j].Key || !bytes.Equal(ds[i].Ops[j].Value, want[i].Ops[j].Value) {
					t.Fatalf("batch %d delta %d op %d: %+v, want %+v", v, i, j, ds[i].Ops[j], want[i].Ops[j])
				}
			}
			mustApply(t, r, ds[i])
		}
		if v == 2 && (cap(ds) < 3 || ds[2] != prev[2]) {
			t.Fatal("a delta past the previous batch's length was not reused")
		}
		buf = ds
	}
	if got := r.Get("s2"); val(got, "k1") != string([]byte{5, 1}) || val(got, "k4") != string([]byte{5, 4}) {
		t.Fatalf("applied values k1=%q k4=%q", val(got, "k1"), val(got, "k4"))
	}
}
