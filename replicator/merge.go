package replicator

import (
	"bytes"
	"cmp"
	"strings"
)

// This file holds the merge rules. Each is a join of a semilattice
// (commutative, associative, idempotent), which is what lets every replica
// reach the same state whatever the order and multiplicity of the deltas
// and records it receives.

// CompareStamps orders two stamps by Epoch, then HLC, then Node. It
// returns -1, 0 or +1.
func CompareStamps(a, b Stamp) int {
	if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
		return c
	}
	if c := cmp.Compare(a.HLC, b.HLC); c != 0 {
		return c
	}
	return strings.Compare(a.Node, b.Node)
}

// attrBeats reports whether attribute b wins over attribute a: the greater
// stamp wins; on equal stamps (which only distinct writes with colliding
// stamps can produce) a tombstone wins, then the greater value, so the
// choice is still the same everywhere.
func attrBeats(b, a *Attr) bool {
	if c := CompareStamps(b.Stamp, a.Stamp); c != 0 {
		return c > 0
	}
	if a.Deleted != b.Deleted {
		return b.Deleted
	}
	return bytes.Compare(b.Value, a.Value) > 0
}

// principalBeats reports whether principal (bs, bv) wins over (as, av).
func principalBeats(bs Stamp, bv string, as Stamp, av string) bool {
	if c := CompareStamps(bs, as); c != 0 {
		return c > 0
	}
	return bv > av
}

// meta is the session metadata that is resolved as one unit. Its order
// (Epoch, Version, Owner, then the values themselves) picks the record of
// the latest owner: Epoch grows on takeover, Version on every commit of
// the owner. Every field of the key is in the Session record, so full
// records (state transfer, anti-entropy) merge exactly like deltas.
type meta struct {
	epoch    uint32
	version  uint64
	owner    string
	created  int64
	idle     int64
	deadline int64
}

func metaOf(s *Session) meta {
	return meta{s.Epoch, s.Version, s.Owner, s.Created, s.IdleTimeout, s.Deadline}
}

func metaOfDelta(d *Delta) meta {
	return meta{d.Epoch, d.Version, d.Owner, d.Created, d.IdleTimeout, d.Deadline}
}

func compareMeta(a, b meta) int {
	if c := cmp.Compare(a.epoch, b.epoch); c != 0 {
		return c
	}
	if c := cmp.Compare(a.version, b.version); c != 0 {
		return c
	}
	if c := strings.Compare(a.owner, b.owner); c != 0 {
		return c
	}
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	if c := cmp.Compare(a.idle, b.idle); c != 0 {
		return c
	}
	return cmp.Compare(a.deadline, b.deadline)
}

func (m meta) setOn(s *Session) {
	s.Epoch, s.Version, s.Owner = m.epoch, m.version, m.owner
	s.Created, s.IdleTimeout, s.Deadline = m.created, m.idle, m.deadline
}

// reasonBeats reports whether destroy reason b wins over a. A destroy
// (any reason but ReasonRenamed) wins over a rename: when a session is
// both destroyed and renamed concurrently, it dies under both IDs.
// Between two destroys the lower reason wins.
func reasonBeats(b, a DestroyReason) bool {
	ar, br := a == ReasonRenamed, b == ReasonRenamed
	if ar != br {
		return ar
	}
	return b < a
}

func tomb(id string, reason DestroyReason, renamedTo string) *Session {
	return &Session{ID: id, Destroyed: true, Reason: reason, RenamedTo: renamedTo}
}

// joinTomb returns the join of two tombstones of one ID: the winning
// reason (reasonBeats) and the greatest rename target. A tombstone whose
// reason is not ReasonRenamed may keep a RenamedTo: the session was
// renamed, then destroyed, and the new ID is destroyed with it. joinTomb
// returns a itself when b adds nothing.
func joinTomb(a, b *Session) *Session {
	reason, to := a.Reason, a.RenamedTo
	if reasonBeats(b.Reason, a.Reason) {
		reason = b.Reason
	}
	if b.RenamedTo > to {
		to = b.RenamedTo
	}
	if reason == a.Reason && to == a.RenamedTo {
		return a
	}
	return tomb(a.ID, reason, to)
}

// joinLive merges live record b into live record a (same ID) and returns
// the result: a itself when b adds nothing, else a new *Session. Neither
// input is modified.
func joinLive(a, b *Session) *Session {
	var ch []attrEntry
	for k, bv := range b.Attrs.All() {
		av, ok := a.Attrs.Get(k)
		if ok && !attrBeats(&bv, &av) {
			continue
		}
		ch = append(ch, entryOf(k, &bv)) // in key order, as All yields
	}
	pr := principalBeats(b.PrincipalAt, b.Principal, a.PrincipalAt, a.Principal)
	mb := compareMeta(metaOf(b), metaOf(a)) > 0
	la := b.LastAccess > a.LastAccess
	if ch == nil && !pr && !mb && !la {
		return a
	}
	n := withAttrs(a, ch)
	if pr {
		n.Principal, n.PrincipalAt = b.Principal, b.PrincipalAt
	}
	if mb {
		metaOf(b).setOn(n)
		n.Owner = internNode(n.Owner)
	}
	if la {
		n.LastAccess = b.LastAccess
	}
	return n
}

// liveSize is what counts against MaxSessionBytes: keys and values of the
// live attributes and the principal.
func liveSize(s *Session) int {
	n := len(s.Principal)
	for _, e := range s.Attrs.entries() {
		if !e.deleted {
			n += len(e.key) + int(e.vlen)
		}
	}
	return n
}
