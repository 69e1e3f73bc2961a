package replicator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// This file holds the types shared by the replica, the wire codec, the
// cluster runtime and the httpsession package. They are a contract: change
// them only by extension.

// OpKind is the kind of one operation inside a Delta. Numbers are
// append-only: they travel on the wire and in snapshots.
type OpKind uint8

const (
	// OpSet stores Value under Key.
	OpSet OpKind = 1
	// OpDel removes Key (a per-attribute tombstone, ordered like a set).
	OpDel OpKind = 2
	// OpInvalidate destroys the session. It is a session tombstone that
	// wins over every other operation, whatever its stamp.
	OpInvalidate OpKind = 3
	// OpRename moves the session to a new ID (Key holds the new ID,
	// without route). The old ID becomes a tombstone that points to the
	// new one. Used by RenewToken against session fixation.
	OpRename OpKind = 4
	// OpTouch records an access without changes; the Delta's LastAccess
	// carries the time. Batched by the runtime, never one per request.
	OpTouch OpKind = 5
	// OpTakeover records that Delta.Owner now serves the session; the
	// Delta's Epoch is the new, higher epoch.
	OpTakeover OpKind = 6
	// OpPrincipal sets (or with an empty Value clears) the principal,
	// the user the session belongs to, in Value.
	OpPrincipal OpKind = 7
)

// Op is one change to one session.
type Op struct {
	Kind  OpKind // what the op does (OpSet, OpDel, ...)
	Key   string // attribute name (OpSet, OpDel) or new ID (OpRename)
	Value []byte // encoded value (OpSet) or principal (OpPrincipal); owned by the Op, never mutated after commit
}

// Stamp orders writes. Comparison is by Epoch, then HLC, then Node:
// every node picks the same winner for concurrent writes.
type Stamp struct {
	Epoch uint32 // bumped on every takeover
	HLC   uint64 // hybrid logical clock: wall nanoseconds, logical counter in the low 16 bits
	Node  string // node name of the writer, the tie-breaker
}

// Delta is the unit of replication: the changes one request (or one
// batched touch) made to one session.
type Delta struct {
	ID      string // session ID without route suffix
	Owner   string // node that committed the delta (the session's owner after it)
	Epoch   uint32 // the session's epoch at commit
	Version uint64 // the session's version after this delta (owner-local counter, for digests and lag)
	HLC     uint64 // stamp time of every op in the delta

	// Session metadata, carried on every delta so that a peer that
	// missed the creation can still build a usable session.
	Created     int64 // unix nanoseconds
	LastAccess  int64 // unix nanoseconds
	IdleTimeout int64 // nanoseconds; 0 means no idle timeout
	Deadline    int64 // unix nanoseconds of the absolute lifetime end; 0 means none

	Ops []Op // the changes, applied in order; the last op on a key wins
}

// Attr is one attribute held in a replica.
type Attr struct {
	Value   []byte // encoded value; nil when Deleted
	Stamp   Stamp  // stamp of the write that set (or deleted) it: the latest stamp wins
	Deleted bool   // tombstone kept so that a late, older set cannot resurrect it
}

// DestroyReason says why a session ended.
type DestroyReason uint8

const (
	ReasonInvalidated DestroyReason = 1 // Destroy, logout, kill from the admin API
	ReasonExpired     DestroyReason = 2 // idle timeout or absolute lifetime
	ReasonDisplaced   DestroyReason = 3 // duplicate-login policy invalidated it
	ReasonEvicted     DestroyReason = 4 // max active sessions
	ReasonRenamed     DestroyReason = 5 // the ID was renewed; the session lives on under a new ID
)

func (r DestroyReason) String() string {
	switch r {
	case ReasonInvalidated:
		return "invalidated"
	case ReasonExpired:
		return "expired"
	case ReasonDisplaced:
		return "displaced"
	case ReasonEvicted:
		return "evicted"
	case ReasonRenamed:
		return "renamed"
	}
	return "unknown"
}

// Session is an immutable snapshot of one session in a replica. The
// replica never mutates a *Session it has handed out: every change builds
// a new one (copy on write), so readers need no lock. Callers must not
// modify it either.
//
// The field order keeps the struct at 160 bytes (a size class): a small
// session's fixed cost is mostly this struct.
type Session struct {
	ID    string // session ID without route suffix
	Owner string // node that serves the session (the last committer or taker-over)
	Epoch uint32 // bumped on every takeover; the owner's writes carry it

	// Tombstone fields: a destroyed session stays as a tombstone for a
	// while so that late deltas cannot resurrect it.
	Destroyed bool
	Reason    DestroyReason // why it was destroyed (tombstones only)

	Version     uint64 // version of the last delta merged (Delta.Version: the owner's commit counter)
	Created     int64  // unix nanoseconds
	LastAccess  int64  // unix nanoseconds
	IdleTimeout int64  // nanoseconds; 0 means none
	Deadline    int64  // unix nanoseconds; 0 means none
	Principal   string // the user the session belongs to (OpPrincipal); "" for none
	PrincipalAt Stamp  // stamp of the last OpPrincipal
	Attrs       Attrs  // sorted by key; see Attrs
	RenamedTo   string // tombstones only: set with ReasonRenamed
}

