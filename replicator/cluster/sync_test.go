package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/replicator"
)

// Tests of the sync promise: a Sync (SyncAll) commit that is not
// acknowledged is an error, a node that cannot get acknowledgements is not
// ready, and the lone-survivor policy decides what a node alone does.

func syncMode(timeout time.Duration, lone LoneSurvivorPolicy) func(*Config) {
	return func(c *Config) {
		c.Consistency = replicator.Sync
		c.SyncTimeout = timeout
		c.LoneSurvivor = lone
	}
}

func tryPut(n *Node, id, key, val string, c replicator.Consistency) (replicator.CommitResult, error) {
	return write(n, id, c, set(key, val))
}

func metricValue(n *Node, sample string) float64 {
	var b strings.Builder
	n.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscanf(v, "%g", &f)
			return f
		}
	}
	return -1
}

func waitPeers(t *testing.T, n *Node, want int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%s sees %d live peers", n.Node(), want), func() error {
		if got := len(n.alivePeers()); got != want {
			return fmt.Errorf("%d live peers", got)
		}
		return nil
	})
}

// A node cut off from its peers: the first sync commit waits out the
// timeout and fails (applied locally, indeterminate); once the peers are
// suspected, sync commits are refused at once and not applied; the node
// is not ready, says why, and becomes ready again when the network heals.
func TestSyncCommitCutOffIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 41)
		n1 := l.start("n1", syncMode(200*time.Millisecond, LoneRefuse))
		n2 := l.start("n2", syncMode(200*time.Millisecond, LoneRefuse))
		waitReady(t, n1, n2)
		waitPeers(t, n1, 1)
		id := sid("cut", 0)
		if res, err := tryPut(n1, id, "k", "acked", replicator.Sync); err != nil || !res.Replicated {
			t.Fatalf("sync commit with a healthy peer: %+v %v", res, err)
		}
		if st := n1.Status(); st.Replication != "ok" || st.NotReadyReason != "" {
			t.Fatalf("healthy status: %+v", st)
		}

		l.net.Isolate(n1.ID())
		start := time.Now()
		res, err := tryPut(n1, id, "k", "cut", replicator.Sync)
		if !errors.Is(err, replicator.ErrNotReplicated) || res.Replicated {
			t.Fatalf("sync commit cut off: %+v %v, want ErrNotReplicated", res, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("the failed commit took %s, want about the sync timeout", el)
		}
		if n1.Ready() {
			t.Fatal("n1 still ready after an unacknowledged sync commit")
		}
		if st := n1.Status(); st.Replication != "failing" || !strings.Contains(st.NotReadyReason, "not acknowledged") && !strings.Contains(st.NotReadyReason, "no live peer") {
			t.Fatalf("status after the failure: replication %q, reason %q", st.Replication, st.NotReadyReason)
		}
		if got := metricValue(n1, `hanode_sync_commit_failures_total{reason="timeout"}`) + metricValue(n1, `hanode_sync_commit_failures_total{reason="no_peer"}`); got < 1 {
			t.Fatalf("failure not counted: %g", got)
		}
		if metricValue(n1, "hanode_replication_failing") != 1 || metricValue(n1, "hanode_ready") != 0 {
			t.Fatal("metrics do not show the failing replication")
		}

		// Once n2 is suspected, commits are refused without waiting and
		// without being applied.
		waitPeers(t, n1, 0)
		id2 := sid("cut", 1)
		start = time.Now()
		if _, err := tryPut(n1, id2, "k", "refused", replicator.Sync); !errors.Is(err, replicator.ErrNotReplicated) {
			t.Fatalf("commit alone: %v, want ErrNotReplicated", err)
		}
		if el := time.Since(start); el >= 200*time.Millisecond {
			t.Fatalf("a refused commit took %s, as long as the sync timeout: it waited", el)
		}
		if n1.Get(id2) != nil {
			t.Fatal("a refused commit was applied")
		}
		if st := n1.Status(); !strings.Contains(st.NotReadyReason, "no live peer") {
			t.Fatalf("reason alone: %q", st.NotReadyReason)
		}
		// Async commits are not affected.
		if _, err := tryPut(n1, id2, "k", "async", replicator.Async); err != nil {
			t.Fatalf("async commit alone: %v", err)
		}

		l.net.Heal()
		eventually(t, 10*time.Second, "n1 ready again after the heal", func() error {
			if !n1.Ready() {
				return fmt.Errorf("not ready: %s", n1.Status().NotReadyReason)
			}
			return nil
		})
		if res, err := tryPut(n1, id, "k", "after", replicator.Sync); err != nil || !res.Replicated {
			t.Fatalf("sync commit after the heal: %+v %v", res, err)
		}
	})
}

