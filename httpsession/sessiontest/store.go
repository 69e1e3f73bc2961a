// Package sessiontest provides in-memory replicator.Store implementations
// for tests of code that uses httpsession: a single node, and a cluster of
// nodes whose commits reach the other nodes at once or when the test says
// so. They merge like the real replica (last writer wins per attribute by
// epoch, clock and node; destruction is a tombstone that always wins) but
// keep no timers: expiry is left to httpsession's check at load.
package sessiontest

import (
	"context"
	"slices"
	"sync"

	"github.com/hanode/hanode/replicator"
)

// Cluster is a set of in-memory nodes that replicate to each other.
type Cluster struct {
	mu      sync.Mutex
	hlc     uint64
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
		c.nodes = append(c.nodes, &Store{name: n, c: c, sessions: map[string]*replicator.Session{}})
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
		for _, n := range c.nodes {
			if n != p.from {
				n.apply(&p.d)
			}
		}
	}
}

// Store is one node of a Cluster. It implements replicator.Store and
// httpsession.RangeStore.
type Store struct {
	name string
	c    *Cluster

	mu       sync.RWMutex
	sessions map[string]*replicator.Session // includes tombstones
	log      []replicator.Delta
	touches  int
	failWith error
}

// Node implements replicator.Store.
func (s *Store) Node() string { return s.name }

// Get implements replicator.Store.
func (s *Store) Get(id string) *replicator.Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss := s.sessions[id]
	if ss == nil || ss.Destroyed {
		return nil
	}
	return ss
}

// Tombstone returns the session with this ID even when destroyed.
func (s *Store) Tombstone(id string) *replicator.Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[id]
}

// Put stores a session snapshot as is (to plant records in tests).
func (s *Store) Put(ss *replicator.Session) {
	s.mu.Lock()
	s.sessions[ss.ID] = ss
	s.mu.Unlock()
}

// FailCommits makes every later Commit fail with err (nil to stop).
func (s *Store) FailCommits(err error) {
	s.mu.Lock()
	s.failWith = err
	s.mu.Unlock()
}

// Commits returns copies of the deltas committed on this node, in order.
func (s *Store) Commits() []replicator.Delta {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.log)
}

// Touches returns how many Touch calls this node received.
func (s *Store) Touches() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.touches
}

// Commit implements replicator.Store.
func (s *Store) Commit(_ context.Context, d *replicator.Delta, _ replicator.Consistency) (replicator.CommitResult, error) {
	s.mu.RLock()
	fail := s.failWith
	s.mu.RUnlock()
	if fail != nil {
		return replicator.CommitResult{}, fail
	}
	c := s.c
	c.mu.Lock()
	c.hlc++
	d.HLC = c.hlc
	cp := *d
	cp.Ops = slices.Clone(d.Ops)
	held := c.held
	if held {
		c.pending = append(c.pending, pending{from: s, d: cp})
	}
	c.mu.Unlock()
	s.mu.Lock()
	s.log = append(s.log, cp)
	s.mu.Unlock()
	s.apply(&cp)
	if !held {
		for _, n := range c.nodes {
			if n != s {
				n.apply(&cp)
			}
		}
	}
	return replicator.CommitResult{Replicated: len(c.nodes) > 1 && !held}, nil
}

// Touch implements replicator.Store.
func (s *Store) Touch(id string, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touches++
	if ss := s.sessions[id]; ss != nil && !ss.Destroyed && now > ss.LastAccess {
		ns := clone(ss)
		ns.LastAccess = now
		s.sessions[id] = ns
	}
}

// SessionsOf implements replicator.Store.
func (s *Store) SessionsOf(principal string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id, ss := range s.sessions {
		if !ss.Destroyed && ss.Principal == principal {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Len implements replicator.Store.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, ss := range s.sessions {
		if !ss.Destroyed {
			n++
		}
	}
	return n
}

// Range implements httpsession.RangeStore.
func (s *Store) Range(fn func(id string) bool) {
	s.mu.RLock()
	var ids []string
	for id, ss := range s.sessions {
		if !ss.Destroyed {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	slices.Sort(ids)
	for _, id := range ids {
		if !fn(id) {
			return
		}
	}
}

func clone(ss *replicator.Session) *replicator.Session {
	ns := *ss // Attrs are immutable: changes build a new set
	return &ns
}

func less(a, b replicator.Stamp) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch < b.Epoch
	}
	if a.HLC != b.HLC {
		return a.HLC < b.HLC
	}
	return a.Node < b.Node
}

// apply merges d into the replica: per attribute, the higher stamp wins.
func (s *Store) apply(d *replicator.Delta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.sessions[d.ID]
	if cur != nil && cur.Destroyed {
		return // tombstones win
	}
	var ns *replicator.Session
	if cur == nil {
		ns = &replicator.Session{ID: d.ID, Created: d.Created}
	} else {
		ns = clone(cur)
	}
	st := replicator.Stamp{Epoch: d.Epoch, HLC: d.HLC, Node: d.Owner}
	if d.Epoch >= ns.Epoch {
		ns.Epoch, ns.Owner = d.Epoch, d.Owner
	}
	ns.Version++
	ns.LastAccess = max(ns.LastAccess, d.LastAccess)
	ns.IdleTimeout, ns.Deadline = d.IdleTimeout, d.Deadline
	for _, op := range d.Ops {
		switch op.Kind {
		case replicator.OpSet, replicator.OpDel:
			if a, ok := ns.Attrs.Get(op.Key); ok && !less(a.Stamp, st) {
				continue
			}
			if op.Kind == replicator.OpSet {
				ns.Attrs = ns.Attrs.With(op.Key, replicator.Attr{Value: op.Value, Stamp: st})
			} else {
				ns.Attrs = ns.Attrs.With(op.Key, replicator.Attr{Stamp: st, Deleted: true})
			}
		case replicator.OpPrincipal:
			if less(ns.PrincipalAt, st) {
				ns.Principal, ns.PrincipalAt = string(op.Value), st
			}
		case replicator.OpInvalidate:
			ns.Destroyed, ns.Attrs = true, replicator.Attrs{}
			ns.Reason = replicator.ReasonInvalidated
			if len(op.Value) == 1 {
				ns.Reason = replicator.DestroyReason(op.Value[0])
			}
		case replicator.OpRename:
			moved := clone(ns)
			moved.ID = op.Key
			s.sessions[op.Key] = moved
			ns = &replicator.Session{ID: d.ID, Destroyed: true, Reason: replicator.ReasonRenamed, RenamedTo: op.Key, Epoch: ns.Epoch, Owner: ns.Owner}
		case replicator.OpTakeover:
			// Owner and epoch are taken from the delta above.
		}
	}
	s.sessions[d.ID] = ns
}
