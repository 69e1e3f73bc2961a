package replicator

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

func seedDeltas() [][]byte {
	var out [][]byte
	for _, d := range genDeltas(rand.New(rand.NewPCG(9, 9)), 20) {
		out = append(out, appendDelta(nil, d))
	}
	return out
}

func FuzzDecodeDelta(f *testing.F) {
	for _, b := range seedDeltas() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, n, err := decodeDelta(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatal("read past input")
		}
		enc := appendDelta(nil, d)
		d2, n2, err := decodeDelta(enc)
		if err != nil || n2 != len(enc) || !sameDelta(d, d2) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	ds := genDeltas(rand.New(rand.NewPCG(5, 5)), 10)
	f.Add(appendBatch(nil, ds))
	f.Add(appendBatch(nil, nil))
	f.Add([]byte{batchVersion, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := decodeBatch(b)
		if err != nil {
			return
		}
		if len(ds) > len(b) {
			t.Fatal("more deltas than bytes")
		}
		ds2, err := decodeBatch(appendBatch(nil, ds))
		if err != nil || len(ds2) != len(ds) {
			t.Fatal("re-encoding", err)
		}
		for i := range ds {
			if !sameDelta(ds[i], ds2[i]) {
				t.Fatal("re-encoding differs")
			}
		}
	})
}

func FuzzDecodeSession(f *testing.F) {
	r := NewReplica(ReplicaConfig{})
	for _, d := range genDeltas(rand.New(rand.NewPCG(6, 6)), 100) {
		r.Apply(d)
	}
	for _, s := range records(r) {
		f.Add(appendSession(nil, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, n, err := decodeSession(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatal("read past input")
		}
		enc := appendSession(nil, s)
		s2, _, err := decodeSession(enc)
		if err != nil || !sameSession(s, s2) {
			t.Fatalf("re-encoding: %v\n%s\n%s", err, dump(s), dump(s2))
		}
		// A decoded record can always be merged.
		NewReplica(ReplicaConfig{}).MergeSession(s)
	})
}

func FuzzReadSnapshot(f *testing.F) {
	r := NewReplica(ReplicaConfig{})
	for _, d := range genDeltas(rand.New(rand.NewPCG(7, 7)), 40) {
		r.Apply(d)
	}
	var buf bytes.Buffer
	WriteSnapshot(&buf, r, "c")
	f.Add(buf.Bytes())
	buf.Reset()
	WriteSnapshot(&buf, NewReplica(ReplicaConfig{}), "c")
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		dst := NewReplica(ReplicaConfig{})
		n, err := LoadSnapshot(bytes.NewReader(b), dst, "c")
		if err != nil {
			if dst.Len() != 0 || dst.Tombstones() != 0 {
				t.Fatal("refused snapshot loaded something")
			}
			return
		}
		if n > len(b) {
			t.Fatal("more records than bytes")
		}
	})
}

func FuzzDeltaRoundTrip(f *testing.F) {
	f.Add("id", "owner", uint32(1), uint64(2), uint64(3), int64(4), int64(-5), int64(6), int64(7), []byte{1, 2, 3}, "key", []byte("value"))
	f.Fuzz(func(t *testing.T, id, owner string, epoch uint32, version, hlc uint64, created, la, idle, dl int64, kinds []byte, key string, value []byte) {
		if len(id) > maxKeyLen || len(owner) > maxKeyLen || len(key) > maxKeyLen {
			return
		}
		d := &Delta{ID: id, Owner: owner, Epoch: epoch, Version: version, HLC: hlc, Created: created, LastAccess: la, IdleTimeout: idle, Deadline: dl}
		for i, k := range kinds {
			op := Op{Kind: OpKind(k%7 + 1), Key: key[:i%(len(key)+1)]}
			if len(value) > 0 {
				op.Value = value[:i%len(value)+1]
			}
			d.Ops = append(d.Ops, op)
		}
		b := appendDelta(nil, d)
		if len(b) != deltaSize(d) {
			t.Fatal("deltaSize")
		}
		got, n, err := decodeDelta(b)
		if err != nil || n != len(b) || !sameDelta(d, got) {
			t.Fatalf("round trip: %v", err)
		}
		bs, err := decodeBatch(appendBatch(nil, []*Delta{d, d}))
		if err != nil || len(bs) != 2 || !sameDelta(d, bs[1]) {
			t.Fatalf("batch round trip: %v", err)
		}
	})
}

func FuzzSessionRoundTrip(f *testing.F) {
	f.Add("id", "owner", "node", uint32(1), uint64(2), int64(3), int64(4), "alice", []byte("k1k2k3"), []byte("value"), false, uint8(0))
	f.Fuzz(func(t *testing.T, id, owner, node string, epoch uint32, hlc uint64, la, idle int64, principal string, keys, value []byte, destroyed bool, reason uint8) {
		if id == "" || len(id) > maxKeyLen || len(owner) > maxKeyLen || len(node) > maxKeyLen || len(principal) > maxKeyLen || len(keys) > maxKeyLen {
			return
		}
		s := &Session{ID: id}
		if destroyed {
			s.Destroyed = true
			s.Reason = DestroyReason(reason%5 + 1)
			if s.Reason == ReasonRenamed || reason > 128 {
				s.RenamedTo = owner + "x"
			}
		} else {
			s.Owner, s.Epoch, s.Version, s.LastAccess, s.IdleTimeout = owner, epoch, hlc, la, idle
			s.Principal, s.PrincipalAt = principal, Stamp{Epoch: epoch, HLC: hlc, Node: node}
			m := map[string]Attr{}
			for i := range keys {
				a := Attr{Stamp: Stamp{Epoch: epoch, HLC: hlc + uint64(i), Node: []string{owner, node}[i%2]}}
				if i%3 == 2 {
					a.Deleted = true
				} else if len(value) > 0 {
					a.Value = value[:i%len(value)+1]
				}
				m[string(keys[:i+1])] = a
			}
			s.Attrs = NewAttrs(m)
		}
		got, n, err := decodeSession(appendSession(nil, s))
		if err != nil || !sameSession(s, got) || n == 0 {
			t.Fatalf("round trip %v:\n%s\n%s", err, dump(s), dump(got))
		}
	})
}

// FuzzConvergence checks the merge rules on random delta sets and
// orders chosen by the fuzzer.
func FuzzConvergence(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(50))
	f.Fuzz(func(t *testing.T, s1, s2 uint64, n uint8) {
		rng := rand.New(rand.NewPCG(s1, s2))
		ds := genDeltas(rng, int(n))
		a, b := NewReplica(ReplicaConfig{}), NewReplica(ReplicaConfig{})
		for _, d := range ds {
			mustApply(t, a, d)
		}
		rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		for _, d := range append(ds, ds[:len(ds)/3]...) {
			mustApply(t, b, d)
		}
		if !slices.Equal(a.Digest(8), b.Digest(8)) || a.Len() != b.Len() {
			t.Fatal("replicas diverged")
		}
	})
}
