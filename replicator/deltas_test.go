package replicator

import (
	"context"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/hlc"
)

func TestDeltaConstructors(t *testing.T) {
	l := NewLocal("n1", ReplicaConfig{TombstoneTTL: time.Minute})
	defer l.Close()
	wall := int64(1000 * sec)
	l.now = func() int64 { return wall }
	ctx := context.Background()
	var reasons []DestroyReason
	l.Subscribe(func(e Event) {
		if e.Kind == EventDestroyed {
			reasons = append(reasons, e.Reason)
		}
	})
	for _, id := range []string{"a", "b"} {
		if _, err := l.Commit(ctx, &Delta{ID: id, LastAccess: wall, IdleTimeout: 30 * sec, Ops: []Op{set("k", "v")}}, Async); err != nil {
			t.Fatal(err)
		}
	}

	s := l.Get("a")
	td := TouchDelta(s, wall+5*sec, l.clk.Now(wall+5*sec))
	if !td.TouchOnly() || td.Owner != s.Owner || td.Epoch != s.Epoch || td.Version != s.Version || td.LastAccess != wall+5*sec {
		t.Fatalf("touch delta %+v", td)
	}
	if (&Delta{Ops: []Op{{Kind: OpTouch}, set("k", "w")}}).TouchOnly() {
		t.Fatal("a set is not touch-only")
	}

	d := InvalidateDelta(l.Get("b"), "n2", wall+sec, ReasonEvicted)
	if d.ID != "b" || d.Owner != "n2" || d.LastAccess != wall+sec || d.TouchOnly() {
		t.Fatalf("invalidate delta %+v", d)
	}
	if _, err := l.Commit(ctx, d, Async); err != nil {
		t.Fatal(err)
	}
	if l.Get("b") != nil {
		t.Fatal("b survived its invalidation")
	}

	if ok, err := DestroyID(ctx, l, "a", wall+2*sec); !ok || err != nil {
		t.Fatal("DestroyID a:", ok, err)
	}
	if ok, err := DestroyID(ctx, l, "a", wall+3*sec); ok || err != nil {
		t.Fatal("DestroyID of a destroyed session:", ok, err)
	}
	if l.Get("a") != nil {
		t.Fatal("a survived DestroyID")
	}
	if len(reasons) != 2 || reasons[0] != ReasonEvicted || reasons[1] != ReasonInvalidated {
		t.Fatalf("destroy reasons %v", reasons)
	}
}

func TestTakeoverAndRename(t *testing.T) {
	d := &Delta{ID: "new", Owner: "n2", Epoch: 3, Ops: []Op{set("k", "v")}}
	d.Takeover()
	d.RenameFrom("old")
	if d.ID != "old" || d.Epoch != 4 || len(d.Ops) != 3 || d.Ops[0].Kind != OpTakeover || d.Ops[1].Kind != OpSet ||
		d.Ops[2].Kind != OpRename || d.Ops[2].Key != "new" {
		t.Fatalf("%+v", d)
	}

	r := NewReplica(ReplicaConfig{})
	var c hlc.Clock
	wall := int64(1000 * sec)
	if err := r.Commit(&Delta{ID: "old", Owner: "n1", Epoch: 3, LastAccess: wall, Ops: []Op{set("k", "a")}}, &c, wall); err != nil {
		t.Fatal(err)
	}
	d = &Delta{ID: "new", Owner: "n2", Epoch: 3, LastAccess: wall, Ops: []Op{set("k", "b")}}
	d.Takeover()
	d.RenameFrom("old")
	if err := r.Commit(d, &c, wall); err != nil {
		t.Fatal(err)
	}
	if r.Get("old") != nil {
		t.Fatal("old ID still live")
	}
	s := r.Get("new")
	if s == nil || val(s, "k") != "b" || s.Owner != "n2" || s.Epoch != 4 {
		t.Fatalf("renamed session: %s", dump(s))
	}
}
