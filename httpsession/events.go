package httpsession

import (
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/replicator"
)

// EventKind is the kind of a lifecycle Event. Created and Destroyed are
// the store's own kinds (replicator.EventKind, same values and names);
// Renewed and TakenOver are the Manager's.
type EventKind uint8

const (
	// EventCreated: a new session was committed for the first time.
	EventCreated = EventKind(replicator.EventCreated)
	// EventDestroyed: a session ended; Event.Reason says why.
	EventDestroyed = EventKind(replicator.EventDestroyed)
	// EventRenewed: the session's ID was renewed (RenewToken).
	EventRenewed EventKind = 3
	// EventTakenOver: this node took the session over from another.
	EventTakenOver EventKind = 4
)

func (k EventKind) String() string {
	switch k {
	case EventRenewed:
		return "renewed"
	case EventTakenOver:
		return "taken-over"
	}
	return replicator.EventKind(k).String()
}

// Event describes one lifecycle event. It never carries a raw session ID.
type Event struct {
	Kind      EventKind                // what happened
	Reason    replicator.DestroyReason // EventDestroyed only
	Session   string                   // ShortHash of the session ID
	Principal string                   // the session's principal, if any
	From      string                   // EventTakenOver: the previous owner
	Time      time.Time                // when the Manager saw it
}

// Stats are the Manager's counters since New. All values are monotonic.
type Stats struct {
	Created      uint64 // sessions committed for the first time
	Destroyed    uint64 // sessions this Manager destroyed or found expired, all reasons
	Invalidated  uint64 // ... by Destroy, DestroyPrincipal, DestroyID or Clear of the session
	Expired      uint64 // ... found expired by a request
	Displaced    uint64 // ... by the InvalidateOlder duplicate-login policy
	Evicted      uint64 // ... by MaxActiveEvictOldest
	Renewed      uint64 // RenewToken renames committed
	Commits      uint64 // successful store commits
	CommitErrors uint64 // failed store commits
	Touches      uint64 // requests that changed nothing (Store.Touch)
	LateWrites   uint64 // changes refused with ErrResponseStarted
	Undecodable  uint64 // sessions dropped because a value could not be decoded
	EncodeErrors uint64 // values that could not be encoded (Put or commit)
	Takeovers    uint64 // sessions taken over from another node
	Refused      uint64 // sessions refused by MaxActive or duplicate-login policy
}

type counters struct {
	created, invalidated, expired, displaced, evicted, renewed atomic.Uint64
	commits, commitErrors, touches, lateWrites, undecodable    atomic.Uint64
	encodeErrors, takeovers, refused                           atomic.Uint64
}

// Stats returns a snapshot of the Manager's counters.
func (m *Manager) Stats() Stats {
	c := &m.stats
	s := Stats{
		Created:      c.created.Load(),
		Invalidated:  c.invalidated.Load(),
		Expired:      c.expired.Load(),
		Displaced:    c.displaced.Load(),
		Evicted:      c.evicted.Load(),
		Renewed:      c.renewed.Load(),
		Commits:      c.commits.Load(),
		CommitErrors: c.commitErrors.Load(),
		Touches:      c.touches.Load(),
		LateWrites:   c.lateWrites.Load(),
		Undecodable:  c.undecodable.Load(),
		EncodeErrors: c.encodeErrors.Load(),
		Takeovers:    c.takeovers.Load(),
		Refused:      c.refused.Load(),
	}
	s.Destroyed = s.Invalidated + s.Expired + s.Displaced + s.Evicted
	return s
}

func (m *Manager) countDestroyed(r replicator.DestroyReason) {
	switch r {
	case replicator.ReasonExpired:
		m.stats.expired.Add(1)
	case replicator.ReasonDisplaced:
		m.stats.displaced.Add(1)
	case replicator.ReasonEvicted:
		m.stats.evicted.Add(1)
	default:
		m.stats.invalidated.Add(1)
	}
}

func (m *Manager) emit(e Event) {
	if m.cfg.OnEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = m.cfg.Clock()
	}
	m.cfg.OnEvent(e)
}

// EventStore is the optional store capability that reports the store's own
// lifecycle events. Through it the Manager reports sessions that the
// store's timers expired (without a request seeing them) as EventDestroyed
// with replicator.ReasonExpired; destructions that a Manager causes are
// reported by that Manager itself.
type EventStore interface {
	replicator.Store
	Subscribe(fn func(replicator.Event))
}

func (m *Manager) storeEvent(e replicator.Event) {
	if e.Kind != replicator.EventDestroyed || !e.ByTimer || replicator.IsKeyRecord(e.ID) {
		return
	}
	m.countDestroyed(replicator.ReasonExpired)
	ev := Event{Kind: EventDestroyed, Reason: replicator.ReasonExpired, Session: ShortHash(e.ID)}
	if e.Session != nil {
		ev.Principal = e.Session.Principal
	}
	m.emit(ev)
}
