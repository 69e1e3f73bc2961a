package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// lab is an in-process cluster over the in-memory multicast network, with
// real TCP on loopback for state transfer.
type lab struct {
	t       *testing.T
	net     *multicast.MemNetwork
	streams *memStreams // state transfer in memory (newMemLab); nil: TCP on loopback
	kr      *multicast.Keyring
	seed    int64
	mu      sync.Mutex
	nodes   map[string]*Node
	starts  uint64 // nodes started: each gets its own Config.Rand stream
}

func newLab(t *testing.T, seed int64) *lab {
	t.Helper()
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, net: multicast.NewMemNetwork(seed), kr: kr, seed: seed, nodes: map[string]*Node{}}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, n := range l.nodes {
			n.crash()
		}
	})
	return l
}

func testConfig(name string, kr *multicast.Keyring) Config {
	lvl := slog.LevelWarn
	if os.Getenv("HANODE_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return Config{
		Node:                name,
		Interface:           "127.0.0.1",
		Keyring:             kr,
		HeartbeatInterval:   100 * time.Millisecond,
		JoinTimeout:         400 * time.Millisecond,
		AntiEntropyInterval: 500 * time.Millisecond,
		SyncTimeout:         2 * time.Second,
		TransferTimeout:     5 * time.Second,
		Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})),
	}
}

func (l *lab) start(name string, mod func(*Config)) *Node {
	l.t.Helper()
	cfg := testConfig(name, l.kr)
	l.mu.Lock()
	l.starts++
	cfg.Rand = rand.NewPCG(uint64(l.seed), l.starts)
	l.mu.Unlock()
	if mod != nil {
		mod(&cfg)
	}
	n, err := newNode(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	var ln net.Listener
	if l.streams != nil {
		ln = l.streams.listen()
		n.cfg.Dial = l.streams.dial
	} else if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
		l.t.Fatal(err)
	}
	tr, err := l.net.Join(n.transportConfig())
	if err != nil {
		l.t.Fatal(err)
	}
	if err := n.startWith(tr, ln); err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.nodes[name] = n
	l.mu.Unlock()
	return n
}

// crash stops a node without a leave announcement, flush or snapshot,
// like SIGKILL.
func (n *Node) crash() {
	if n.closing.Swap(true) {
		return
	}
	n.cancel()
	n.ln.Close()
	n.tr.Close()
	n.wg.Wait()
}

// eventually polls cond until it returns nil (testutil.Eventually).
var eventually = testutil.Eventually

func waitReady(t *testing.T, nodes ...*Node) {
	t.Helper()
	eventually(t, 10*time.Second, "ready", func() error {
		for _, n := range nodes {
			if !n.Ready() {
				return fmt.Errorf("%s not ready", n.Node())
			}
		}
		return nil
	})
}

// put commits one attribute on node n.
func put(t *testing.T, n *Node, id, key, val string, c replicator.Consistency) replicator.CommitResult {
	t.Helper()
	now := time.Now().UnixNano()
	epoch, created := uint32(1), now
	if s := n.Get(id); s != nil {
		epoch, created = s.Epoch, s.Created
	}
	d := &replicator.Delta{
		ID: id, Owner: n.Node(), Epoch: epoch, Created: created, LastAccess: now,
		IdleTimeout: int64(time.Hour),
		Ops:         []replicator.Op{{Kind: replicator.OpSet, Key: key, Value: []byte(val)}},
	}
	res, err := n.Commit(context.Background(), d, c)
	if err != nil {
		t.Fatalf("commit on %s: %v", n.Node(), err)
	}
	return res
}

func attr(n *Node, id, key string) (string, bool) {
	s := n.Get(id)
	if s == nil {
		return "", false
	}
	a, ok := s.Attrs.Get(key)
	if !ok || a.Deleted {
		return "", false
	}
	return string(a.Value), true
}

