package replicator

import "sync"

// expiryOf returns when s expires (unix nanoseconds) with grace added, or
// 0 when it never does.
func expiryOf(s *Session, grace int64) int64 {
	var e int64
	if s.IdleTimeout > 0 {
		e = s.LastAccess + s.IdleTimeout + grace
	}
	if s.Deadline > 0 {
		if d := s.Deadline + grace; e == 0 || d < e {
			e = d
		}
	}
	return e
}

type expItem struct {
	at int64
	id string
}

// expHeap is a min-heap by time. Its methods are typed (container/heap
// would box every item into an interface: one allocation per push).
type expHeap []expItem

func (h *expHeap) push(it expItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].at <= s[i].at {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *expHeap) pop() expItem {
	s := *h
	it := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = expItem{}
	s = s[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && s[l].at < s[m].at {
			m = l
		}
		if r := l + 1; r < len(s) && s[r].at < s[m].at {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return it
}

// expiry holds the timers of a replica: a min-heap of session deadlines
// with lazy deletion (an entry is checked against the session when it
// pops; a session is queued again only when its expiry moves earlier than
// the queued time, so touches cost nothing here), and a FIFO of
// tombstones for garbage collection.
type expiry struct {
	mu    sync.Mutex
	h     expHeap
	fresh []string // tombstones not yet stamped with a time
	tombs []expItem
	head  int   // first live element of tombs
	now   int64 // latest now passed to Expire
}

func (e *expiry) push(at int64, id string) {
	e.mu.Lock()
	e.h.push(expItem{at, id})
	e.mu.Unlock()
}

func (e *expiry) tombstoned(id string) {
	e.mu.Lock()
	e.fresh = append(e.fresh, id)
	e.mu.Unlock()
}

// NextExpiry returns the earliest time (unix nanoseconds) at which Expire
// has work: a session deadline (maybe stale: Expire then just requeues
// it) or a tombstone to drop. It returns 0 when nothing is scheduled; new
// tombstones are stamped by the next Expire, so call Expire periodically
// (e.g. every second) as well.
func (r *Replica) NextExpiry() int64 {
	e := &r.exp
	e.mu.Lock()
	defer e.mu.Unlock()
	var next int64
	if len(e.h) > 0 {
		next = e.h[0].at
	}
	if e.head < len(e.tombs) {
		if t := e.tombs[e.head].at + int64(r.cfg.TombstoneTTL); next == 0 || t < next {
			next = t
		}
	}
	return next
}

// Expire destroys the live sessions whose idle timeout or absolute
// deadline has passed at now (unix nanoseconds), emits EventDestroyed with
// ReasonExpired for each, and returns their IDs. isOwner says whether this
// node serves a session (nil: every session); sessions it does not own get
// PeerExpiryGrace more. isOwner is called without locks held. Expire also
// drops tombstones older than TombstoneTTL. The work is proportional to
// what is due, not to the number of sessions.
//
// Expiry is a local decision of each node: the runtime may replicate it
// (an OpInvalidate with ReasonExpired) but need not, since every node
// expires on its own.
func (r *Replica) Expire(now int64, isOwner func(*Session) bool) []string {
	e := &r.exp
	grace := int64(r.cfg.PeerExpiryGrace)
	var expired []string
	var ev events
	for {
		e.mu.Lock()
		if now > e.now {
			e.now = now
		}
		if len(e.h) == 0 || e.h[0].at > now {
			e.mu.Unlock()
			break
		}
		it := e.h.pop()
		e.mu.Unlock()

		sh := r.shard(it.id)
		sh.mu.Lock()
		sl, ok := sh.t.get(it.id)
		if !ok || sl.sched != it.at {
			sh.mu.Unlock()
			continue // stale entry
		}
		sl.sched = 0
		sh.t.put(sl)
		s := sl.s
		sh.mu.Unlock()
		if s.Destroyed {
			continue
		}
		g := grace
		if isOwner == nil || isOwner(s) {
			g = 0
		}
		var requeue int64
		cur, next, _ := r.update(it.id, &ev, func(cur *Session) (*Session, error) {
			if cur == nil || cur.Destroyed {
				return cur, nil
			}
			at := expiryOf(cur, g)
			if at == 0 {
				return cur, nil
			}
			if at > now {
				requeue = at
				return cur, nil
			}
			return tomb(it.id, ReasonExpired, ""), nil
		})
		if next != cur {
			expired = append(expired, it.id)
			if len(ev) > 0 && ev[len(ev)-1].ID == it.id {
				ev[len(ev)-1].ByTimer = true
			}
		} else if requeue > 0 {
			r.requeue(it.id, requeue)
		}
	}
	r.fire(ev)
	r.gcTombstones(now)
	return expired
}

// requeue queues id at at unless an earlier entry is queued already.
func (r *Replica) requeue(id string, at int64) {
	sh := r.shard(id)
	sh.mu.Lock()
	if sl, ok := sh.t.get(id); ok && !sl.s.Destroyed && (sl.sched == 0 || at < sl.sched) {
		sl.sched = at
		sh.t.put(sl)
		r.exp.push(at, id)
	}
	sh.mu.Unlock()
}

func (r *Replica) gcTombstones(now int64) {
	e := &r.exp
	ttl := int64(r.cfg.TombstoneTTL)
	e.mu.Lock()
	stamp := e.now
	for _, id := range e.fresh {
		e.tombs = append(e.tombs, expItem{stamp, id})
	}
	e.fresh = e.fresh[:0]
	var drop []string
	for e.head < len(e.tombs) && e.tombs[e.head].at+ttl <= now {
		drop = append(drop, e.tombs[e.head].id)
		e.tombs[e.head] = expItem{}
		e.head++
	}
	if e.head > 1024 && e.head*2 > len(e.tombs) {
		e.tombs = append(e.tombs[:0], e.tombs[e.head:]...)
		e.head = 0
	}
	e.mu.Unlock()
	for _, id := range drop {
		sh := r.shard(id)
		sh.mu.Lock()
		if sl, ok := sh.t.get(id); ok && sl.s.Destroyed {
			sh.t.del(id)
		}
		sh.mu.Unlock()
	}
}

// Tombstones returns the number of tombstones held.
func (r *Replica) Tombstones() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		n += sh.t.n
		sh.mu.RUnlock()
	}
	return n - r.Len()
}
