package replicator

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/hlc"
)

const sec = int64(time.Second)

// sameSession compares two records field by field (nil and empty attribute
// maps are equal).
func sameSession(a, b *Session) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.ID != b.ID || a.Owner != b.Owner || a.Epoch != b.Epoch || a.Version != b.Version ||
		a.Created != b.Created || a.LastAccess != b.LastAccess || a.IdleTimeout != b.IdleTimeout ||
		a.Deadline != b.Deadline || a.Principal != b.Principal || a.PrincipalAt != b.PrincipalAt ||
		a.Destroyed != b.Destroyed || a.Reason != b.Reason || a.RenamedTo != b.RenamedTo ||
		a.Attrs.Len() != b.Attrs.Len() {
		return false
	}
	for k, av := range a.Attrs.All() {
		bv, ok := b.Attrs.Get(k)
		if !ok || av.Stamp != bv.Stamp || av.Deleted != bv.Deleted || !bytes.Equal(av.Value, bv.Value) {
			return false
		}
	}
	return true
}

func records(r *Replica) []*Session {
	var out []*Session
	r.Range(func(s *Session) bool { out = append(out, s); return true })
	slices.SortFunc(out, func(a, b *Session) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func dump(s *Session) string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *s)
}

func set(k, v string) Op { return Op{Kind: OpSet, Key: k, Value: []byte(v)} }
func del(k string) Op    { return Op{Kind: OpDel, Key: k} }

func mustApply(t testing.TB, r *Replica, d *Delta) ApplyResult {
	t.Helper()
	res, err := r.Apply(d)
	if err != nil {
		t.Fatalf("apply %+v: %v", d, err)
	}
	return res
}

func val(s *Session, k string) string {
	if s == nil {
		return "<no session>"
	}
	a, ok := s.Attrs.Get(k)
	if !ok || a.Deleted {
		return "<none>"
	}
	return string(a.Value)
}

// genDeltas makes random deltas from three nodes over a small set of IDs,
// with takeovers, invalidations, principals, touches and renames (each
// ID renamed at most once, to a fresh ID that later deltas also use).
func genDeltas(rng *rand.Rand, n int) []*Delta {
	nodes := []string{"a", "b", "c"}
	var clocks [3]hlc.Clock
	ids := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	renamed := map[string]bool{}
	var out []*Delta
	wall := int64(1_000_000 * sec)
	for i := 0; i < n; i++ {
		ni := rng.IntN(3)
		wall += rng.Int64N(int64(time.Millisecond)) - int64(time.Millisecond)/4 // clocks jitter
		id := ids[rng.IntN(len(ids))]
		d := &Delta{
			ID: id, Owner: nodes[ni], Epoch: uint32(rng.IntN(3)), Version: uint64(rng.IntN(20)),
			HLC: clocks[ni].Now(wall + int64(ni)*int64(time.Millisecond)), Created: int64(rng.IntN(3)),
			LastAccess: wall, IdleTimeout: int64(rng.IntN(2)) * 30 * sec,
		}
		nops := rng.IntN(4)
		for j := 0; j < nops; j++ {
			k := fmt.Sprintf("k%d", rng.IntN(5))
			switch x := rng.IntN(10); {
			case x < 6:
				d.Ops = append(d.Ops, set(k, fmt.Sprintf("v%d", rng.IntN(1000))))
			case x < 9:
				d.Ops = append(d.Ops, del(k))
			default:
				d.Ops = append(d.Ops, Op{Kind: OpPrincipal, Value: []byte(fmt.Sprintf("u%d", rng.IntN(3)))})
			}
		}
		switch x := rng.IntN(100); {
		case x < 3:
			d.Ops = append(d.Ops, InvalidateOp(DestroyReason(1+rng.IntN(4))))
		case x < 8 && !renamed[id]:
			renamed[id] = true
			nid := fmt.Sprintf("r%d", i)
			ids = append(ids, nid)
			d.Ops = append(d.Ops, Op{Kind: OpRename, Key: nid})
		case x < 12:
			d.Epoch++
			d.Ops = append(d.Ops, Op{Kind: OpTakeover})
		case x < 20:
			d.Ops = append(d.Ops, Op{Kind: OpTouch})
		}
		out = append(out, d)
	}
	return out
}

