package replicator

import "context"

// The deltas that every writer of a session builds the same way live here,
// so that a session is destroyed, touched or taken over with one spelling
// whoever does it (httpsession's Manager, replicator/cluster, stores, the
// admin API).

// InvalidateDelta returns the delta with which owner destroys s for reason
// at now (Unix nanoseconds): s's metadata, LastAccess now and one
// InvalidateOp. OpInvalidate wins whatever the stamp (doc.go, rule 4); a
// caller that also wants the record's metadata to win raises Epoch.
func InvalidateDelta(s *Session, owner string, now int64, reason DestroyReason) *Delta {
	return &Delta{
		ID: s.ID, Owner: owner, Epoch: s.Epoch,
		Created: s.Created, LastAccess: now, IdleTimeout: s.IdleTimeout, Deadline: s.Deadline,
		Ops: []Op{InvalidateOp(reason)},
	}
}

// Takeover makes d take its session over from another owner: the next
// epoch, and OpTakeover as its first op, so that d's metadata and
// attributes win over everything the previous owner wrote (doc.go, rule 3).
func (d *Delta) Takeover() {
	d.Epoch++
	d.Ops = append(d.Ops, Op{})
	copy(d.Ops[1:], d.Ops)
	d.Ops[0] = Op{Kind: OpTakeover}
}

// RenameFrom makes d move the session old to d.ID (a token renewal): d is
// applied to old, then OpRename, its last op, moves the record to the new
// ID and leaves a tombstone (ReasonRenamed) under old.
func (d *Delta) RenameFrom(old string) {
	d.Ops = append(d.Ops, Op{Kind: OpRename, Key: d.ID})
	d.ID = old
}

// TouchDelta returns the delta that records an access to s at `at` (Unix
// nanoseconds) without changing it: s's own stamp (Owner, Epoch, Version)
// and metadata, HLC hlc, one OpTouch.
func TouchDelta(s *Session, at int64, hlc uint64) *Delta {
	return &Delta{
		ID: s.ID, Owner: s.Owner, Epoch: s.Epoch, Version: s.Version, HLC: hlc,
		Created: s.Created, LastAccess: at, IdleTimeout: s.IdleTimeout, Deadline: s.Deadline,
		Ops: []Op{{Kind: OpTouch}},
	}
}

// TouchOnly reports whether d only records an access (its ops are all
// OpTouch): it changes no attribute, and a receiver's replication-lag
// figures leave it out, since touches are batched on purpose.
func (d *Delta) TouchOnly() bool {
	for _, op := range d.Ops {
		if op.Kind != OpTouch {
			return false
		}
	}
	return true
}

// DestroyID destroys the live session id of st (reason ReasonInvalidated,
// asynchronously replicated) at now, as the admin API's kill does. It
// reports whether there was such a session; err is the commit's error.
func DestroyID(ctx context.Context, st Store, id string, now int64) (bool, error) {
	s := st.Get(id)
	if s == nil {
		return false, nil
	}
	_, err := st.Commit(ctx, InvalidateDelta(s, st.Node(), now, ReasonInvalidated), Async)
	return true, err
}
