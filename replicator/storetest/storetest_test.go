package storetest_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
	"github.com/hanode/hanode/replicator/storetest"
)

// The local replica (HA off) passes the suite.
func TestLocalConformance(t *testing.T) {
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, node string) replicator.Store {
			l := replicator.NewLocal(node, replicator.ReplicaConfig{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = l.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			return l
		},
		Expires: true,
	})
}

// The cluster runtime (HA on) passes the suite: nodes of one subtest
// share an in-memory multicast network.
func TestClusterConformance(t *testing.T) {
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	nets := map[*testing.T]*multicast.MemNetwork{}
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, node string) replicator.Store {
			mu.Lock()
			mn := nets[t]
			if mn == nil {
				mn = multicast.NewMemNetwork(1)
				nets[t] = mn
			}
			mu.Unlock()
			cfg := cluster.Config{
				Node: node, ClusterName: "storetest", Keyring: kr,
				HeartbeatInterval: 100 * time.Millisecond, JoinTimeout: 300 * time.Millisecond,
				Logger: slog.New(slog.DiscardHandler),
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			tr, err := mn.Join(cluster.TransportConfig(cfg))
			if err != nil {
				t.Fatal(err)
			}
			n, err := cluster.StartOn(cfg, tr, ln)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			testutil.WaitFor(t, 10*time.Second, "node "+node+" ready", n.Ready)
			return n
		},
		Shared:  true,
		Expires: true,
	})
}