func TestConvergenceProperty(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		ds := genDeltas(rng, 60+rng.IntN(80))
		var reps [3]*Replica
		for i := range reps {
			reps[i] = NewReplica(ReplicaConfig{})
			order := slices.Clone(ds)
			for j := 0; j < len(ds)/4; j++ { // duplicates
				order = append(order, ds[rng.IntN(len(ds))])
			}
			rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
			for _, d := range order {
				mustApply(t, reps[i], d)
			}
		}
		ra := records(reps[0])
		for i := 1; i < 3; i++ {
			rb := records(reps[i])
			if len(ra) != len(rb) {
				t.Fatalf("seed %d: replica 0 has %d records, replica %d has %d", seed, len(ra), i, len(rb))
			}
			for j := range ra {
				if !sameSession(ra[j], rb[j]) {
					t.Fatalf("seed %d: record differs:\n0: %s\n%d: %s", seed, dump(ra[j]), i, dump(rb[j]))
				}
			}
			if !slices.Equal(reps[0].Digest(16), reps[i].Digest(16)) {
				t.Fatalf("seed %d: digests differ", seed)
			}
			if reps[0].Len() != reps[i].Len() {
				t.Fatalf("seed %d: Len %d vs %d", seed, reps[0].Len(), reps[i].Len())
			}
			for _, s := range ra {
				if !sameSession(reps[0].Get(s.ID), reps[i].Get(s.ID)) {
					t.Fatalf("seed %d: Get(%s) differs", seed, s.ID)
				}
			}
		}
		// Full records merged into an empty replica (state transfer)
		// reproduce the state.
		fresh := NewReplica(ReplicaConfig{})
		for _, s := range records(reps[1]) {
			fresh.MergeSession(s)
		}
		if !slices.Equal(fresh.Digest(16), reps[0].Digest(16)) {
			t.Fatalf("seed %d: merged copy differs", seed)
		}
		// And so does cross-merging between replicas fed different
		// halves.
		x, y := NewReplica(ReplicaConfig{}), NewReplica(ReplicaConfig{})
		for j, d := range ds {
			if j%2 == 0 {
				mustApply(t, x, d)
			} else {
				mustApply(t, y, d)
			}
		}
		for _, s := range records(y) {
			x.MergeSession(s)
		}
		for _, s := range records(x) {
			y.MergeSession(s)
		}
		// Without renames and destroys cross-merging is exact; with them,
		// records moved before the other half arrived may differ, so check
		// only that both sides agree with each other.
		if !slices.Equal(x.Digest(16), y.Digest(16)) {
			t.Fatalf("seed %d: anti-entropy did not converge", seed)
		}
	}
}

func TestLWWPerAttribute(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 10, Version: 1, Ops: []Op{set("x", "a10"), set("y", "a10")}})
	mustApply(t, r, &Delta{ID: "s", Owner: "b", HLC: 5, Version: 2, Ops: []Op{set("x", "b5"), set("z", "b5")}})
	s := r.Get("s")
	if val(s, "x") != "a10" || val(s, "y") != "a10" || val(s, "z") != "b5" {
		t.Fatalf("got %s", dump(s))
	}
	// A higher epoch wins whatever the HLC.
	mustApply(t, r, &Delta{ID: "s", Owner: "b", Epoch: 1, HLC: 1, Version: 1, Ops: []Op{set("x", "e1")}})
	if val(r.Get("s"), "x") != "e1" {
		t.Fatal("epoch did not win")
	}
	// A delete is a tombstone: an older set does not resurrect it.
	mustApply(t, r, &Delta{ID: "s", Owner: "a", Epoch: 1, HLC: 20, Ops: []Op{del("y")}})
	mustApply(t, r, &Delta{ID: "s", Owner: "c", Epoch: 1, HLC: 15, Ops: []Op{set("y", "old")}})
	if val(r.Get("s"), "y") != "<none>" {
		t.Fatal("deleted attribute resurrected")
	}
	// Same stamp: node breaks the tie.
	mustApply(t, r, &Delta{ID: "t", Owner: "a", HLC: 7, Ops: []Op{set("k", "a")}})
	mustApply(t, r, &Delta{ID: "t", Owner: "b", HLC: 7, Ops: []Op{set("k", "b")}})
	if val(r.Get("t"), "k") != "b" {
		t.Fatal("node tie-break")
	}
	// Within one delta, the last op on a key wins.
	mustApply(t, r, &Delta{ID: "u", Owner: "a", HLC: 7, Ops: []Op{set("k", "1"), del("k"), set("k", "3")}})
	if val(r.Get("u"), "k") != "3" {
		t.Fatalf("in-delta order: %s", dump(r.Get("u")))
	}
	// Duplicates change nothing.
	d := &Delta{ID: "u", Owner: "a", HLC: 7, Ops: []Op{set("k", "1"), del("k"), set("k", "3")}}
	if res := mustApply(t, r, d); res.Changed {
		t.Fatal("duplicate changed the replica")
	}
}

