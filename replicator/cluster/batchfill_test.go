package cluster

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Under load a delta waits up to batchDelay for company, but a batch that
// fills up (batchTarget) goes out at once instead of waiting out the
// delay: the delay is for gathering a datagram's worth, not a floor on
// the lag.
func TestFullBatchSkipsTheBatchingDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 12)
		n1 := l.start("n1", nil)
		n2 := l.start("n2", nil)
		waitReady(t, n1, n2)
		put(t, n1, "fillsessionaaaaaaaaaaaaaaaaaaaaa", "k", "v", replicator.Async) // an idle node sends at once
		synctest.Wait()
		sent := n1.stats.batchesSent.Load()
		start := time.Now()
		put(t, n1, "fillsessionbbbbbbbbbbbbbbbbbbbbb", "k", "v", replicator.Async) // just after a flush: waits for company
		synctest.Wait()
		if got := n1.stats.batchesSent.Load(); got != sent {
			t.Fatalf("a lone delta right after a flush went out at once (%d batches, want %d)", got, sent)
		}
		put(t, n1, "fillsessioncccccccccccccccccccccc", "k", strings.Repeat("v", batchTarget), replicator.Async)
		synctest.Wait()
		if got := n1.stats.batchesSent.Load(); got != sent+1 || time.Since(start) != 0 {
			t.Fatalf("the full batch: %d batches sent (want %d) after %v of virtual time (want none)", got, sent+1, time.Since(start))
		}
	})
}
