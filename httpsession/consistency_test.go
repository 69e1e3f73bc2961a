package httpsession

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// startClusterNodes starts in-process cluster nodes over one in-memory
// multicast network (state transfer over TCP on 127.0.0.1).
func startClusterNodes(t *testing.T, mn *multicast.MemNetwork, names ...string) []*cluster.Node {
	t.Helper()
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*cluster.Node
	for _, name := range names {
		cfg := cluster.Config{
			Node: name, Keyring: kr,
			HeartbeatInterval: 100 * time.Millisecond, JoinTimeout: 300 * time.Millisecond,
			SyncTimeout: 300 * time.Millisecond,
			Logger:      slog.New(slog.DiscardHandler),
		}
		tr, err := mn.Join(cluster.TransportConfig(cfg))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n, err := cluster.StartOn(cfg, tr, ln)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		testutil.Until(t, 10*time.Second, n.Node()+" ready with every member", func() (bool, string) {
			return n.Ready() && len(n.Members()) == len(nodes), fmt.Sprintf("ready %v, %d members", n.Ready(), len(n.Members()))
		})
	}
	return nodes
}

// TestConsistencyBeforeFirstByte checks the README's table of what a
// commit has done when the response's first byte leaves, per consistency.
func TestConsistencyBeforeFirstByte(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	type seen struct {
		res    replicator.CommitResult
		ok     bool
		status int
		took   time.Duration
	}
	request := func(t *testing.T, store replicator.Store, c replicator.Consistency) seen {
		t.Helper()
		mgr, err := New(store, Config{Consistency: c, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var s seen
		h := mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := mgr.Put(r.Context(), "k", "v"); err != nil {
				t.Error(err)
			}
			start := time.Now()
			w.WriteHeader(http.StatusOK) // the commit happens here, before the first byte
			s.took = time.Since(start)
			s.res, s.ok = mgr.LastCommit(r.Context())
		}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/", nil))
		s.status = w.Code
		return s
	}

	mn := multicast.NewMemNetwork(1)
	nodes := startClusterNodes(t, mn, "a", "b")
	a, b := nodes[0], nodes[1]

	t.Run("async", func(t *testing.T) {
		s := request(t, a, replicator.Async)
		if !s.ok || s.res.Replicated || s.res.Acks != 0 || s.res.TimedOut || s.status != 200 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("sync", func(t *testing.T) {
		s := request(t, a, replicator.Sync)
		if !s.ok || !s.res.Replicated || s.res.Acks < 1 || s.status != 200 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("sync-all", func(t *testing.T) {
		s := request(t, a, replicator.SyncAll)
		if !s.ok || !s.res.Replicated || s.res.Acks != 1 || s.status != 200 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("sync-peer-unreachable", func(t *testing.T) {
		mn.Isolate(b.ID())
		defer mn.Heal()
		s := request(t, a, replicator.Sync)
		// After the bound the commit fails (replicator.ErrNotReplicated):
		// 503, the change possibly applied locally (indeterminate).
		if s.ok || s.res.Replicated || !s.res.TimedOut || s.status != 503 || s.took < 250*time.Millisecond {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("sync-alone", func(t *testing.T) {
		alone := startClusterNodes(t, multicast.NewMemNetwork(2), "solo")[0]
		s := request(t, alone, replicator.Sync)
		// No live peer: refused at once (lone survivor: refuse, the
		// default), nothing applied.
		if s.ok || s.res.Replicated || s.res.TimedOut || s.status != 503 || s.took > 250*time.Millisecond {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("ha-off", func(t *testing.T) {
		local := replicator.NewLocal("n1", replicator.ReplicaConfig{})
		defer local.Close()
		s := request(t, local, replicator.SyncAll)
		if !s.ok || s.res.Replicated || s.res.TimedOut || s.status != 200 {
			t.Fatalf("%+v", s)
		}
	})
}

// Put checks the limits of both stores in advance: they stay limiters.
var (
	_ limiter = (*replicator.Local)(nil)
	_ limiter = (*cluster.Node)(nil)
)
