package replicator

import (
	"context"
	"sync"
	"time"

	"github.com/hanode/hanode/internal/hlc"
	"github.com/hanode/hanode/internal/subs"
)

// Local is the Store for a single node with HA off: a Replica and a
// hybrid logical clock, no network. Commits are applied at once and never
// replicated (CommitResult.Replicated is false whatever the consistency
// asked).
//
// Sessions expire on their own: while the Local holds a session that can
// expire (or a tombstone to collect), a timer (time.AfterFunc) fires at the
// next deadline, at least every second, and calls ExpireNow. The timer is
// armed by the first commit and disarms itself when nothing is left to
// expire, so an idle Local holds no timer and no goroutine, and a Local
// that is dropped is garbage once its sessions have expired. Close stops
// the timer for good (call it when the store's owner shuts down, and in
// tests with t.Cleanup if the test must end with nothing scheduled). Run
// is the older, explicit form: while it runs, the timer stays off.
type Local struct {
	node string
	r    *Replica
	clk  hlc.Clock
	now  func() int64 // wall clock; replaced in tests
	subs subs.List[Event]

	expMu  sync.Mutex
	timer  *time.Timer // automatic expiry; nil until first armed
	armed  bool        // timer is scheduled or its callback is running
	kicked bool        // something to expire may have appeared since the callback started
	manual int         // Run calls in progress: the timer stays off
	closed bool        // Close was called: the timer stays off
}

var _ Store = (*Local)(nil)

// NewLocal returns a local-only store for node (the route suffix).
func NewLocal(node string, cfg ReplicaConfig) *Local {
	l := &Local{node: node, now: func() int64 { return time.Now().UnixNano() }}
	user := l.subs.Chain(cfg.OnEvent)
	cfg.OnEvent = func(e Event) {
		l.kick() // sessions merged or applied through Replica() arm the timer too
		if user != nil {
			user(e)
		}
	}
	l.r = NewReplica(cfg)
	return l
}

// kick arms the expiry timer unless it is armed, Run is in charge or the
// store is closed.
func (l *Local) kick() {
	l.expMu.Lock()
	defer l.expMu.Unlock()
	l.kicked = true
	if l.armed || l.manual > 0 || l.closed {
		return
	}
	l.armed = true
	now := l.now()
	wait := expiryWait(now, l.r.NextExpiry())
	if l.timer == nil {
		l.timer = time.AfterFunc(wait, l.tick)
	} else {
		l.timer.Reset(wait)
	}
}

// tick is the timer's callback: expire what is due, then sleep until the
// next deadline (at most a second, to stamp and collect tombstones), or
// disarm when nothing can expire any more.
func (l *Local) tick() {
	l.expMu.Lock()
	if l.manual > 0 || l.closed {
		l.armed = false
		l.expMu.Unlock()
		return
	}
	l.kicked = false
	l.expMu.Unlock()

	now := l.now()
	l.ExpireNow(now) // events fire here, without expMu held

	l.expMu.Lock()
	defer l.expMu.Unlock()
	next := l.r.NextExpiry()
	if l.manual > 0 || l.closed || (next == 0 && !l.kicked) {
		l.armed = false
		return
	}
	l.timer.Reset(expiryWait(now, next))
}

// expiryWait is how long to sleep at now before the next expiry work due at
// next (0: none scheduled): at most a second, at least a millisecond.
func expiryWait(now, next int64) time.Duration {
	wait := time.Second
	if next > 0 {
		wait = min(wait, max(time.Duration(next-now), time.Millisecond))
	}
	return wait
}

// Close stops the automatic expiry timer for good. The store keeps working
// (Commit, Get, ExpireNow, Run); only its own timer stops. It always
// returns nil.
func (l *Local) Close() error {
	l.expMu.Lock()
	defer l.expMu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.armed = false
	return nil
}

// Range calls fn with the ID of every live session until fn returns false.
func (l *Local) Range(fn func(id string) bool) { l.r.RangeLive(fn) }

// Subscribe registers fn for the replica's lifecycle events (see
// ReplicaConfig.OnEvent for when it is called).
func (l *Local) Subscribe(fn func(Event)) { l.subs.Add(fn) }

// Replica returns the replica behind the store (for snapshots, admin
// listings and tests).
func (l *Local) Replica() *Replica { return l.r }

// ReplicaConfig returns the replica's limits and timings.
func (l *Local) ReplicaConfig() ReplicaConfig { return l.r.Config() }

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
	if err := l.r.Commit(d, &l.clk, l.now()); err != nil {
		return CommitResult{}, err
	}
	l.kick()
	return CommitResult{}, nil
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
// Run is optional (the Local expires sessions by itself, see Local); while
// it runs the automatic timer stays off, and it resumes when Run returns.
func (l *Local) Run(ctx context.Context) error {
	l.expMu.Lock()
	l.manual++
	if l.timer != nil {
		l.timer.Stop()
	}
	l.armed = false
	l.expMu.Unlock()
	defer func() {
		l.expMu.Lock()
		l.manual--
		l.expMu.Unlock()
		l.kick()
	}()
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
		t.Reset(expiryWait(now, l.r.NextExpiry()))
	}
}
