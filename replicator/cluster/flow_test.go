package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// stuckTransport is a transport whose Broadcast blocks until released:
// the network cannot take what the node sends.
type stuckTransport struct {
	multicast.Transport
	release chan struct{}
}

func (s *stuckTransport) Broadcast(ctx context.Context, p []byte, o multicast.SendOptions) (uint64, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.Transport.Broadcast(ctx, p, o)
}

// A full send queue blocks a commit only briefly, then sheds its delta to
// anti-entropy: requests never hang on a stuck network and the queue never
// grows without bound. Once the network moves again, anti-entropy brings
// the shed delta to the peer.
func TestFullSendQueueShedsToAntiEntropy(t *testing.T) {
	synctest.Test(t, testFullSendQueueShedsToAntiEntropy)
}

func testFullSendQueueShedsToAntiEntropy(t *testing.T) {
	l := newMemLab(t, 31)
	// Anti-entropy only when the test asks for it, so that what arrives
	// shows what the transport carried.
	n2 := l.start("n2", func(c *Config) { c.AntiEntropyInterval = time.Hour })
	waitReady(t, n2)

	cfg := testConfig("n1", l.kr)
	cfg.AntiEntropyInterval = time.Hour
	n1, err := newNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := l.streams.listen()
	n1.cfg.Dial = l.streams.dial
	mt, err := l.net.Join(n1.transportConfig())
	if err != nil {
		t.Fatal(err)
	}
	st := &stuckTransport{Transport: mt, release: make(chan struct{})}
	if err := n1.startWith(st, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-st.release:
		default:
			close(st.release)
		}
		n1.crash()
	})
	waitReady(t, n1)

	big := strings.Repeat("x", 250<<10)
	var shedAt int
	start := time.Now()
	for i := range 60 {
		put(t, n1, fmt.Sprintf("flow%04dxxxxxxxxxxxxxxxxxxx", i), "blob", big, replicator.Async)
		if n1.stats.shed.Load() > 0 {
			shedAt = i
			break
		}
	}
	if n1.stats.shed.Load() == 0 {
		t.Fatal("60 commits of 250 KB against a stuck network: nothing shed")
	}
	if el := time.Since(start); el > 3*maxQueueWait {
		t.Fatalf("commits blocked %s in all, want about %s", el, maxQueueWait)
	}
	n1.sendMu.Lock()
	pending := n1.pending.size
	n1.sendMu.Unlock()
	if pending > maxPending+(1<<20) {
		t.Fatalf("pending %d bytes, over the bound %d", pending, maxPending)
	}
	close(st.release)
	// The 8 MiB that waited go out as several messages, each within the
	// transport's limit.
	eventually(t, 15*time.Second, "queued deltas broadcast", func() error {
		if e := n1.stats.broadcastErrors.Load(); e != 0 {
			return fmt.Errorf("%d broadcasts refused by the transport", e)
		}
		if sent := n1.stats.deltasSent.Load(); sent < uint64(shedAt) {
			return fmt.Errorf("%d deltas broadcast, want %d", sent, shedAt)
		}
		return nil
	})
	shedID := fmt.Sprintf("flow%04dxxxxxxxxxxxxxxxxxxx", shedAt)
	n2.requestRepair(n1.ID())
	eventually(t, 15*time.Second, "shed delta repaired by anti-entropy", func() error {
		if v, ok := attr(n2, shedID, "blob"); !ok || v != big {
			return fmt.Errorf("n2 lacks the shed session")
		}
		return nil
	})
}
