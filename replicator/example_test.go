package replicator_test

import (
	"fmt"

	"github.com/hanode/hanode/replicator"
)

// Two replicas receive the same deltas in different orders and agree.
func Example() {
	a := replicator.NewReplica(replicator.ReplicaConfig{})
	b := replicator.NewReplica(replicator.ReplicaConfig{})

	// A runtime commits a's deltas with Replica.Commit, which assigns
	// their HLC and Version; here they carry them already.
	login := &replicator.Delta{ID: "s1", Owner: "node-a", Version: 1, HLC: 1 << 30, LastAccess: 1, IdleTimeout: 30e9,
		Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "user", Value: []byte("alice")}}}
	renew := &replicator.Delta{ID: "s1", Owner: "node-a", Version: 2, HLC: 2 << 30, LastAccess: 2, IdleTimeout: 30e9,
		Ops: []replicator.Op{{Kind: replicator.OpRename, Key: "s2"}}}
	a.Apply(login)
	a.Apply(renew)

	// b gets them in the wrong order.
	b.Apply(renew)
	b.Apply(login)

	fmt.Println(string(b.Get("s2").Attrs.Value("user")), b.Get("s1") == nil)
	fmt.Println(a.Digest(4)[0] == b.Digest(4)[0] && a.Len() == b.Len())
	// Output:
	// alice true
	// true
}
