package storetest_test

import (
	"context"
	"testing"

	"github.com/hanode/hanode/replicator"
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