func TestUnknownSessionDeltaCreatesIt(t *testing.T) {
	var got []Event
	var mu sync.Mutex
	r := NewReplica(ReplicaConfig{OnEvent: func(e Event) { mu.Lock(); got = append(got, e); mu.Unlock() }})
	res := mustApply(t, r, &Delta{ID: "late", Owner: "b", Epoch: 3, Version: 17, HLC: 99, Created: 5, LastAccess: 9,
		IdleTimeout: 30 * sec, Ops: []Op{del("gone"), {Kind: OpPrincipal, Value: []byte("alice")}}})
	if !res.Created {
		t.Fatal("not created")
	}
	s := r.Get("late")
	if s == nil || s.Owner != "b" || s.Epoch != 3 || s.Version != 17 || s.Created != 5 || s.LastAccess != 9 || s.Principal != "alice" {
		t.Fatalf("got %s", dump(s))
	}
	if ids := r.SessionsOf("alice"); len(ids) != 1 || ids[0] != "late" {
		t.Fatalf("SessionsOf = %v", ids)
	}
	if len(got) != 1 || got[0].Kind != EventCreated || got[0].ID != "late" {
		t.Fatalf("events %v", got)
	}
	if r.Len() != 1 {
		t.Fatal("Len")
	}
}

func TestInvalidationWins(t *testing.T) {
	var got []Event
	r := NewReplica(ReplicaConfig{OnEvent: func(e Event) { got = append(got, e) }})
	mustApply(t, r, &Delta{ID: "s", Owner: "a", Epoch: 5, HLC: 100, Ops: []Op{set("x", "1"), {Kind: OpPrincipal, Value: []byte("bob")}}})
	// An invalidation with an old stamp still wins.
	res := mustApply(t, r, &Delta{ID: "s", Owner: "b", Epoch: 0, HLC: 1, Ops: []Op{InvalidateOp(ReasonDisplaced)}})
	if !res.Destroyed || r.Get("s") != nil || r.Len() != 0 || len(r.SessionsOf("bob")) != 0 {
		t.Fatalf("not destroyed: %+v", res)
	}
	if rec := r.Lookup("s"); !rec.Destroyed || rec.Reason != ReasonDisplaced {
		t.Fatalf("tombstone %s", dump(rec))
	}
	// A later delta never revives the ID.
	res = mustApply(t, r, &Delta{ID: "s", Owner: "a", Epoch: 9, HLC: 1000, Ops: []Op{set("x", "2")}})
	if !res.Ignored || r.Get("s") != nil {
		t.Fatal("resurrected")
	}
	// Invalidation before any other delta leaves a tombstone too.
	mustApply(t, r, &Delta{ID: "t", Owner: "a", HLC: 5, Ops: []Op{{Kind: OpInvalidate}}})
	mustApply(t, r, &Delta{ID: "t", Owner: "a", HLC: 1, Ops: []Op{set("x", "1")}})
	if r.Get("t") != nil {
		t.Fatal("delta before create resurrected invalidated id")
	}
	if len(got) != 2 || got[1].Kind != EventDestroyed || got[1].Reason != ReasonDisplaced {
		t.Fatalf("events %+v", got)
	}
	// Commit on a destroyed ID fails.
	var c hlc.Clock
	if err := r.Commit(&Delta{ID: "s", Owner: "a", Ops: []Op{set("x", "1")}}, &c, 1); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("commit on tombstone: %v", err)
	}
}