// sameState checks that every node serves the expected attributes.
func sameState(nodes []*Node, want map[string]map[string]string) error {
	for _, n := range nodes {
		for id, attrs := range want {
			for k, v := range attrs {
				got, ok := attr(n, id, k)
				if !ok || got != v {
					return fmt.Errorf("%s: session %s key %s = %q (present %v), want %q", n.Node(), id[:6], k, got, ok, v)
				}
			}
		}
	}
	return nil
}

func TestReplicatesAndFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 1)
		n1, n2, n3 := l.start("n1", nil), l.start("n2", nil), l.start("n3", nil)
		waitReady(t, n1, n2, n3)

		want := map[string]map[string]string{}
		for i := range 200 {
			id := fmt.Sprintf("session%04dxxxxxxxxxxxxxx", i)
			v := fmt.Sprint(i)
			put(t, n1, id, "n", v, replicator.Async)
			put(t, n1, id, "user", "u"+v, replicator.Async)
			want[id] = map[string]string{"n": v, "user": "u" + v}
		}
		eventually(t, 10*time.Second, "replicated", func() error { return sameState([]*Node{n2, n3}, want) })

		n1.crash()
		eventually(t, 10*time.Second, "n1 declared dead", func() error {
			for _, m := range n2.Members() {
				if m.Name == "n1" && m.State == "alive" {
					return fmt.Errorf("n1 still alive in n2's view")
				}
			}
			return nil
		})
		if err := sameState([]*Node{n2, n3}, want); err != nil {
			t.Fatal(err)
		}
	})
}

func TestJoinerReceivesState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 2)
		n1 := l.start("n1", nil)
		waitReady(t, n1)
		want := map[string]map[string]string{}
		val := strings.Repeat("x", 4096)
		for i := range 2000 {
			id := fmt.Sprintf("join%06dxxxxxxxxxxxxxxx", i)
			put(t, n1, id, "blob", val, replicator.Async)
			want[id] = map[string]string{"blob": val}
		}
		n2 := l.start("n2", nil)
		waitReady(t, n2)
		if got := n2.Len(); got != 2000 {
			t.Fatalf("joiner holds %d sessions when ready, want 2000", got)
		}
		if err := sameState([]*Node{n2}, want); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLossIsRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 3)
		n1, n2 := l.start("n1", nil), l.start("n2", nil)
		waitReady(t, n1, n2)
		l.net.SetLoss(0.3)
		want := map[string]map[string]string{}
		for i := range 500 {
			id := fmt.Sprintf("loss%06dxxxxxxxxxxxxxxx", i)
			for j := range 3 {
				v := fmt.Sprint(i*10 + j)
				put(t, n1, id, "v", v, replicator.Async)
				want[id] = map[string]string{"v": v}
			}
		}
		eventually(t, 20*time.Second, "converged under 30% loss", func() error { return sameState([]*Node{n2}, want) })
	})
}

func TestPartitionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 4)
		n1, n2, n3 := l.start("n1", nil), l.start("n2", nil), l.start("n3", nil)
		waitReady(t, n1, n2, n3)
		id := "partitionedsessionxxxxxxxxx"
		put(t, n1, id, "a", "base", replicator.Async)
		eventually(t, 5*time.Second, "base replicated", func() error {
			return sameState([]*Node{n2, n3}, map[string]map[string]string{id: {"a": "base"}})
		})

		l.net.Partition(
			[]uuid.UUID{n1.ID()},
			[]uuid.UUID{n2.ID(), n3.ID()},
		)
		put(t, n1, id, "left", "only-n1", replicator.Async)
		put(t, n1, id, "a", "from-n1", replicator.Async)
		advance(50 * time.Millisecond) // the later write must win
		put(t, n2, id, "right", "only-n2", replicator.Async)
		put(t, n2, id, "a", "from-n2", replicator.Async)
		eventually(t, 10*time.Second, "sides see each other die", func() error {
			for _, m := range n1.Members() {
				if !m.Self && m.State == "alive" {
					return fmt.Errorf("n1 still sees %s alive", m.Name)
				}
			}
			return nil
		})
		l.net.Heal()
		want := map[string]map[string]string{id: {"a": "from-n2", "left": "only-n1", "right": "only-n2"}}
		eventually(t, 15*time.Second, "converged after heal", func() error { return sameState([]*Node{n1, n2, n3}, want) })
	})
}

func TestSyncCommitIsAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 5)
		n1, n2 := l.start("n1", nil), l.start("n2", nil)
		waitReady(t, n1, n2)
		eventually(t, 5*time.Second, "peers alive", func() error {
			if len(n1.alivePeers()) == 0 {
				return fmt.Errorf("no peers")
			}
			return nil
		})
		id := "syncsessionxxxxxxxxxxxxxxx"
		for i := range 20 {
			res := put(t, n1, id, "k", fmt.Sprint(i), replicator.Sync)
			if !res.Replicated || res.Acks < 1 {
				t.Fatalf("sync commit %d: %+v", i, res)
			}
			// Acknowledged means the peer's transport delivered it: the
			// peer applies it without any further network traffic, so it
			// shows up even with the network cut.
			l.net.Isolate(n2.ID())
			eventually(t, 2*time.Second, "acknowledged write applied", func() error {
				if got, _ := attr(n2, id, "k"); got != fmt.Sprint(i) {
					return fmt.Errorf("peer has %q, want %d", got, i)
				}
				return nil
			})
			l.net.Heal()
		}
	})
}

func TestInvalidateWinsAndKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 6)
		n1, n2 := l.start("n1", nil), l.start("n2", nil)
		waitReady(t, n1, n2)
		id := "killmesessionxxxxxxxxxxxxxx"
		put(t, n1, id, "a", "1", replicator.Async)
		eventually(t, 5*time.Second, "replicated", func() error {
			if n2.Get(id) == nil {
				return fmt.Errorf("absent")
			}
			return nil
		})
		if ok, err := replicator.DestroyID(context.Background(), n2, id, time.Now().UnixNano()); !ok || err != nil {
			t.Fatal("kill reported absent session")
		}
		eventually(t, 5*time.Second, "killed everywhere", func() error {
			if n1.Get(id) != nil {
				return fmt.Errorf("still on n1")
			}
			return nil
		})
	})
}

func TestMetricsExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 7)
		n1 := l.start("n1", nil)
		waitReady(t, n1)
		var b strings.Builder
		n1.WriteMetrics(&b)
		for _, name := range []string{"hanode_sessions ", "hanode_ready 1", `hanode_members{state="alive"} 1`, "hanode_multicast_rejected_packets_total"} {
			if !strings.Contains(b.String(), name) {
				t.Errorf("metrics lack %q", name)
			}
		}
		n1.WriteMetrics(io.Discard)
	})
}

func TestCommitAfterCloseIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 8)
		n := l.start("n1", nil)
		waitReady(t, n)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := n.Commit(context.Background(), &replicator.Delta{ID: "closedxxxxxxxxxxxxxxxxxxxx", Owner: "n1", Epoch: 1,
			Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "k", Value: []byte("v")}}}, replicator.Async)
		if !errors.Is(err, replicator.ErrClosed) {
			t.Fatalf("commit after Close: %v, want ErrClosed", err)
		}
		if n.Get("closedxxxxxxxxxxxxxxxxxxxx") != nil {
			t.Fatal("a refused commit was applied")
		}
	})
}

