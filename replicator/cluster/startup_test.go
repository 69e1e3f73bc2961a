package cluster

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/replicator"
)

// defaults undoes testConfig's short timings: the production defaults.
func defaults(c *Config) { c.HeartbeatInterval, c.JoinTimeout = 0, 0 }

// Issue 15: with the default settings a node that is the first member is
// ready within 0.5s of its start (no peer answered its join probe), and a
// node started next to it still joins it with a state transfer instead of
// starting empty.
func TestFirstMemberReadyWithin500ms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 11)
		start := time.Now()
		n1 := l.start("n1", defaults)
		for !n1.Ready() {
			if time.Since(start) > 5*time.Second {
				t.Fatal("n1 not ready after 5s")
			}
			advance(time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("first member ready %v after start", took.Round(time.Millisecond))
		if took > 500*time.Millisecond {
			t.Errorf("first member ready %v after start, want <= 500ms", took)
		}
		for i := range 300 {
			put(t, n1, fmt.Sprintf("first%05dxxxxxxxxxxxxxxx", i), "v", "x", replicator.Async)
		}
		n2 := l.start("n2", defaults)
		waitReady(t, n2)
		if got := n2.Len(); got != 300 {
			t.Fatalf("the second node holds %d sessions when ready, want 300 (it must not start as a first member)", got)
		}
	})
}