func TestRenameOrdering(t *testing.T) {
	mk := func() []*Delta {
		return []*Delta{
			{ID: "old", Owner: "a", HLC: 10, Version: 1, Ops: []Op{set("x", "1"), set("y", "1"), {Kind: OpPrincipal, Value: []byte("u")}}},
			{ID: "old", Owner: "a", HLC: 20, Version: 2, Ops: []Op{set("y", "2"), {Kind: OpRename, Key: "new"}}},
			{ID: "new", Owner: "a", HLC: 30, Version: 3, Ops: []Op{set("z", "3")}},
			{ID: "old", Owner: "b", HLC: 15, Version: 1, Ops: []Op{set("w", "b")}}, // concurrent write on the old ID
		}
	}
	var want []*Session
	perms := [][]int{{0, 1, 2, 3}, {2, 1, 0, 3}, {3, 2, 1, 0}, {1, 2, 3, 0}, {2, 3, 0, 1}}
	for pi, p := range perms {
		r := NewReplica(ReplicaConfig{})
		ds := mk()
		for _, i := range p {
			mustApply(t, r, ds[i])
		}
		s := r.Get("new")
		if val(s, "x") != "1" || val(s, "y") != "2" || val(s, "z") != "3" || val(s, "w") != "b" || s.Principal != "u" {
			t.Fatalf("order %v: new = %s", p, dump(s))
		}
		if r.Get("old") != nil {
			t.Fatal("old id alive")
		}
		if rec := r.Lookup("old"); rec.Reason != ReasonRenamed || rec.RenamedTo != "new" {
			t.Fatalf("old tombstone %s", dump(rec))
		}
		if ids := r.SessionsOf("u"); len(ids) != 1 || ids[0] != "new" {
			t.Fatalf("principal index %v", ids)
		}
		got := records(r)
		if pi == 0 {
			want = got
		} else {
			for i := range want {
				if !sameSession(want[i], got[i]) {
					t.Fatalf("order %v differs: %s vs %s", p, dump(want[i]), dump(got[i]))
				}
			}
		}
	}
}

func TestRenameVersusInvalidate(t *testing.T) {
	ren := &Delta{ID: "old", Owner: "a", HLC: 20, Ops: []Op{{Kind: OpRename, Key: "new"}}}
	inv := &Delta{ID: "old", Owner: "b", HLC: 10, Ops: []Op{{Kind: OpInvalidate}}}
	base := &Delta{ID: "old", Owner: "a", HLC: 5, Ops: []Op{set("x", "1")}}
	after := &Delta{ID: "new", Owner: "a", HLC: 30, Ops: []Op{set("y", "1")}}
	var digests [][]uint64
	for _, order := range [][]*Delta{{base, ren, inv, after}, {base, inv, ren, after}, {after, inv, base, ren}, {ren, after, base, inv}} {
		r := NewReplica(ReplicaConfig{})
		for _, d := range order {
			mustApply(t, r, d)
		}
		if r.Get("old") != nil || r.Get("new") != nil {
			t.Fatalf("invalidation must kill both ids: old=%s new=%s", dump(r.Get("old")), dump(r.Get("new")))
		}
		digests = append(digests, r.Digest(4))
	}
	for _, d := range digests[1:] {
		if !slices.Equal(d, digests[0]) {
			t.Fatal("digests differ")
		}
	}
}