// Every delta received lands in the lag histogram; touches do not.
func TestLagHistogram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 9)
		n1, n2 := l.start("n1", nil), l.start("n2", nil)
		waitReady(t, n1, n2)
		for i := range 20 {
			put(t, n1, "lagsessionxxxxxxxxxxxxxxxxx", "k", fmt.Sprint(i), replicator.Async)
		}
		eventually(t, 5*time.Second, "deltas applied", func() error {
			if got, _ := attr(n2, "lagsessionxxxxxxxxxxxxxxxxx", "k"); got != "19" {
				return fmt.Errorf("n2 has %q", got)
			}
			return nil
		})
		n1.Touch("lagsessionxxxxxxxxxxxxxxxxx", time.Now().UnixNano())
		applied := n2.stats.deltasApplied.Load()
		var b strings.Builder
		n2.WriteMetrics(&b)
		var count, inf float64
		for _, line := range strings.Split(b.String(), "\n") {
			fmt.Sscanf(line, "hanode_replication_lag_seconds_count %g", &count)
			fmt.Sscanf(line, `hanode_replication_lag_seconds_bucket{le="+Inf"} %g`, &inf)
		}
		if count < 1 || count > float64(applied) || inf != count {
			t.Fatalf("lag histogram count %g, +Inf bucket %g, deltas applied %d:\n%s", count, inf, applied, b.String())
		}
		if !strings.Contains(b.String(), `hanode_replication_lag_seconds_bucket{le="0.002"}`) {
			t.Fatal("no 2 ms bucket")
		}
	})
}

// Close stays to answer repair requests for its last message: a peer that
// lost it holds it once Close has returned, although nothing else (no
// anti-entropy, no other member) could give it to that peer.
func TestCloseRepairsItsTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 10)
		noAE := func(c *Config) { c.AntiEntropyInterval = time.Hour }
		n1, n2 := l.start("n1", noAE), l.start("n2", noAE)
		waitReady(t, n1, n2)
		eventually(t, 5*time.Second, "peers alive", func() error {
			if len(n1.alivePeers()) == 0 || len(n2.alivePeers()) == 0 {
				return fmt.Errorf("a node sees no peer")
			}
			return nil
		})
		const id = "closetailxxxxxxxxxxxxxxxxxx"
		put(t, n1, id, "k", "first", replicator.Async)
		eventually(t, 5*time.Second, "first write replicated", func() error {
			if v, _ := attr(n2, id, "k"); v != "first" {
				return fmt.Errorf("n2 has %q", v)
			}
			return nil
		})
		d := &tailDropper{src: n1.ID(), dst: n2.ID()}
		l.net.SetDropFunc(d.drop)
		d.armed.Store(true)
		put(t, n1, id, "k", "last", replicator.Async)
		t0 := time.Now()
		if err := n1.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("Close took %v", time.Since(t0))
		d.mu.Lock()
		dropped := d.data
		d.mu.Unlock()
		if dropped != 1 {
			t.Fatalf("dropped %d data packets, want the last one", dropped)
		}
		if v, _ := attr(n2, id, "k"); v != "last" {
			t.Fatalf("n2 has %q after n1's Close, want the repaired last write", v)
		}
	})
}

// Close does not linger when every peer has delivered its last message.
func TestCloseWithNothingToRepairIsQuick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 16)
		n1, n2 := l.start("n1", nil), l.start("n2", nil)
		waitReady(t, n1, n2)
		put(t, n1, "closequickxxxxxxxxxxxxxxxxx", "k", "v", replicator.Async)
		eventually(t, 5*time.Second, "n2 acknowledged n1's last message", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if seq := n1.sentSeq.Load(); seq == 0 {
				return fmt.Errorf("nothing broadcast yet")
			} else if _, err := n1.tr.WaitAcked(ctx, seq, 1); err != nil {
				return err
			}
			return nil
		})
		t0 := time.Now()
		if err := n1.Close(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took >= closeRepairWait {
			t.Fatalf("Close took %v with nothing to repair, want less than %v", took, closeRepairWait)
		}
		if n2.Get("closequickxxxxxxxxxxxxxxxxx") == nil {
			t.Fatal("n2 lacks the session")
		}
	})
}
