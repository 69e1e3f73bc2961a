package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// TestDeltasOnlyFromMembers: a delta batch from a sender that membership
// does not list is not applied; it is held for a few heartbeats and
// applied if the sender joins (its heartbeat was merely late), and
// refused and counted otherwise (a replayed or stray sender never changes
// the replica). (Before, deltas were applied from any authenticated
// sender.)
func TestDeltasOnlyFromMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 44)
		n1 := l.start("n1", nil)
		waitReady(t, n1)

		stray := func(id string) (multicast.Transport, []byte) {
			cfg := TransportConfig(testConfig("stray", l.kr))
			cfg.MemberID = [16]byte{}
			tr, err := l.net.Join(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			now := time.Now().UnixNano()
			d := &replicator.Delta{ID: id, Owner: "stray", Epoch: 1, Created: now, LastAccess: now, IdleTimeout: int64(time.Hour),
				Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "k", Value: []byte("forged")}}}
			return tr, codec.AppendBatch([]byte{kindDeltas}, []*replicator.Delta{d})
		}

		// A sender that never joins: refused after the wait, counted.
		tr, batch := stray("neverjoinsxxxxxxxxxxxxxxxxx")
		if _, err := tr.Broadcast(context.Background(), batch, multicast.SendOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the stray batch refused", func() error {
			if got := n1.gate.refusedCounts()[refusedNotMember]; got != 1 {
				return fmt.Errorf("%d refused", got)
			}
			return nil
		})
		if n1.Get("neverjoinsxxxxxxxxxxxxxxxxx") != nil {
			t.Fatal("a delta from a non-member was applied")
		}

		// A sender whose heartbeat comes after its first batch: held, then
		// applied once it is a member.
		tr2, batch2 := stray("latejoinerxxxxxxxxxxxxxxxxx")
		if _, err := tr2.Broadcast(context.Background(), batch2, multicast.SendOptions{}); err != nil {
			t.Fatal(err)
		}
		mcfg := membership.DefaultConfig()
		mcfg.ID, mcfg.Name, mcfg.Started = tr2.LocalID(), "late", time.Now()
		m, err := membership.New(mcfg, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m.Tick(time.Now())
		for _, o := range m.Ready().Messages {
			if err := tr2.SendControl(o.To, append([]byte{kindMembership}, o.Payload...)); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 5*time.Second, "the held batch applied", func() error {
			if v, ok := attr(n1, "latejoinerxxxxxxxxxxxxxxxxx", "k"); !ok || v != "forged" {
				return fmt.Errorf("absent")
			}
			return nil
		})
		if got := n1.gate.refusedCounts()[refusedNotMember]; got != 1 {
			t.Fatalf("%d refused, want 1", got)
		}
	})
}

// TestClockApartDelaysLoneStart: a node whose clock is far from the
// cluster's refuses the cluster's packets as stale; it does not declare
// itself the first member at the join timeout but waits (bounded), and
// when it finally starts alone it says why in an error line.
func TestClockApartDelaysLoneStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 45)
		// n1's clock runs 30 s ahead: everything it seals is stale to n2.
		n1 := l.start("n1", func(c *Config) {
			c.Clock = func() time.Time { return time.Now().Add(30 * time.Second) }
		})
		waitReady(t, n1)

		var logs syncBuffer
		start := time.Now()
		n2 := l.start("n2", func(c *Config) {
			c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		eventually(t, 10*time.Second, "stale packets counted on n2", func() error {
			if n2.tr.Stats().Rejected["stale"] == 0 {
				return fmt.Errorf("none")
			}
			return nil
		})
		// Past the join timeout, still not ready: it waits for the cluster.
		for time.Since(start) < 3*n2.cfg.JoinTimeout {
			if n2.Ready() {
				t.Fatalf("n2 started alone %v after its start, join timeout %v, with stale packets refused", time.Since(start), n2.cfg.JoinTimeout)
			}
			advance(20 * time.Millisecond)
		}
		eventually(t, 15*time.Second, "n2 ready alone after the bounded wait", func() error {
			if !n2.Ready() {
				return fmt.Errorf("not ready")
			}
			return nil
		})
		for _, want := range []string{"refused a packet of a sender not heard before", "ahead of this host's clock", "starting as the first member although packets of other senders were refused as stale"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("n2's log lacks %q:\n%s", want, logs.String())
			}
		}
	})
}

// syncBuffer is a log sink read while goroutines write (testutil).
type syncBuffer = testutil.SyncBuffer