func TestTooLarge(t *testing.T) {
	r := NewReplica(ReplicaConfig{MaxSessionBytes: 100, MaxAttrBytes: 60})
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 1, Ops: []Op{set("a", strings.Repeat("x", 50))}})
	before := records(r)
	_, err := r.Apply(&Delta{ID: "s", Owner: "a", HLC: 2, Ops: []Op{set("b", "1"), set("c", strings.Repeat("x", 61))}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("attr limit: %v", err)
	}
	_, err = r.Apply(&Delta{ID: "s", Owner: "a", HLC: 2, Ops: []Op{set("b", "1"), set("c", strings.Repeat("x", 48))}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("session limit: %v", err)
	}
	var c hlc.Clock
	d := &Delta{ID: "s", Owner: "a", Ops: []Op{set("c", strings.Repeat("x", 49))}}
	if err := r.Commit(d, &c, 1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("commit: %v", err)
	}
	after := records(r)
	if len(before) != len(after) || !sameSession(before[0], after[0]) {
		t.Fatal("something was applied")
	}
	// Replacing a value keeps the size in bounds.
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 3, Ops: []Op{set("a", strings.Repeat("y", 60))}})
}

func TestCommitAssignsVersionAndHLC(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	var c hlc.Clock
	var last uint64
	for i := 1; i <= 3; i++ {
		d := &Delta{ID: "s", Owner: "a", LastAccess: int64(i), Ops: []Op{set("k", fmt.Sprint(i))}}
		if err := r.Commit(d, &c, 1000); err != nil {
			t.Fatal(err)
		}
		if d.Version != uint64(i) || d.HLC <= last {
			t.Fatalf("commit %d: version %d hlc %d", i, d.Version, d.HLC)
		}
		last = d.HLC
	}
	s := r.Get("s")
	if s.Version != 3 || val(s, "k") != "3" {
		t.Fatalf("%s", dump(s))
	}
	// A peer replaying the same deltas reaches the same state.
	res := mustApply(t, r, &Delta{ID: "s", Owner: "a", Version: 5, HLC: last + 1})
	if !res.Gap {
		t.Fatal("version gap not reported")
	}
}

func TestTakeover(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	mustApply(t, r, &Delta{ID: "s", Owner: "a", Epoch: 0, Version: 7, HLC: 100, Ops: []Op{set("k", "a")}})
	mustApply(t, r, &Delta{ID: "s", Owner: "b", Epoch: 1, Version: 3, HLC: 50, Ops: []Op{{Kind: OpTakeover}}})
	// A stale write of the old owner arrives late: it loses.
	mustApply(t, r, &Delta{ID: "s", Owner: "a", Epoch: 0, Version: 8, HLC: 200, Ops: []Op{set("k", "late")}})
	s := r.Get("s")
	if s.Owner != "b" || s.Epoch != 1 || s.Version != 3 {
		t.Fatalf("%s", dump(s))
	}
	// The attribute with the higher stamp wins inside its epoch order.
	if val(s, "k") != "late" {
		// epoch 0 writes still beat older epoch 0 writes; "late" is the
		// newest epoch-0 value and nobody wrote k in epoch 1.
		t.Fatalf("k = %s", val(s, "k"))
	}
	mustApply(t, r, &Delta{ID: "s", Owner: "b", Epoch: 1, Version: 4, HLC: 60, Ops: []Op{set("k", "b")}})
	if val(r.Get("s"), "k") != "b" {
		t.Fatal("new epoch write lost")
	}
}

func TestTouchAndGetAreCopyOnWrite(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 1, LastAccess: 10, Ops: []Op{set("k", "v")}})
	s1 := r.Get("s")
	r.Touch("s", 20)
	r.Touch("s", 15) // older: ignored
	s2 := r.Get("s")
	if s1.LastAccess != 10 || s2.LastAccess != 20 {
		t.Fatalf("touch: %d %d", s1.LastAccess, s2.LastAccess)
	}
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 2, Ops: []Op{set("k", "w")}})
	if val(s2, "k") != "v" || val(r.Get("s"), "k") != "w" {
		t.Fatal("a handed-out session changed")
	}
	r.Touch("absent", 5)
	if r.Get("absent") != nil {
		t.Fatal("touch created a session")
	}
}