// A failing node whose peers stay alive in its view (the acks are lost,
// heartbeats are not) becomes ready again only through an acknowledged
// probe, without any commit.
func TestSyncReadinessComesBackByProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 42)
		n1 := l.start("n1", syncMode(150*time.Millisecond, LoneRefuse))
		n2 := l.start("n2", syncMode(150*time.Millisecond, LoneRefuse))
		waitReady(t, n1, n2)
		waitPeers(t, n1, 1)
		n1.replicationFailing("timeout") // as after a lost acknowledgement
		if n1.Ready() {
			t.Fatal("ready while failing")
		}
		eventually(t, 5*time.Second, "probe restores readiness", func() error {
			if !n1.Ready() {
				return fmt.Errorf("not ready: %s", n1.Status().NotReadyReason)
			}
			return nil
		})
		if metricValue(n1, "hanode_sync_probes_total") < 1 {
			t.Fatal("no probe counted")
		}
	})
}

// The only peer restarts: while it is gone the node refuses sync writes
// and is not ready; the new process (a new member ID) gets the state and
// acknowledges, and the node is ready again.
func TestSyncOnlyPeerRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 43)
		mode := syncMode(200*time.Millisecond, LoneRefuse)
		n1, n2 := l.start("n1", mode), l.start("n2", mode)
		waitReady(t, n1, n2)
		waitPeers(t, n1, 1)
		id := sid("restart", 0)
		if _, err := tryPut(n1, id, "k", "v1", replicator.Sync); err != nil {
			t.Fatal(err)
		}
		n2.crash()
		eventually(t, 5*time.Second, "n1 refuses sync commits without its peer", func() error {
			_, err := tryPut(n1, id, "k", "during", replicator.Sync)
			if !errors.Is(err, replicator.ErrNotReplicated) {
				return fmt.Errorf("commit: %v", err)
			}
			if n1.Ready() {
				return fmt.Errorf("still ready")
			}
			return nil
		})
		n2b := l.start("n2", mode)
		eventually(t, 10*time.Second, "n1 ready again with the restarted peer", func() error {
			if !n1.Ready() {
				return fmt.Errorf("not ready: %s", n1.Status().NotReadyReason)
			}
			return nil
		})
		res, err := tryPut(n1, id, "k", "v2", replicator.Sync)
		if err != nil || !res.Replicated {
			t.Fatalf("sync commit with the restarted peer: %+v %v", res, err)
		}
		eventually(t, 5*time.Second, "restarted peer holds the write", func() error {
			if v, _ := attr(n2b, id, "k"); v != "v2" {
				return fmt.Errorf("n2 has %q", v)
			}
			return nil
		})
	})
}

