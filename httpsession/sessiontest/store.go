// Package sessiontest provides in-memory replicator.Store implementations
// for tests of code that uses httpsession: a single node, and a cluster of
// nodes whose commits reach the other nodes at once or when the test says
// so. Each node is a replicator.Replica, so they merge exactly like the
// real stores; what they add are switches for tests (Hold and Deliver,
// FailCommits, Put) and records of what was committed (Commits, Touches).
// They keep no timers: expiry is left to httpsession's check at load.
package sessiontest

import (
	"context"
	"slices"
	"sync"

	"github.com/hanode/hanode/internal/hlc"
	"github.com/hanode/hanode/replicator"
)

// Cluster is a set of in-memory nodes that replicate to each other.
type Cluster struct {
	mu      sync.Mutex // orders commits: stamping, logging, delivery
	clock   hlc.Clock
	nodes   []*Store
	held    bool
	pending []pending
}

type pending struct {
	from *Store
	d    replicator.Delta
}

// NewCluster returns a cluster with one Store per name.
func NewCluster(names ...string) *Cluster {
	c := &Cluster{}
	for _, n := range names {
		c.nodes = append(c.nodes, &Store{name: n, c: c, r: replicator.NewReplica(replicator.ReplicaConfig{})})
	}
	return c
}

// NewStore returns a single-node store.
func NewStore(node string) *Store { return NewCluster(node).Node(node) }

// Node returns the store of the named node, or nil.
func (c *Cluster) Node(name string) *Store {
	for _, s := range c.nodes {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Hold queues replication: commits apply on their own node at once and
// reach the others only at Deliver.
func (c *Cluster) Hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// Deliver applies every queued delta on the other nodes and stops holding.
func (c *Cluster) Deliver() {
	c.mu.Lock()
	q := c.pending
	c.pending, c.held = nil, false
	c.mu.Unlock()
	for _, p := range q {
		c.replicate(p.from, &p.d)
	}
}

// replicate applies d on every node but from, as a peer receives it.
func (c *Cluster) replicate(from *Store, d *replicator.Delta) {
	for _, n := range c.nodes {
		if n != from {
			cp := *d
			cp.Ops = slices.Clone(d.Ops)
			_, _ = n.r.Apply(&cp)
		}
	}
}

// Store is one node of a Cluster. It implements replicator.Store and
// httpsession.RangeStore.
type Store struct {
	name string
	c    *Cluster
	r    *replicator.Replica

	mu       sync.Mutex
	log      []replicator.Delta
	touches  int
	failWith error
}

// Node implements replicator.Store.
func (s *Store) Node() string { return s.name }

// Get implements replicator.Store.
func (s *Store) Get(id string) *replicator.Session { return s.r.Get(id) }

// Tombstone returns the session with this ID even when destroyed.
func (s *Store) Tombstone(id string) *replicator.Session { return s.r.Lookup(id) }

// Put merges a session record into this node's replica as state transfer
// would (to plant records in tests); the replica keeps ss.
func (s *Store) Put(ss *replicator.Session) { s.r.MergeSession(ss) }

// FailCommits makes every later Commit fail with err (nil to stop).
func (s *Store) FailCommits(err error) {
	s.mu.Lock()
	s.failWith = err
	s.mu.Unlock()
}

// Commits returns copies of the deltas committed on this node, in order.
func (s *Store) Commits() []replicator.Delta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Touches returns how many Touch calls this node received.
func (s *Store) Touches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.touches
}

// Commit implements replicator.Store: the replica stamps d (a cluster-wide
// logical clock, so later commits win) and applies it; the other nodes
// apply it at once, or at Deliver while the cluster holds.
func (s *Store) Commit(_ context.Context, d *replicator.Delta, _ replicator.Consistency) (replicator.CommitResult, error) {
	s.mu.Lock()
	fail := s.failWith
	s.mu.Unlock()
	if fail != nil {
		return replicator.CommitResult{}, fail
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := s.r.Commit(d, &c.clock, 0); err != nil {
		return replicator.CommitResult{}, err
	}
	cp := *d
	cp.Ops = slices.Clone(d.Ops)
	s.mu.Lock()
	s.log = append(s.log, cp)
	s.mu.Unlock()
	if c.held {
		c.pending = append(c.pending, pending{from: s, d: cp})
		return replicator.CommitResult{}, nil
	}
	c.replicate(s, &cp)
	return replicator.CommitResult{Replicated: len(c.nodes) > 1}, nil
}

// Touch implements replicator.Store.
func (s *Store) Touch(id string, now int64) {
	s.mu.Lock()
	s.touches++
	s.mu.Unlock()
	s.r.Touch(id, now)
}

// SessionsOf implements replicator.Store (sorted).
func (s *Store) SessionsOf(principal string) []string {
	ids := s.r.SessionsOf(principal)
	slices.Sort(ids)
	return ids
}

// Len implements replicator.Store.
func (s *Store) Len() int { return s.r.Len() }

// Range implements httpsession.RangeStore (sorted by ID).
func (s *Store) Range(fn func(id string) bool) {
	var ids []string
	s.r.RangeLive(func(id string) bool { ids = append(ids, id); return true })
	slices.Sort(ids)
	for _, id := range ids {
		if !fn(id) {
			return
		}
	}
}
