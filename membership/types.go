package membership

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Errors. Step's errors wrap ErrMalformed, ErrVersion, ErrUnknownType or
// ErrTooLarge; none of them changes the Machine's state beyond a counter.
var (
	ErrConfig       = errors.New("membership: invalid config")
	ErrMalformed    = errors.New("membership: malformed payload")
	ErrVersion      = errors.New("membership: unsupported protocol version")
	ErrUnknownType  = errors.New("membership: unknown message type")
	ErrTooLarge     = errors.New("membership: payload too large")
	ErrMetaTooLarge = errors.New("membership: meta too large")
)

// State is a member's state as this Machine sees it.
type State uint8

const (
	// Alive: heard within SuspectTimeout.
	Alive State = iota + 1
	// Suspect: silent for SuspectTimeout and being probed. A suspected
	// member is still in the View.
	Suspect
	// Dead: silent for DeadTimeout and answered no probe. It comes back
	// (Joined) only with a higher incarnation.
	Dead
	// Left: announced a graceful leave, or was replaced by a newer member of
	// the same name. Final for that ID.
	Left
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	case Left:
		return "left"
	}
	return "unknown"
}

// EventKind says what happened to a member.
type EventKind uint8

const (
	// EventJoined: a member was heard for the first time, or came back from
	// Dead with a higher incarnation (after a partition healed or a stall).
	EventJoined EventKind = iota + 1
	// EventSuspected: a member went silent for SuspectTimeout and is probed.
	EventSuspected
	// EventRecovered: a suspected member was heard again.
	EventRecovered
	// EventDied: a suspected member stayed silent for DeadTimeout.
	EventDied
	// EventLeft: a member announced a graceful leave, or was replaced by a
	// member with the same name and a later Started (a restart).
	EventLeft
	// EventUpdated: a member's Meta changed.
	EventUpdated
)

func (k EventKind) String() string {
	switch k {
	case EventJoined:
		return "joined"
	case EventSuspected:
		return "suspected"
	case EventRecovered:
		return "recovered"
	case EventDied:
		return "died"
	case EventLeft:
		return "left"
	case EventUpdated:
		return "updated"
	}
	return "unknown"
}

// Member is one member as this Machine sees it. A Member returned by the
// Machine is a copy that the caller owns.
type Member struct {
	ID          uuid.UUID         // the member's ID (Config.ID), new at every process start
	Name        string            // its node name (Config.Name), unique among live members
	Started     time.Time         // when its process started (Config.Started): the earliest is the oldest member
	Incarnation uint64            // bumped by the member to refute a suspicion or publish new Meta
	State       State             // Alive, Suspect, Dead or Left, as this Machine sees it
	Meta        map[string]string // the key/values of its last heartbeat (Config.Meta)
	LastSeen    time.Time         // when this Machine last heard it (the Machine's own clock)
	View        uint64            // the view ID in its last heartbeat: equal for all when views agree
}

func (m Member) clone() Member {
	m.Meta = maps.Clone(m.Meta)
	return m
}

// older reports whether a is older than b: earlier Started, then smaller ID.
func older(a, b *Member) bool {
	if !a.Started.Equal(b.Started) {
		return a.Started.Before(b.Started)
	}
	return slices.Compare(a.ID[:], b.ID[:]) < 0
}

// Event reports a change of one member.
type Event struct {
	Kind   EventKind // what happened (EventJoined, EventDied, ...)
	Member Member    // the member after the change
}

// View is the set of members in this member's view: Alive and Suspect ones,
// self included, sorted by ID. Suspicion does not change the view; death,
// leave and join do.
type View struct {
	ID      uint64   // FNV-1a 64 of the sorted member IDs; equal views have equal IDs
	Members []Member // the members in the view, sorted by ID
}

// Outgoing is a payload to send.
type Outgoing struct {
	To      uuid.UUID // uuid.Nil: the group; otherwise that member only
	Payload []byte    // owned by the caller
}

// Ready is what a Machine has to send and to report since the last Ready.
type Ready struct {
	Messages []Outgoing // payloads to send, in order
	Events   []Event    // member changes, in the order they happened
}

// Stats are counters since New.
type Stats struct {
	Malformed        uint64 // payloads Step rejected
	IgnoredMembers   uint64 // heartbeats of new members ignored at MaxMembers
	Stale            uint64 // refused heartbeats and messages: from left members, dead ones at an old incarnation, older than known, and the two below
	Retired          uint64 // heartbeats of members removed after they died or left, refused (never resurrected)
	OlderIncarnation uint64 // heartbeats of an unknown member older than the member known with its name, refused
	Refutations      uint64 // times this member bumped its incarnation to refute a suspicion
	NameConflicts    uint64 // heartbeats from a member replaced by a newer one of the same name
	// Suspicions counts members this Machine suspected (EventSuspected).
	Suspicions uint64
	// FalseSuspicions counts suspicions proven wrong: the suspected member
	// was heard again with the same ID (it refuted, answered a probe, or
	// came back after a partition or stall that got it declared dead).
	FalseSuspicions uint64
	// GoneDeaths counts members declared dead early because their process
	// was known to be gone (Gone).
	GoneDeaths uint64
}