// The lone-survivor choice: alone, LoneRefuse refuses and is not ready;
// LoneAccept commits unreplicated, says so, and stays ready.
func TestLoneSurvivorPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 44)
		refuse := l.start("r1", syncMode(100*time.Millisecond, LoneRefuse))
		eventually(t, 5*time.Second, "r1 joined", func() error {
			if !refuse.ready.Load() {
				return fmt.Errorf("joining")
			}
			return nil
		})
		if refuse.Ready() || !strings.Contains(refuse.Status().NotReadyReason, "no live peer") {
			t.Fatalf("a lone refusing node is ready: %+v", refuse.Status())
		}
		if _, err := tryPut(refuse, sid("lone", 0), "k", "v", replicator.Sync); !errors.Is(err, replicator.ErrNotReplicated) {
			t.Fatalf("lone refuse: %v", err)
		}
		refuse.crash()

		l2 := newMemLab(t, 45)
		accept := l2.start("a1", syncMode(100*time.Millisecond, LoneAccept))
		waitReady(t, accept)
		res, err := tryPut(accept, sid("lone", 1), "k", "v", replicator.Sync)
		if err != nil || res.Replicated {
			t.Fatalf("lone accept: %+v %v, want success without replication", res, err)
		}
		if accept.Get(sid("lone", 1)) == nil {
			t.Fatal("accepted commit not applied")
		}
		if st := accept.Status(); !st.Ready || st.Replication != "lone" {
			t.Fatalf("lone accept status: %+v", st)
		}
		if metricValue(accept, "hanode_sync_unreplicated_commits_total") != 1 {
			t.Fatal("unreplicated commit not counted")
		}
		if _, err := ParseLoneSurvivor("maybe"); err == nil {
			t.Fatal("bad policy parsed")
		}
		if p, err := ParseLoneSurvivor("accept"); err != nil || p != LoneAccept || p.String() != "accept" {
			t.Fatal("accept not parsed")
		}
	})
}

// SyncAll needs every live peer: with one of two peers cut off (but not
// yet suspected) the commit fails.
func TestSyncAllNeedsEveryPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 46)
		mode := func(c *Config) {
			syncMode(150*time.Millisecond, LoneRefuse)(c)
			c.Consistency = replicator.SyncAll
			c.HeartbeatInterval = time.Second // slow suspicion: n3 stays alive in n1's view
		}
		n1, n2, n3 := l.start("n1", mode), l.start("n2", mode), l.start("n3", mode)
		waitReady(t, n1, n2, n3)
		waitPeers(t, n1, 2)
		id := sid("all", 0)
		if res, err := tryPut(n1, id, "k", "v1", replicator.SyncAll); err != nil || res.Acks != 2 {
			t.Fatalf("sync-all with both peers: %+v %v", res, err)
		}
		l.net.Partition([]uuid.UUID{n1.ID(), n2.ID()}, []uuid.UUID{n3.ID()})
		res, err := tryPut(n1, id, "k", "v2", replicator.SyncAll)
		if !errors.Is(err, replicator.ErrNotReplicated) || res.Acks > 1 || !res.TimedOut {
			t.Fatalf("sync-all with a peer cut off: %+v %v, want at most 1 ack and ErrNotReplicated", res, err)
		}
		if n1.Ready() {
			t.Fatal("sync-all node ready although a live peer does not acknowledge")
		}
		l.net.Heal()
		eventually(t, 10*time.Second, "n1 ready again", func() error {
			if !n1.Ready() {
				return fmt.Errorf("not ready: %s", n1.Status().NotReadyReason)
			}
			return nil
		})
	})
}

// Async is unchanged: a cut-off async node commits and stays ready.
func TestAsyncUnaffectedByCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 47)
		n1, n2 := l.start("n1", nil), l.start("n2", nil)
		waitReady(t, n1, n2)
		l.net.Isolate(n1.ID())
		waitPeers(t, n1, 0)
		if _, err := tryPut(n1, sid("async", 0), "k", "v", replicator.Async); err != nil {
			t.Fatal(err)
		}
		if !n1.Ready() || n1.Status().Replication != "async" {
			t.Fatalf("async node: %+v", n1.Status())
		}
		// A per-request sync commit on an async node still fails as it must,
		// without touching the node's readiness.
		if _, err := tryPut(n1, sid("async", 1), "k", "v", replicator.Sync); !errors.Is(err, replicator.ErrNotReplicated) {
			t.Fatalf("sync commit on a lone async node: %v", err)
		}
		if !n1.Ready() {
			t.Fatal("async node not ready after a per-request sync failure")
		}
	})
}
