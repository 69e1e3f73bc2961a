package main

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/scripts/netlab"
)

var lagBucketRE = regexp.MustCompile(`(?m)^hanode_replication_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$`)

// lagQuantiles reads a node's lag histogram and returns the upper bounds
// of the buckets that hold its p50 and p99, and the count.
// waitAllApplied waits until to has applied every delta from sent (the
// only writer of the test), so that its lag histogram counts them all.
func waitAllApplied(t *testing.T, from, to *e2eNode) {
	t.Helper()
	eventually(t, 30*time.Second, to.name+" applied every delta "+from.name+" sent", func() (bool, string) {
		sent := relMetric(from, "hanode_replication_deltas_sent_total")
		applied := relMetric(to, "hanode_replication_deltas_applied_total")
		return sent > 0 && applied >= sent, fmt.Sprintf("sent %v, applied %v", sent, applied)
	})
}

func lagQuantiles(t *testing.T, n *e2eNode) (p50, p99 float64, count float64) {
	t.Helper()
	code, body, err := n.adminGet("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("metrics of %s: %d %v", n.name, code, err)
	}
	type bucket struct{ le, cum float64 }
	var bs []bucket
	for _, m := range lagBucketRE.FindAllStringSubmatch(string(body), -1) {
		le := math.Inf(1)
		if m[1] != "+Inf" {
			le, _ = strconv.ParseFloat(m[1], 64)
		}
		cum, _ := strconv.ParseFloat(m[2], 64)
		bs = append(bs, bucket{le, cum})
	}
	if len(bs) == 0 {
		t.Fatalf("%s exposes no hanode_replication_lag_seconds histogram", n.name)
	}
	count = bs[len(bs)-1].cum
	q := func(f float64) float64 {
		for _, b := range bs {
			if b.cum >= f*count {
				return b.le
			}
		}
		return math.Inf(1)
	}
	return q(0.5), q(0.99), count
}

// TestLagBetweenNamespaces measures replication lag between two real
// processes in separate network namespaces, from the writer's commit to
// the receipt by the other node (both read the same kernel clock), at idle
// and under load, from the receiver's histogram. The figures are logged;
// the assertion is a generous regression bound, not the target.
func TestLagBetweenNamespaces(t *testing.T) {
	lab := netlab.New(t, "lag")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	n1 := startHA(t, bin, lab.AddHost("n1"), "n1", key)
	n2 := startHA(t, bin, lab.AddHost("n2"), "n2", key)
	waitReady(t, 60*time.Second, n1, n2)
	eventually(t, 30*time.Second, "n2 holds n1's first session", func() (bool, string) {
		c := &client{}
		c.do(t, http.MethodPut, n1.app+"/attrs/warmup", "x")
		count, err := sessionCount(n2)
		return err == nil && count >= 1, fmt.Sprint(count, err)
	})

	// Idle: one write every 10 ms. The ticker is the pace of an idle
	// node (a rate), not a wait for an outcome.
	_, _, before := lagQuantiles(t, n2)
	c := &client{}
	const idleWrites = 300
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for i := range idleWrites {
		<-pace.C
		if code, body, _ := c.do(t, http.MethodPut, fmt.Sprintf("%s/attrs/k%d", n1.app, i%20), strconv.Itoa(i)); code/100 != 2 {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	waitAllApplied(t, n1, n2)
	p50, p99, count := lagQuantiles(t, n2)
	// 10 ms apart, idle writes are never coalesced.
	if count-before < idleWrites*9/10 {
		t.Fatalf("n2 counted %v deltas for %d writes", count-before, idleWrites)
	}
	t.Logf("lag at idle (%d writes, 1 per 10 ms): p50 ≤ %gs, p99 ≤ %gs (bucket bounds)", idleWrites, p50, p99)
	if p99 > 0.05 {
		t.Errorf("lag p99 at idle ≤ %gs, over the 50 ms regression bound", p99)
	}

	// Load: 8 writers, each with its own session, as fast as they go for 3 s.
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes := 0
	stop := time.Now().Add(3 * time.Second)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{}
			for i := 0; time.Now().Before(stop); i++ {
				if code, _, _ := c.do(t, http.MethodPut, fmt.Sprintf("%s/attrs/w%d", n1.app, i%10), strconv.Itoa(w*1e6+i)); code/100 == 2 {
					mu.Lock()
					writes++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	waitAllApplied(t, n1, n2)
	// The histogram is cumulative: the quantiles now mix idle and load,
	// dominated by the load.
	lp50, lp99, lcount := lagQuantiles(t, n2)
	t.Logf("lag under load (%d writes in 3 s through HTTP, %v deltas received): p50 ≤ %gs, p99 ≤ %gs",
		writes, lcount-count, lp50, lp99)
	// Writes of one session that meet in the send queue are coalesced
	// into one delta, so there are fewer deltas than writes.
	if writes == 0 || lcount <= count {
		t.Errorf("under load: %d writes, %v deltas received", writes, lcount-count)
	}
	noFalseSuspicions(t, n1, n2)
}
