// Package replicator holds hanode's full replica of the cluster's HTTP
// sessions and the pure logic around it: deltas and their merge rules,
// expiry, anti-entropy digests, the wire codec and snapshots for state
// transfer. The hybrid logical clock that stamps commits (internal/hlc)
// and the codec's entry points for runtimes (internal/wire) are internal
// to hanode. Replica and everything it uses start no goroutines, open no
// sockets and never read the clock: time comes in as unix nanoseconds. The runtime that moves deltas between nodes lives in
// replicator/cluster. The one part here with a clock is Local, the Store
// used when HA is off: it stamps commits with the wall clock and expires
// sessions with its own timer (time.AfterFunc, see local.go); the
// deltas.go helpers take the time as an argument.
//
// # Data model
//
// Every node holds every session. A Session is immutable: a change
// installs a new *Session (copy on write), so a *Session returned by Get
// can be read without locks and is never modified afterwards. Attribute
// maps are shared between successive versions of a session when a change
// does not touch them (a touch, a takeover), and copied when it does.
//
// A change is a Delta: the ops one request made to one session, stamped
// with (Epoch, HLC, Owner). Ops in one delta share the stamp; the last op
// on a key wins inside a delta.
//
// # Merge rules
//
// Apply (a delta) and MergeSession (a full record) are joins: commutative,
// associative and idempotent, so replicas that received the same deltas
// and records, in any order and any number of times, hold the same state
// and equal digests.
//
//  1. Attributes: last writer wins per attribute by Stamp (Epoch, then
//     HLC, then node name). OpDel leaves an attribute tombstone
//     (Attr.Deleted) so that an older set arriving late cannot resurrect
//     it; attribute tombstones live as long as their session. Equal
//     stamps with different contents (impossible for well-formed input)
//     resolve to the tombstone, then the greater value.
//  2. Principal: last writer wins by PrincipalAt (OpPrincipal; an empty
//     value clears it). SessionsOf reads an index kept in step.
//  3. Metadata (Owner, Epoch, Version, Created, IdleTimeout, Deadline)
//     resolve as one unit: the record with the greatest (Epoch, Version,
//     Owner) wins, then the greater values. Epoch grows on takeover
//     (OpTakeover with a higher Delta.Epoch), Version on every commit of
//     the owner, so this is the latest owner's view; every field of that
//     key is in the Session record, so full records merge exactly like
//     deltas. Epoch is therefore the maximum seen, and Version the
//     maximum seen within that epoch. LastAccess is the maximum seen.
//  4. Session tombstones: OpInvalidate destroys a session whatever its
//     stamp; the reason travels in the op's one-byte value (InvalidateOp).
//     A destroyed ID is never reused: later deltas for it are dropped
//     (ApplyResult.Ignored) and Commit returns ErrDestroyed. A delta for
//     an ID the replica does not know creates the session (never dropped).
//  5. Renames (OpRename, Key = new ID): the old ID becomes a tombstone
//     with Reason ReasonRenamed and RenamedTo, and its state is merged
//     into the new ID under rules 1–3 (so deltas for the new ID that
//     arrived first are kept). A late delta or record for a renamed ID is
//     forwarded to the new ID (ApplyResult.Forwarded).
//  6. Destroy beats rename: when an ID is both destroyed and renamed (a
//     logout racing a login in a partition), it dies under both IDs: its
//     tombstone keeps the destroy reason and RenamedTo, and the new ID
//     gets a tombstone with the same reason. Between two destroy reasons
//     the lower number wins, between two rename targets the greater ID.
//
// Two concurrent renames of one ID to different new IDs (possible only
// with two owners in a partition) converge through anti-entropy, not
// through deltas alone: the new ID that loses the tie-break does not get
// the session's earlier attributes until its record is exchanged.
//
// # Limits
//
// Apply and Commit refuse with ErrTooLarge, applying nothing, a value
// over MaxAttrBytes or a session whose live keys, values and principal
// would exceed MaxSessionBytes. MergeSession does not check limits: the
// record was accepted where it comes from.
//
// # What the runtime must do
//
//  1. Commit local changes with Replica.Commit (it assigns Delta.HLC and
//     Delta.Version under the session's lock), then replicate the delta.
//  2. For every delta received, merge d.HLC into the clock it commits
//     with (hlc.Clock.Update(d.HLC, now)) and then call Replica.Apply. ApplyResult.Gap says deltas of the owner were
//     missed: fetch the session (BucketSessions or a direct request).
//  3. Record accesses with Replica.Touch and replicate them in batched
//     OpTouch deltas, never one per request.
//  4. Call Replica.Expire at NextExpiry and at least every second with
//     isOwner telling which sessions this node serves. Expire does not
//     replicate: each node expires on its own, peers later by
//     PeerExpiryGrace. Do not call it while shutting down.
//  5. Every anti-entropy round, compare Digest(n) with a peer and
//     exchange BucketSessions of the buckets that differ, merging them
//     with MergeSession. Digests leave LastAccess out.
//  6. For state transfer, stream WriteSnapshot to the joiner, which uses
//     LoadSnapshot (all or nothing) while it queues live deltas, then
//     applies them. SaveFile and LoadFile persist a replica atomically.
//
// Tombstones are kept for TombstoneTTL (counted from the first Expire
// after the destroy); a delta for an ID delayed longer than that would
// create the session again.
//
// # Events
//
// ReplicaConfig.OnEvent receives EventCreated when a live session appears
// (committed, received, or the target of a rename) and EventDestroyed
// when a live session ends, with the reason. It runs synchronously, after
// the replica's locks are released, on the goroutine that caused it.
package replicator