func TestExpiry(t *testing.T) {
	var got []Event
	r := NewReplica(ReplicaConfig{PeerExpiryGrace: 5 * time.Second, OnEvent: func(e Event) { got = append(got, e) }})
	now := int64(1000 * sec)
	mustApply(t, r, &Delta{ID: "idle", Owner: "me", HLC: 1, LastAccess: now, IdleTimeout: 30 * sec})
	mustApply(t, r, &Delta{ID: "abs", Owner: "me", HLC: 1, LastAccess: now, IdleTimeout: 3600 * sec, Deadline: now + 10*sec})
	mustApply(t, r, &Delta{ID: "peer", Owner: "other", HLC: 1, LastAccess: now, IdleTimeout: 30 * sec})
	mustApply(t, r, &Delta{ID: "touched", Owner: "me", HLC: 1, LastAccess: now, IdleTimeout: 30 * sec})
	mustApply(t, r, &Delta{ID: "forever", Owner: "me", HLC: 1, LastAccess: now})
	isOwner := func(s *Session) bool { return s.Owner == "me" }

	if n := r.NextExpiry(); n != now+10*sec {
		t.Fatalf("NextExpiry = %d", n-now)
	}
	if ids := r.Expire(now+9*sec, isOwner); len(ids) != 0 {
		t.Fatalf("early: %v", ids)
	}
	if ids := r.Expire(now+10*sec, isOwner); !slices.Equal(ids, []string{"abs"}) {
		t.Fatalf("absolute: %v", ids)
	}
	r.Touch("touched", now+20*sec)
	ids := r.Expire(now+30*sec, isOwner)
	if !slices.Equal(ids, []string{"idle"}) {
		t.Fatalf("idle: %v", ids)
	}
	if r.Get("peer") == nil || r.Get("touched") == nil {
		t.Fatal("peer session expired without grace, or touch did not postpone")
	}
	ids = r.Expire(now+35*sec, isOwner)
	if !slices.Equal(ids, []string{"peer"}) {
		t.Fatalf("grace: %v", ids)
	}
	ids = r.Expire(now+50*sec, isOwner)
	if !slices.Equal(ids, []string{"touched"}) {
		t.Fatalf("touched: %v", ids)
	}
	if r.Len() != 1 || r.Get("forever") == nil {
		t.Fatal("forever session")
	}
	for _, e := range got {
		if e.Kind == EventDestroyed && e.Reason != ReasonExpired {
			t.Fatalf("reason %v", e.Reason)
		}
	}
	if r.Lookup("idle").Reason != ReasonExpired {
		t.Fatal("tombstone reason")
	}
	// A shorter idle timeout set later moves the expiry earlier.
	mustApply(t, r, &Delta{ID: "forever", Owner: "me", Version: 2, HLC: 2, LastAccess: now + 50*sec, IdleTimeout: 1 * sec})
	if ids := r.Expire(now+52*sec, isOwner); !slices.Equal(ids, []string{"forever"}) {
		t.Fatalf("shortened: %v", ids)
	}
}

func TestTombstoneGC(t *testing.T) {
	r := NewReplica(ReplicaConfig{TombstoneTTL: time.Minute})
	now := int64(1000 * sec)
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 1, Ops: []Op{{Kind: OpInvalidate}}})
	r.Expire(now, nil) // stamps the tombstone
	if r.Tombstones() != 1 {
		t.Fatal("tombstone missing")
	}
	if n := r.NextExpiry(); n != now+int64(time.Minute) {
		t.Fatalf("NextExpiry %d", n-now)
	}
	r.Expire(now+59*sec, nil)
	if r.Lookup("s") == nil {
		t.Fatal("dropped early")
	}
	r.Expire(now+60*sec, nil)
	if r.Lookup("s") != nil || r.Tombstones() != 0 {
		t.Fatal("not dropped")
	}
}

