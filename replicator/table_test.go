package replicator

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// TestTableAgainstMap checks the shard index against a Go map over random
// inserts, replacements and deletions (backward-shift deletion is where
// open addressing goes wrong), with few keys so that probe runs collide
// and wrap around.
func TestTableAgainstMap(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		tb := table{seed: maphash.MakeSeed()}
		ref := map[string]int64{}
		keys := 5 + rng.IntN(200)
		for step := 0; step < 5000; step++ {
			id := fmt.Sprintf("k%d", rng.IntN(keys))
			switch rng.IntN(3) {
			case 0, 1:
				v := rng.Int64()
				tb.put(slot{s: &Session{ID: id}, sched: v})
				ref[id] = v
			case 2:
				tb.del(id)
				delete(ref, id)
			}
			if tb.n != len(ref) {
				t.Fatalf("seed %d step %d: %d records, want %d", seed, step, tb.n, len(ref))
			}
		}
		for i := 0; i < keys; i++ {
			id := fmt.Sprintf("k%d", i)
			sl, ok := tb.get(id)
			v, want := ref[id]
			if ok != want || (ok && (sl.sched != v || sl.s.ID != id)) {
				t.Fatalf("seed %d: %s = %v %v, want %v %v", seed, id, sl.sched, ok, v, want)
			}
		}
		n := 0
		tb.each(func(*Session) { n++ })
		if n != len(ref) {
			t.Fatalf("seed %d: each saw %d, want %d", seed, n, len(ref))
		}
	}
}

// TestExpHeapOrder: the typed heap pops in time order whatever the
// interleaving of pushes and pops.
func TestExpHeapOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var h expHeap
	var ref []int64
	for step := 0; step < 20000; step++ {
		if len(h) == 0 || rng.IntN(3) > 0 {
			at := rng.Int64N(1000)
			h.push(expItem{at: at})
			ref = append(ref, at)
			continue
		}
		got := h.pop()
		mi := 0
		for i, v := range ref {
			if v < ref[mi] {
				mi = i
			}
		}
		if got.at != ref[mi] {
			t.Fatalf("step %d: popped %d, want %d", step, got.at, ref[mi])
		}
		ref = append(ref[:mi], ref[mi+1:]...)
	}
}
