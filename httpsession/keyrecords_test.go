package httpsession

import (
	"context"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Records of the Redis-protocol keyspace (replicator.KeyPrefix) share the
// store with sessions: Iterate does not visit them and their expiry is not
// reported as a session's.
func TestKeyRecordsAreNotSessions(t *testing.T) {
	st := replicator.NewLocal("n1", replicator.DefaultReplicaConfig())
	var events []Event
	m := newManager(t, st, func(c *Config) { c.OnEvent = func(e Event) { events = append(events, e) } })
	now := time.Now().UnixNano()
	d := &replicator.Delta{ID: replicator.KeyPrefix + "k", Owner: "n1", Created: now, LastAccess: now, Deadline: now + int64(time.Second),
		Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "s", Value: []byte("not gob")}}}
	if _, err := st.Commit(context.Background(), d, replicator.Async); err != nil {
		t.Fatal(err)
	}
	visited := 0
	if err := m.Iterate(context.Background(), func(context.Context) error { visited++; return nil }); err != nil || visited != 0 {
		t.Fatalf("Iterate visited %d (%v)", visited, err)
	}
	if ids := st.ExpireNow(now + int64(2*time.Second)); len(ids) != 1 {
		t.Fatalf("expired %v", ids)
	}
	if len(events) != 0 || m.stats.undecodable.Load() != 0 {
		t.Fatalf("events %+v, undecodable %d", events, m.stats.undecodable.Load())
	}
}
