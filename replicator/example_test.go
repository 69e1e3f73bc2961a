package replicator_test

import (
	"fmt"

	"github.com/hanode/hanode/replicator"
)

// Two replicas receive the same deltas in different orders and agree.
func Example() {
	a := replicator.NewReplica(replicator.ReplicaConfig{})
	b := replicator.NewReplica(replicator.ReplicaConfig{})

	var clock replicator.Clock
	login := &replicator.Delta{ID: "s1", Owner: "node-a", LastAccess: 1, IdleTimeout: 30e9,
		Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "user", Value: []byte("alice")}}}
	if err := a.Commit(login, &clock, 1_000_000_000); err != nil { // assigns HLC and Version
		panic(err)
	}
	renew := &replicator.Delta{ID: "s1", Owner: "node-a", LastAccess: 2, IdleTimeout: 30e9,
		Ops: []replicator.Op{{Kind: replicator.OpRename, Key: "s2"}}}
	if err := a.Commit(renew, &clock, 2_000_000_000); err != nil {
		panic(err)
	}

	// b gets them in the wrong order.
	b.Apply(renew)
	b.Apply(login)

	fmt.Println(string(b.Get("s2").Attrs.Value("user")), b.Get("s1") == nil)
	fmt.Println(a.Digest(4)[0] == b.Digest(4)[0] && a.Len() == b.Len())
	// Output:
	// alice true
	// true
}
