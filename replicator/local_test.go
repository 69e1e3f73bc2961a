package replicator

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

var _ Store = (*Local)(nil)

func TestLocalStore(t *testing.T) {
	l := NewLocal("n1", ReplicaConfig{})
	wall := int64(1000 * sec)
	l.now = func() int64 { return wall }
	ctx := context.Background()
	d := &Delta{ID: "s", LastAccess: wall, IdleTimeout: 30 * sec, Ops: []Op{set("k", "v"), {Kind: OpPrincipal, Value: []byte("alice")}}}
	res, err := l.Commit(ctx, d, SyncAll)
	if err != nil || res.Replicated {
		t.Fatal(res, err)
	}
	if d.Owner != "n1" || d.Version != 1 || d.HLC == 0 {
		t.Fatalf("%+v", d)
	}
	if s := l.Get("s"); val(s, "k") != "v" || s.Owner != "n1" {
		t.Fatal(dump(s))
	}
	if l.Len() != 1 || len(l.SessionsOf("alice")) != 1 || l.Node() != "n1" {
		t.Fatal("Len/SessionsOf/Node")
	}
	l.Touch("s", wall+20*sec)
	if ids := l.ExpireNow(wall + 40*sec); len(ids) != 0 {
		t.Fatal("touch did not postpone")
	}
	if ids := l.ExpireNow(wall + 50*sec); len(ids) != 1 {
		t.Fatal("not expired")
	}
	if _, err := l.Commit(ctx, &Delta{ID: "s", Ops: []Op{set("k", "w")}}, Async); !errors.Is(err, ErrDestroyed) {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Commit(cctx, &Delta{ID: "t"}, Async); !errors.Is(err, context.Canceled) || l.Get("t") != nil {
		t.Fatal(err)
	}
}

func TestLocalRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal("n1", ReplicaConfig{TombstoneTTL: time.Minute})
		now := time.Now().UnixNano()
		if _, err := l.Commit(context.Background(), &Delta{ID: "s", LastAccess: now, Deadline: now + 10*sec}, Async); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		// The sleeps are synctest's virtual time: the test asserts what
		// the store holds at given instants, so time passing is the input.
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if l.Len() != 1 {
			t.Fatal("expired early")
		}
		time.Sleep(1*time.Second + time.Millisecond)
		synctest.Wait()
		if l.Len() != 0 || l.Replica().Tombstones() != 1 {
			t.Fatal("Run did not expire")
		}
		time.Sleep(62 * time.Second)
		synctest.Wait()
		if l.Replica().Tombstones() != 0 {
			t.Fatal("Run did not drop the tombstone")
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}

// TestLocalExpiresWithoutRun: nobody calls Run or ExpireNow, yet sessions
// expire on time, tombstones are collected, the timer disarms when
// nothing is left, and Close stops it.
func TestLocalExpiresWithoutRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal("n1", ReplicaConfig{TombstoneTTL: time.Minute})
		expired := 0
		l.Subscribe(func(e Event) {
			if e.Kind == EventDestroyed && e.ByTimer {
				expired++
			}
		})
		now := time.Now().UnixNano()
		for i := range 100 {
			d := &Delta{ID: "s" + strconv.Itoa(i), LastAccess: now, IdleTimeout: sec, Ops: []Op{set("k", "v")}}
			if _, err := l.Commit(context.Background(), d, Async); err != nil {
				t.Fatal(err)
			}
		}
		// One session without any timeout: it never expires and does not
		// keep the timer armed.
		if _, err := l.Commit(context.Background(), &Delta{ID: "forever", LastAccess: now}, Async); err != nil {
			t.Fatal(err)
		}
		// Virtual time (synctest): the instants are what the test asserts.
		time.Sleep(900 * time.Millisecond)
		synctest.Wait()
		if l.Len() != 101 {
			t.Fatalf("expired early: %d left", l.Len())
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if l.Len() != 1 || expired != 100 || l.Replica().Tombstones() != 100 {
			t.Fatalf("after 2 s: %d live, %d expired events, %d tombstones", l.Len(), expired, l.Replica().Tombstones())
		}
		time.Sleep(62 * time.Second)
		synctest.Wait()
		if l.Replica().Tombstones() != 0 {
			t.Fatal("tombstones not collected")
		}
		l.expMu.Lock()
		armed := l.armed
		l.expMu.Unlock()
		if armed {
			t.Fatal("timer still armed with nothing to expire")
		}

		// Close: the timer stays off, ExpireNow still works.
		l.Close()
		now = time.Now().UnixNano()
		if _, err := l.Commit(context.Background(), &Delta{ID: "late", LastAccess: now, IdleTimeout: sec}, Async); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if l.Get("late") == nil {
			t.Fatal("expired after Close")
		}
		if ids := l.ExpireNow(time.Now().UnixNano()); len(ids) != 1 {
			t.Fatal("ExpireNow after Close")
		}
	})
}

// TestLocalRunPausesTimer: while Run runs the automatic timer is off; it
// resumes when Run returns.
func TestLocalRunPausesTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal("n1", ReplicaConfig{})
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		synctest.Wait()
		now := time.Now().UnixNano()
		if _, err := l.Commit(context.Background(), &Delta{ID: "s", LastAccess: now, IdleTimeout: sec}, Async); err != nil {
			t.Fatal(err)
		}
		l.expMu.Lock()
		armed := l.armed
		l.expMu.Unlock()
		if armed {
			t.Fatal("timer armed while Run runs")
		}
		cancel()
		<-done
		now = time.Now().UnixNano()
		if _, err := l.Commit(context.Background(), &Delta{ID: "t", LastAccess: now, IdleTimeout: sec}, Async); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // virtual (synctest): past the 1 s idle timeout
		synctest.Wait()
		if l.Len() != 0 {
			t.Fatalf("%d sessions left after Run returned", l.Len())
		}
	})
}
