package replicator

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hanode/hanode/internal/hlc"
)

// ReplicaConfig configures a Replica. Zero values take the defaults named
// in each field's comment.
type ReplicaConfig struct {
	// MaxSessionBytes caps one session: keys and values of its live
	// attributes plus its principal, in bytes. Default 1 MiB.
	MaxSessionBytes int
	// MaxAttrBytes caps one attribute value, in bytes. Default 256 KiB.
	MaxAttrBytes int
	// TombstoneTTL is how long a destroyed session is remembered, so that
	// late deltas cannot resurrect it. Default 10 minutes.
	TombstoneTTL time.Duration
	// PeerExpiryGrace is added to the idle timeout and deadline of
	// sessions this node does not own, so that a peer never expires a
	// session its owner still serves. Default 5 seconds.
	PeerExpiryGrace time.Duration
	// OnEvent, when set, receives lifecycle events. It is called outside
	// the replica's locks, synchronously from the method that caused the
	// event (Apply, Commit, MergeSession, Expire); it may call back into
	// the Replica. It must be safe for concurrent use.
	OnEvent func(Event)
}

// DefaultReplicaConfig returns the defaults.
func DefaultReplicaConfig() ReplicaConfig {
	return ReplicaConfig{
		MaxSessionBytes: 1 << 20,
		MaxAttrBytes:    256 << 10,
		TombstoneTTL:    10 * time.Minute,
		PeerExpiryGrace: 5 * time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c ReplicaConfig) Validate() error {
	if c.MaxSessionBytes < 0 || c.MaxAttrBytes < 0 || c.TombstoneTTL < 0 || c.PeerExpiryGrace < 0 {
		return errors.New("replicator: negative limit in ReplicaConfig")
	}
	return nil
}

func (c ReplicaConfig) withDefaults() ReplicaConfig {
	d := DefaultReplicaConfig()
	if c.MaxSessionBytes > 0 {
		d.MaxSessionBytes = c.MaxSessionBytes
	}
	if c.MaxAttrBytes > 0 {
		d.MaxAttrBytes = c.MaxAttrBytes
	}
	if c.TombstoneTTL > 0 {
		d.TombstoneTTL = c.TombstoneTTL
	}
	if c.PeerExpiryGrace > 0 {
		d.PeerExpiryGrace = c.PeerExpiryGrace
	}
	d.OnEvent = c.OnEvent
	return d
}

// EventKind is the kind of a lifecycle Event.
type EventKind uint8

const (
	// EventCreated: a live session appeared in the replica (committed
	// here, received from a peer, or the target of a rename).
	EventCreated EventKind = 1
	// EventDestroyed: a live session was destroyed (Reason says why).
	EventDestroyed EventKind = 2
)

func (k EventKind) String() string {
	switch k {
	case EventCreated:
		return "created"
	case EventDestroyed:
		return "destroyed"
	}
	return "unknown"
}

// Event is a session lifecycle event.
type Event struct {
	Kind EventKind // EventCreated or EventDestroyed
	ID   string    // the session's ID, without route suffix
	// Session is the new session (EventCreated) or its last live state
	// (EventDestroyed). Immutable.
	Session *Session
	Reason  DestroyReason // EventDestroyed only
	// ByTimer is true when this replica's own expiry timers destroyed the
	// session (Expire), not a delta or a merge.
	ByTimer bool
}

// ApplyResult says what Apply did with a delta.
type ApplyResult struct {
	Changed   bool   // the replica changed (false for a duplicate)
	Created   bool   // a live session appeared under the delta's ID
	Destroyed bool   // the live session under the delta's ID was destroyed (or renamed)
	Ignored   bool   // the ID is a tombstone of a destroyed session: the delta was dropped
	Forwarded string // the ID was renamed: the delta was applied to this ID instead
	// Gap: the delta has the session's epoch and a version more than one
	// above the replica's, so deltas were missed. It was applied anyway
	// (merging is order-free); the runtime may fetch the full session
	// from its owner.
	Gap bool
}

const numShards = 64

// maxHops bounds how far a delta is forwarded along a chain of renames.
const maxHops = 16

type shard struct {
	mu sync.RWMutex
	t  table
	_  [64]byte // keep hot locks on separate cache lines (128 bytes a shard)
}

// Replica is the full replica of every session of the cluster: live
// sessions and the tombstones of destroyed ones. It is pure logic: no
// goroutines, no network, time passed in. All methods are safe for
// concurrent use; Get and Touch take one shard read or write lock.
//
// Sessions are immutable: every change installs a new *Session. A
// *Session returned by any method is never modified afterwards and must
// not be modified by the caller.
type Replica struct {
	cfg    ReplicaConfig
	seed   maphash.Seed
	shards [numShards]shard
	live   atomic.Int64

	pmu    sync.Mutex
	byUser map[string]map[string]struct{} // principal → live session IDs

	exp expiry
}

// NewReplica returns an empty replica.
func NewReplica(cfg ReplicaConfig) *Replica {
	r := &Replica{cfg: cfg.withDefaults(), seed: maphash.MakeSeed(), byUser: map[string]map[string]struct{}{}}
	for i := range r.shards {
		r.shards[i].t.seed = r.seed
	}
	return r
}

// Config returns the configuration in effect (defaults filled in).
func (r *Replica) Config() ReplicaConfig { return r.cfg }

func (r *Replica) shard(id string) *shard {
	return &r.shards[maphash.String(r.seed, id)&(numShards-1)]
}

// Get returns the live session with this ID, or nil when there is none or
// it is destroyed. It does not copy: the result is shared and immutable.
func (r *Replica) Get(id string) *Session {
	sh := r.shard(id)
	sh.mu.RLock()
	sl, _ := sh.t.get(id)
	sh.mu.RUnlock()
	if sl.s == nil || sl.s.Destroyed {
		return nil
	}
	return sl.s
}

// heldID returns the replica's string of the ID in b when it holds a
// record (live or tombstone) under it, and "" otherwise. b is only looked
// up, not kept.
func (r *Replica) heldID(b []byte) string {
	id := unsafe.String(unsafe.SliceData(b), len(b))
	sh := r.shard(id)
	sh.mu.RLock()
	sl, ok := sh.t.get(id)
	sh.mu.RUnlock()
	if !ok || sl.s == nil || sl.s.ID != id {
		return ""
	}
	return sl.s.ID
}

// Lookup returns the record under this ID, tombstones included, or nil.
func (r *Replica) Lookup(id string) *Session {
	sh := r.shard(id)
	sh.mu.RLock()
	sl, _ := sh.t.get(id)
	sh.mu.RUnlock()
	return sl.s
}

// Len returns the number of live sessions.
func (r *Replica) Len() int { return int(r.live.Load()) }

// Range calls fn for every record, live sessions and tombstones (check
// Session.Destroyed), in no particular order, until fn returns false. It
// holds no lock while fn runs, so fn may call the Replica; changes made
// meanwhile may or may not be seen.
func (r *Replica) Range(fn func(*Session) bool) {
	var buf []*Session
	for i := range r.shards {
		buf = r.shardRecords(i, buf[:0])
		for _, s := range buf {
			if !fn(s) {
				return
			}
		}
	}
}

func (r *Replica) shardRecords(i int, buf []*Session) []*Session {
	sh := &r.shards[i]
	sh.mu.RLock()
	sh.t.each(func(s *Session) { buf = append(buf, s) })
	sh.mu.RUnlock()
	return buf
}

// SessionsOf returns the IDs of the live sessions of a principal, in no
// particular order; the caller owns the slice.
func (r *Replica) SessionsOf(principal string) []string {
	if principal == "" {
		return nil
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	set := r.byUser[principal]
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	return ids
}

// events collects lifecycle events while locks are held; fire delivers
// them afterwards.
type events []Event

func (r *Replica) fire(ev events) {
	if r.cfg.OnEvent == nil {
		return
	}
	for _, e := range ev {
		r.cfg.OnEvent(e)
	}
}

// update runs fn on the current record of id (nil when absent) under the
// shard's write lock and installs what it returns. Returning cur (the same
// pointer) means no change. It keeps the live count, the principal index,
// the expiry heap and the tombstone queue in step, and records events.
func (r *Replica) update(id string, ev *events, fn func(cur *Session) (*Session, error)) (cur, next *Session, err error) {
	sh := r.shard(id)
	sh.mu.Lock()
	sl, _ := sh.t.get(id)
	cur = sl.s
	next, err = fn(cur)
	if err != nil || next == cur || next == nil {
		sh.mu.Unlock()
		return cur, cur, err
	}
	wasLive := cur != nil && !cur.Destroyed
	isLive := !next.Destroyed
	if isLive {
		if e := expiryOf(next, 0); e > 0 && (sl.sched == 0 || e < sl.sched) {
			sl.sched = e
			r.exp.push(e, id)
		}
	}
	kv := !isLive && IsKeyRecord(id)
	if kv {
		// A key record leaves no tombstone: its key may be written
		// again at once (see KeyPrefix).
		sh.t.del(id)
	} else {
		sl.s = next
		sh.t.put(sl)
	}
	var oldP, newP string
	if wasLive {
		oldP = cur.Principal
	}
	if isLive {
		newP = next.Principal
	}
	if oldP != newP {
		r.reindex(id, oldP, newP)
	}
	if !isLive && !kv && (cur == nil || !cur.Destroyed) {
		r.exp.tombstoned(id)
	}
	sh.mu.Unlock()

	switch {
	case wasLive && !isLive:
		r.live.Add(-1)
		*ev = append(*ev, Event{Kind: EventDestroyed, ID: id, Session: cur, Reason: next.Reason})
	case !wasLive && isLive:
		r.live.Add(1)
		*ev = append(*ev, Event{Kind: EventCreated, ID: id, Session: next})
	}
	return cur, next, nil
}

func (r *Replica) reindex(id, oldP, newP string) {
	r.pmu.Lock()
	if oldP != "" {
		if set := r.byUser[oldP]; set != nil {
			delete(set, id)
			if len(set) == 0 {
				delete(r.byUser, oldP)
			}
		}
	}
	if newP != "" {
		set := r.byUser[newP]
		if set == nil {
			set = map[string]struct{}{}
			r.byUser[newP] = set
		}
		set[id] = struct{}{}
	}
	r.pmu.Unlock()
}

// invalidateReason returns the reason carried by an OpInvalidate: one
// byte in Value, ReasonInvalidated when absent or unknown.
func invalidateReason(op *Op) DestroyReason {
	if len(op.Value) == 1 {
		if r := DestroyReason(op.Value[0]); r >= ReasonInvalidated && r <= ReasonEvicted {
			return r
		}
	}
	return ReasonInvalidated
}

// InvalidateOp returns the OpInvalidate that destroys a session for
// reason (ReasonInvalidated, ReasonExpired, ReasonDisplaced or
// ReasonEvicted; ReasonRenamed is OpRename's).
func InvalidateOp(reason DestroyReason) Op {
	if reason == ReasonInvalidated || reason < ReasonInvalidated || reason > ReasonEvicted {
		return Op{Kind: OpInvalidate}
	}
	return Op{Kind: OpInvalidate, Value: []byte{byte(reason)}}
}

// deltaInfo is what a delta does beyond attribute changes.
type deltaInfo struct {
	invalidate bool
	reason     DestroyReason
	renameTo   string
}

func scan(d *Delta) (deltaInfo, bool) {
	var in deltaInfo
	var stateful bool
	for i := range d.Ops {
		op := &d.Ops[i]
		switch op.Kind {
		case OpInvalidate:
			r := invalidateReason(op)
			if !in.invalidate || r < in.reason {
				in.reason = r
			}
			in.invalidate = true
		case OpRename:
			in.renameTo = op.Key
		case OpSet, OpDel, OpPrincipal:
			stateful = true
		}
	}
	return in, stateful
}

// check validates a delta before any lock is taken.
func (r *Replica) check(d *Delta) error {
	if d.ID == "" {
		return errors.New("replicator: delta without session id")
	}
	for i := range d.Ops {
		op := &d.Ops[i]
		switch op.Kind {
		case OpSet:
			if len(op.Value) > r.cfg.MaxAttrBytes {
				return fmt.Errorf("%w: attribute %q is %d bytes, limit %d", ErrTooLarge, op.Key, len(op.Value), r.cfg.MaxAttrBytes)
			}
		case OpRename:
			if op.Key == "" || op.Key == d.ID {
				return errors.New("replicator: rename without a new id")
			}
		case OpDel, OpInvalidate, OpTouch, OpTakeover, OpPrincipal:
		default:
			return fmt.Errorf("replicator: unknown op kind %d", op.Kind)
		}
	}
	return nil
}

// Apply merges a delta from any node, this one included. See the package
// documentation for the rules. An error (ErrTooLarge, a malformed delta)
// means nothing was applied. Apply does not modify d and keeps no
// reference to d, only to its op values.
func (r *Replica) Apply(d *Delta) (ApplyResult, error) {
	if err := r.check(d); err != nil {
		return ApplyResult{}, err
	}
	var ev events
	res, err := r.apply(d, d.ID, 0, nil, 0, &ev)
	r.fire(ev)
	return res, err
}

// Commit is the local-commit path of a store: under the session's lock it
// sets d.HLC from c (the store's hybrid logical clock, package
// internal/hlc: Commit serves hanode's own stores) at wall (unix nanoseconds) and d.Version to the
// session's version plus one, then applies d. It returns ErrDestroyed for
// a destroyed ID and ErrTooLarge when the session would exceed the limits;
// on error nothing was applied. The caller then hands d to replication
// and must not modify it. Commit does not check d.Epoch: a node that
// commits with an epoch below the session's (it lost the session to a
// takeover) has its writes lose to the new owner's, so callers commit
// with the session's current Epoch (plus one and OpTakeover to take it
// over).
func (r *Replica) Commit(d *Delta, c *hlc.Clock, wall int64) error {
	if err := r.check(d); err != nil {
		return err
	}
	var ev events
	_, err := r.apply(d, d.ID, 0, c, wall, &ev)
	r.fire(ev)
	return err
}

func (r *Replica) apply(d *Delta, id string, hops int, clk *hlc.Clock, wall int64, ev *events) (ApplyResult, error) {
	var res ApplyResult
	in, _ := scan(d)
	if hops > 0 {
		// Forwarded along a rename: the rename and invalidation were
		// resolved on the first ID.
		in = deltaInfo{}
	}
	var moved *Session
	cur, next, err := r.update(id, ev, func(cur *Session) (*Session, error) {
		if cur != nil && cur.Destroyed {
			if clk != nil {
				return nil, fmt.Errorf("%w: commit on a destroyed session", ErrDestroyed)
			}
			t := cur
			if in.invalidate {
				t = joinTomb(t, tomb(id, in.reason, ""))
			}
			if in.renameTo != "" {
				t = joinTomb(t, tomb(id, ReasonRenamed, in.renameTo))
			}
			return t, nil
		}
		if clk != nil {
			d.Version = 1
			if cur != nil {
				d.Version = cur.Version + 1
			}
			d.HLC = clk.Now(wall)
		} else if cur != nil && d.Epoch == cur.Epoch && d.Version > cur.Version+1 {
			res.Gap = true
		}
		if in.invalidate {
			return tomb(id, in.reason, in.renameTo), nil
		}
		n, err := r.applyLive(cur, d, id)
		if err != nil {
			return nil, err
		}
		if in.renameTo != "" {
			moved = n
			return tomb(id, ReasonRenamed, in.renameTo), nil
		}
		return n, nil
	})
	if err != nil {
		return res, err
	}
	res.Changed = next != cur
	wasLive := cur != nil && !cur.Destroyed
	res.Created = cur == nil && !next.Destroyed
	res.Destroyed = wasLive && next.Destroyed
	if hops >= maxHops {
		return res, nil
	}
	r.cascade(cur, next, hops, ev)
	switch {
	case cur != nil && cur.Destroyed && next.Reason == ReasonRenamed:
		// A late delta for a renamed ID belongs to the new ID.
		res.Forwarded = next.RenamedTo
		fr, err := r.apply(d, next.RenamedTo, hops+1, nil, 0, ev)
		res.Changed = res.Changed || fr.Changed
		return res, err
	case cur != nil && cur.Destroyed:
		res.Ignored = !res.Changed
	case moved != nil:
		m := *moved
		m.ID = in.renameTo
		r.merge(&m, hops+1, ev)
	}
	return res, nil
}

// cascade destroys the rename target of a tombstone that a destroy
// reached (or whose reason or target changed).
func (r *Replica) cascade(cur, next *Session, hops int, ev *events) {
	if next != cur && next.Destroyed && next.Reason != ReasonRenamed && next.RenamedTo != "" {
		r.destroyChain(next.RenamedTo, next.Reason, hops+1, ev)
	}
}

// applyLive returns cur (nil for a new session) with the delta's attribute,
// principal and metadata changes, cur itself when nothing changes.
func (r *Replica) applyLive(cur *Session, d *Delta, id string) (*Session, error) {
	owner := internNode(d.Owner)
	st := Stamp{Epoch: d.Epoch, HLC: d.HLC, Node: owner}
	var base *Session
	if cur == nil {
		base = &Session{ID: id}
	} else {
		base = cur
	}
	var buf [4]attrEntry // most deltas change a few keys: no allocation for them
	ch := buf[:0]
	principalSet := false
	var principal string
	// Ops of one delta share a stamp; the last op on a key wins, so walk
	// backwards and skip keys already seen.
	for i := len(d.Ops) - 1; i >= 0; i-- {
		op := &d.Ops[i]
		switch op.Kind {
		case OpSet, OpDel:
			if laterOpOnKey(d.Ops, i) {
				continue
			}
			na := Attr{Stamp: st}
			if op.Kind == OpSet {
				na.Value = op.Value
			} else {
				na.Deleted = true
			}
			if old, ok := base.Attrs.Get(op.Key); ok && !attrBeats(&na, &old) {
				continue
			}
			ch = append(ch, entryOf(op.Key, &na))
		case OpPrincipal:
			if !principalSet {
				principalSet = true
				principal = string(op.Value)
			}
		}
	}
	pr := principalSet && principalBeats(st, principal, base.PrincipalAt, base.Principal)
	dm := metaOfDelta(d)
	dm.owner = owner
	mb := cur == nil || compareMeta(dm, metaOf(base)) > 0
	la := d.LastAccess > base.LastAccess
	if len(ch) == 0 && !pr && !mb && !la {
		return cur, nil
	}
	if len(ch) > 1 {
		slices.SortFunc(ch, func(a, b attrEntry) int { return strings.Compare(a.key, b.key) })
	}
	n := withAttrs(base, ch)
	if pr {
		n.Principal, n.PrincipalAt = principal, st
	}
	if mb {
		dm.setOn(n)
	}
	if la {
		n.LastAccess = d.LastAccess
	}
	if len(ch) > 0 || pr {
		if sz := liveSize(n); sz > r.cfg.MaxSessionBytes {
			return nil, fmt.Errorf("%w: session would be %d bytes, limit %d", ErrTooLarge, sz, r.cfg.MaxSessionBytes)
		}
	}
	return n, nil
}

// laterOpOnKey reports whether an OpSet or OpDel after ops[i] has the same
// key.
func laterOpOnKey(ops []Op, i int) bool {
	for j := i + 1; j < len(ops); j++ {
		if (ops[j].Kind == OpSet || ops[j].Kind == OpDel) && ops[j].Key == ops[i].Key {
			return true
		}
	}
	return false
}

// destroyChain destroys id for reason (creating its tombstone when it is
// absent) and follows the rename chain from it.
func (r *Replica) destroyChain(id string, reason DestroyReason, hops int, ev *events) {
	for ; hops <= maxHops && id != ""; hops++ {
		t := tomb(id, reason, "")
		cur, next, _ := r.update(id, ev, func(cur *Session) (*Session, error) {
			if cur == nil || !cur.Destroyed {
				return t, nil
			}
			return joinTomb(cur, t), nil
		})
		if next == cur || next.Reason == ReasonRenamed || next.RenamedTo == "" {
			return
		}
		id, reason = next.RenamedTo, next.Reason
	}
}

// Touch records an access at lastAccess (unix nanoseconds) on a live
// session, locally only: the runtime replicates accesses in batched
// OpTouch deltas. It replaces the *Session when the time moves forward.
func (r *Replica) Touch(id string, lastAccess int64) {
	sh := r.shard(id)
	sh.mu.Lock()
	sl, ok := sh.t.get(id)
	if ok && !sl.s.Destroyed && lastAccess > sl.s.LastAccess {
		n := copySession(sl.s)
		n.LastAccess = lastAccess
		sl.s = n
		sh.t.put(sl)
	}
	sh.mu.Unlock()
}

// MergeSession merges a full record (live or tombstone) received by state
// transfer or anti-entropy, with the same rules as Apply. It reports
// whether the replica changed. The replica keeps s (or its parts): the
// caller must not modify it afterwards. Limits are not enforced: the
// record was accepted by the replica it comes from.
func (r *Replica) MergeSession(s *Session) bool {
	if s == nil || s.ID == "" {
		return false
	}
	var ev events
	ch := r.merge(s, 0, &ev)
	r.fire(ev)
	return ch
}

func (r *Replica) merge(s *Session, hops int, ev *events) bool {
	var moved *Session
	id := s.ID
	cur, next, _ := r.update(id, ev, func(cur *Session) (*Session, error) {
		switch {
		case s.Destroyed && (cur == nil || !cur.Destroyed):
			if cur != nil && s.Reason == ReasonRenamed {
				moved = cur
			}
			return tomb(id, s.Reason, s.RenamedTo), nil
		case s.Destroyed:
			return joinTomb(cur, s), nil
		case cur == nil:
			return s, nil
		case cur.Destroyed:
			return cur, nil
		}
		return joinLive(cur, s), nil
	})
	changed := next != cur
	if hops >= maxHops {
		return changed
	}
	r.cascade(cur, next, hops, ev)
	switch {
	case cur != nil && cur.Destroyed && next.Reason == ReasonRenamed && !s.Destroyed:
		// A live record of a renamed ID belongs to the new ID.
		f := *s
		f.ID = next.RenamedTo
		changed = r.merge(&f, hops+1, ev) || changed
	case moved != nil:
		m := *moved
		m.ID = s.RenamedTo
		r.merge(&m, hops+1, ev)
	}
	return changed
}
