package replicator

import (
	"context"
	"time"
)

// Local is the Store for a single node with HA off: a Replica and a Clock,
// no network. Commits are applied at once and never replicated
// (CommitResult.Replicated is false whatever the consistency asked).
//
// Local starts no goroutine by itself. Sessions expire when the owner of
// the Local calls ExpireNow, or runs Run in a goroutine of its own.
type Local struct {
	node string
	r    *Replica
	clk  Clock
	now  func() int64 // wall clock; replaced in tests
	subs Subscribers
}

var _ Store = (*Local)(nil)

// NewLocal returns a local-only store for node (the route suffix).
func NewLocal(node string, cfg ReplicaConfig) *Local {
	l := &Local{node: node, now: func() int64 { return time.Now().UnixNano() }}
	cfg.OnEvent = l.subs.Chain(cfg.OnEvent)
	l.r = NewReplica(cfg)
	return l
}

// Range calls fn with the ID of every live session until fn returns false.
func (l *Local) Range(fn func(id string) bool) { l.r.RangeLive(fn) }

// Subscribe registers fn for the replica's lifecycle events (see
// ReplicaConfig.OnEvent for when it is called).
func (l *Local) Subscribe(fn func(Event)) { l.subs.Add(fn) }

// Replica returns the replica behind the store (for snapshots, admin
// listings and tests).
func (l *Local) Replica() *Replica { return l.r }

// Clock returns the store's clock.
func (l *Local) Clock() *Clock { return &l.clk }

// Get returns the live session with this ID, or nil.
func (l *Local) Get(id string) *Session { return l.r.Get(id) }

// Commit applies d locally (see Replica.Commit); an empty d.Owner is set
// to the node name. ctx and c are not used beyond an early check of ctx:
// there is nobody to wait for.
func (l *Local) Commit(ctx context.Context, d *Delta, c Consistency) (CommitResult, error) {
	if err := ctx.Err(); err != nil {
		return CommitResult{}, err
	}
	if d.Owner == "" {
		d.Owner = l.node
	}
	return CommitResult{}, l.r.Commit(d, &l.clk, l.now())
}

// Touch records an access at now (unix nanoseconds).
func (l *Local) Touch(id string, now int64) { l.r.Touch(id, now) }

// SessionsOf returns the IDs of the live sessions of a principal.
func (l *Local) SessionsOf(principal string) []string { return l.r.SessionsOf(principal) }

// Len returns the number of live sessions.
func (l *Local) Len() int { return l.r.Len() }

// Node returns the node name.
func (l *Local) Node() string { return l.node }

// ExpireNow expires the sessions due at now (unix nanoseconds) and drops
// old tombstones; it returns the IDs expired. Every session is owned here.
func (l *Local) ExpireNow(now int64) []string { return l.r.Expire(now, nil) }

// Run expires sessions on time until ctx ends, then returns ctx.Err(). It
// sleeps until the next deadline, waking at least every second (to
// collect tombstones). Start it in its own goroutine: go l.Run(ctx).
func (l *Local) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := l.now()
		l.ExpireNow(now)
		wait := time.Second
		if next := l.r.NextExpiry(); next > 0 {
			wait = min(wait, max(time.Duration(next-now), time.Millisecond))
		}
		t.Reset(wait)
	}
}