func TestDigest(t *testing.T) {
	a, b := NewReplica(ReplicaConfig{}), NewReplica(ReplicaConfig{})
	ds := []*Delta{
		{ID: "s1", Owner: "a", HLC: 1, Ops: []Op{set("k", "v")}},
		{ID: "s2", Owner: "b", HLC: 2, Ops: []Op{set("k", "v"), {Kind: OpPrincipal, Value: []byte("p")}}},
		{ID: "s3", Owner: "b", HLC: 3, Ops: []Op{{Kind: OpInvalidate}}},
	}
	for _, d := range ds {
		mustApply(t, a, d)
	}
	for i := len(ds) - 1; i >= 0; i-- {
		mustApply(t, b, ds[i])
	}
	if !slices.Equal(a.Digest(8), b.Digest(8)) {
		t.Fatal("equal replicas, different digests")
	}
	// LastAccess is not part of the digest.
	b.Touch("s1", 99)
	if !slices.Equal(a.Digest(8), b.Digest(8)) {
		t.Fatal("touch changed the digest")
	}
	mustApply(t, b, &Delta{ID: "s1", Owner: "a", HLC: 5, Ops: []Op{set("k", "w")}})
	da, db := a.Digest(8), b.Digest(8)
	bk := BucketOf("s1", 8)
	for i := range da {
		if (da[i] != db[i]) != (i == bk) {
			t.Fatalf("bucket %d: differs=%v, want only bucket %d", i, da[i] != db[i], bk)
		}
	}
	// Repair: ship the bucket.
	for _, s := range b.BucketSessions(bk, 8) {
		a.MergeSession(s)
	}
	if !slices.Equal(a.Digest(8), b.Digest(8)) {
		t.Fatal("repair did not converge")
	}
	if a.Digest(0)[0] != b.Digest(1)[0] {
		t.Fatal("digest(0) is digest(1)")
	}
}

func TestMergeSessionRules(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	mustApply(t, r, &Delta{ID: "s", Owner: "a", HLC: 10, Ops: []Op{set("x", "1")}})
	old := &Session{ID: "s", Owner: "a", Attrs: NewAttrs(map[string]Attr{"x": {Value: []byte("0"), Stamp: Stamp{HLC: 5, Node: "a"}}})}
	if r.MergeSession(old) {
		t.Fatal("older record changed the replica")
	}
	newer := &Session{ID: "s", Owner: "a", Version: 2, Attrs: NewAttrs(map[string]Attr{"y": {Value: []byte("2"), Stamp: Stamp{HLC: 11, Node: "a"}}})}
	if !r.MergeSession(newer) || val(r.Get("s"), "x") != "1" || val(r.Get("s"), "y") != "2" {
		t.Fatalf("%s", dump(r.Get("s")))
	}
	if !r.MergeSession(&Session{ID: "s", Destroyed: true, Reason: ReasonEvicted}) || r.Get("s") != nil {
		t.Fatal("tombstone lost")
	}
	if r.MergeSession(newer) {
		t.Fatal("resurrected by merge")
	}
	// A renamed tombstone moves the live state.
	mustApply(t, r, &Delta{ID: "o", Owner: "a", HLC: 10, Ops: []Op{set("x", "1")}})
	r.MergeSession(&Session{ID: "o", Destroyed: true, Reason: ReasonRenamed, RenamedTo: "n"})
	if val(r.Get("n"), "x") != "1" {
		t.Fatal("state not moved")
	}
}

func TestConcurrentCommitAndGet(t *testing.T) {
	r := NewReplica(ReplicaConfig{})
	var c hlc.Clock
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				id := fmt.Sprintf("s%d", i%20)
				if err := r.Commit(&Delta{ID: id, Owner: "a", LastAccess: int64(i), IdleTimeout: sec, Ops: []Op{set(fmt.Sprint(g), "v")}}, &c, int64(i)); err != nil {
					t.Error(err)
					return
				}
				if s := r.Get(id); s == nil {
					t.Error("nil")
					return
				}
				r.Touch(id, int64(i))
				r.Digest(4)
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			r.Expire(int64(i), nil)
		}
	}()
	wg.Wait()
	for i := 0; i < 20; i++ {
		s := r.Get(fmt.Sprintf("s%d", i))
		if s.Attrs.Len() != 8 || s.Version != 200 {
			t.Fatalf("%s", dump(s))
		}
	}
}
