package replicator

import (
	"slices"
	"testing"

	"github.com/hanode/hanode/internal/hlc"
)

// Key records (KeyPrefix) leave no tombstone when destroyed, so a key can
// be written again at once; sessions keep theirs.
func TestKeyRecordLeavesNoTombstone(t *testing.T) {
	var events []Event
	r := NewReplica(ReplicaConfig{OnEvent: func(e Event) { events = append(events, e) }})
	var clk hlc.Clock
	now := int64(1000 * sec)
	id := KeyPrefix + "k"
	if !IsKeyRecord(id) || IsKeyRecord("abcdefghijklmnopqrstuvwxyz012345") || IsKeyRecord("kv") {
		t.Fatal("IsKeyRecord")
	}
	if err := r.Commit(&Delta{ID: id, Owner: "a", Deadline: now + 10*sec, Ops: []Op{set("s", "v1")}}, &clk, now); err != nil {
		t.Fatal(err)
	}
	if ids := r.Expire(now+10*sec, nil); !slices.Equal(ids, []string{id}) {
		t.Fatalf("expired %v", ids)
	}
	if r.Lookup(id) != nil || r.Tombstones() != 0 || r.Len() != 0 {
		t.Fatalf("tombstone kept: %s, %d tombstones", dump(r.Lookup(id)), r.Tombstones())
	}
	if len(events) != 2 || events[1].Kind != EventDestroyed || !events[1].ByTimer || events[1].Reason != ReasonExpired {
		t.Fatalf("events %+v", events)
	}
	// Written again at once, by a local commit and by a peer's delta.
	if err := r.Commit(&Delta{ID: id, Owner: "a", Ops: []Op{set("s", "v2")}}, &clk, now+11*sec); err != nil {
		t.Fatalf("rewrite after expiry: %v", err)
	}
	if s := r.Get(id); s == nil || string(s.Attrs.Value("s")) != "v2" || s.Version != 1 {
		t.Fatalf("rewritten: %s", dump(s))
	}
	if err := r.Commit(&Delta{ID: id, Owner: "a", Ops: []Op{{Kind: OpInvalidate}}}, &clk, now+12*sec); err != nil {
		t.Fatal(err)
	}
	if r.Lookup(id) != nil || r.Tombstones() != 0 {
		t.Fatal("invalidated key record left a tombstone")
	}
	res := mustApply(t, r, &Delta{ID: id, Owner: "b", Version: 7, HLC: clk.Now(now + 13*sec), Ops: []Op{set("s", "v3")}})
	if !res.Created || r.Get(id) == nil {
		t.Fatalf("peer delta after destroy: %+v", res)
	}
	// A tombstone record merged by anti-entropy destroys a live key record
	// and leaves nothing behind either.
	if !r.MergeSession(tomb(id, ReasonInvalidated, "")) || r.Lookup(id) != nil || r.Tombstones() != 0 {
		t.Fatalf("merged tombstone: %s", dump(r.Lookup(id)))
	}
	// A session ID keeps its tombstone.
	mustApply(t, r, &Delta{ID: "sess", Owner: "a", HLC: 1, Ops: []Op{{Kind: OpInvalidate}}})
	if s := r.Lookup("sess"); s == nil || !s.Destroyed || r.Tombstones() != 1 {
		t.Fatal("session tombstone missing")
	}
	if err := r.Commit(&Delta{ID: "sess", Owner: "a"}, &clk, now); err == nil {
		t.Fatal("commit on a destroyed session accepted")
	}
}