// KeyPrefix starts the ID of every key record: a record of the key-value
// keyspace served over the Redis protocol (package replicator/resp),
// whose ID is KeyPrefix followed by the key. httpsession IDs never
// contain ':', so the two namespaces never collide.
//
// Key records differ from sessions in one rule: destroying one (expiry,
// invalidation) leaves no tombstone, so the key can be written again at
// once, as Redis allows. The key-value layer therefore deletes a key by
// deleting its attributes (per-attribute tombstones, which merge like any
// write) and lets the record's Deadline reclaim it later; only records
// that are already empty or past their TTL are destroyed.
const KeyPrefix = "kv:"

// IsKeyRecord reports whether id is the ID of a key record (KeyPrefix).
func IsKeyRecord(id string) bool {
	return len(id) >= len(KeyPrefix) && id[:len(KeyPrefix)] == KeyPrefix
}

// Consistency says when a commit counts as done.
type Consistency uint8

const (
	// Async returns once the delta is applied locally and queued.
	Async Consistency = 0
	// Sync waits (bounded) until at least one peer acknowledged the delta.
	Sync Consistency = 1
	// SyncAll waits (bounded) until every live peer acknowledged it.
	SyncAll Consistency = 2
)

func (c Consistency) String() string {
	switch c {
	case Async:
		return "async"
	case Sync:
		return "sync"
	case SyncAll:
		return "sync-all"
	}
	return "unknown"
}

// ParseConsistency parses "async", "sync" or "sync-all".
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "async", "":
		return Async, nil
	case "sync":
		return Sync, nil
	case "sync-all", "syncall", "all":
		return SyncAll, nil
	}
	return Async, errors.New("replicator: consistency must be async, sync or sync-all, not " + s)
}

// CommitResult reports what happened to one commit.
type CommitResult struct {
	Replicated bool // true when peers acknowledged as the consistency asked (Sync, SyncAll); false for Async (queued only) and for local-only stores
	Acks       int  // peers that acknowledged (Sync and SyncAll only)
	TimedOut   bool // a sync wait ran out; the commit is applied locally and still queued (Commit returns ErrNotReplicated with it)
}

// Store is what the httpsession package needs of a session store: the
// local-only replica (HA off) and the cluster runtime (HA on) both
// implement it. All methods are safe for concurrent use.
type Store interface {
	// Get returns the live session with this ID (without route), or nil
	// when there is none or it has been destroyed. Never blocks on the
	// network.
	Get(id string) *Session
	// Commit assigns d.HLC and d.Version, applies d locally, then
	// replicates it as c asks. The caller sets every other field and must
	// not touch d afterwards. An error means nothing was applied (e.g.
	// ErrTooLarge, ErrDestroyed), except ErrNotReplicated: the sync or
	// sync-all wait failed, and d may be applied here (and on some peers)
	// or not at all; the outcome is indeterminate, like that of any
	// request that failed.
	Commit(ctx context.Context, d *Delta, c Consistency) (CommitResult, error)
	// Touch records an access at now (unix nanoseconds) without changes;
	// implementations batch it.
	Touch(id string, now int64)
	// SessionsOf returns the IDs of the live sessions of a principal.
	SessionsOf(principal string) []string
	// Len returns the number of live sessions.
	Len() int
	// Node returns this node's name (the route suffix).
	Node() string
}

// Errors returned by replicas and stores.
var (
	ErrTooLarge  = errors.New("replicator: session too large")
	ErrDestroyed = errors.New("replicator: session destroyed")
	ErrCorrupt   = errors.New("replicator: corrupt data")
	ErrClosed    = errors.New("replicator: closed")
	// ErrNotReplicated: a Sync (SyncAll) commit that no peer (not every
	// live peer) acknowledged in time, or that was refused because no
	// peer could acknowledge it. The change may be applied locally; a
	// client should treat the request as failed and retry it, on another
	// node if it can.
	ErrNotReplicated = errors.New("replicator: commit not replicated")
	// ErrNotReady: the store cannot tell whether a session exists yet,
	// as a cluster node that is still joining (before it received the
	// cluster's sessions by state transfer). The request should be
	// retried, on another node if it can: answering it with a new,
	// empty session would replace the user's.
	ErrNotReady = errors.New("replicator: node not ready: it does not hold the cluster's sessions yet")
)

// ShortHash returns a short, stable, non-reversible label for a session
// ID, for logs, metrics and admin listings: the first 12 hex digits of its
// SHA-256. Raw IDs are credentials and are never logged.
// httpsession.ShortHash labels a token (ID and route) the same way.
func ShortHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// RangeLive calls fn with the ID of every live session until fn returns
// false.
func (r *Replica) RangeLive(fn func(id string) bool) {
	r.Range(func(s *Session) bool {
		if s.Destroyed {
			return true
		}
		return fn(s.ID)
	})
}
