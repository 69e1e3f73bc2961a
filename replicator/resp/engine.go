package resp

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Store is what the engine needs of the replicated store: the interface
// httpsession uses plus Range for SCAN, KEYS and DBSIZE.
// replicator.Local (HA off) and cluster.Node (HA on) implement it.
type Store interface {
	replicator.Store
	// Range calls fn with the ID of every live record until fn returns
	// false.
	Range(fn func(id string) bool)
}

// Config configures an Engine and its Server. Zero values take the
// defaults named in each field's comment.
type Config struct {
	// Consistency of every write: replicator.Async (default) replies once
	// the write is applied locally and queued; Sync replies +OK only
	// after a peer acknowledged it, an error otherwise.
	Consistency replicator.Consistency
	// Password, when not empty, must be given with AUTH (or HELLO ...
	// AUTH) before any other command. Default: none.
	Password string
	// MaxValueBytes bounds one string value or hash field value. Default
	// 256 KiB (the replica's default attribute limit); set it to the
	// replica's MaxAttrBytes.
	MaxValueBytes int
	// CommitTimeout bounds one commit, a sync wait included. Default 5 s.
	CommitTimeout time.Duration
	// ReclaimAfter is how long the empty record of a deleted key stays in
	// the replica before it is reclaimed: deleted fields are tombstones
	// that must reach every node before the record goes. Default 2 min.
	ReclaimAfter time.Duration
	// Limits bound requests (see Limits for the defaults).
	Limits Limits
	// MaxConns bounds concurrent connections; more are refused with an
	// error reply. Default 1000.
	MaxConns int
	// IdleTimeout closes a connection that sent nothing for this long.
	// Default 10 minutes.
	IdleTimeout time.Duration
	// Logger receives connection errors. Default: slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now (tests replace it).
	Now func() time.Time
	// Ready reports whether the store holds the data it serves: false
	// while a cluster node is still joining (before its first state
	// transfer), when a key it was not sent yet cannot be told from one
	// that does not exist. Until Ready first returns true, commands that
	// read or write keys are answered "-LOADING ..." (Redis's reply while
	// it loads its dataset; clients retry it) and connection commands
	// (PING, AUTH, HELLO, SELECT, CLIENT, INFO, COMMAND, QUIT, MULTI ...)
	// are served; once true, it is not asked again. Default: nil, always
	// ready (cluster.Node.Loaded fits).
	Ready func() bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxValueBytes: 256 << 10,
		CommitTimeout: 5 * time.Second,
		ReclaimAfter:  2 * time.Minute,
		Limits:        Limits{}.withDefaults(),
		MaxConns:      1000,
		IdleTimeout:   10 * time.Minute,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxValueBytes < 0 || c.CommitTimeout < 0 || c.ReclaimAfter < 0 || c.MaxConns < 0 || c.IdleTimeout < 0 {
		return errors.New("resp: negative limit in Config")
	}
	if c.Consistency > replicator.SyncAll {
		return errors.New("resp: unknown consistency")
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxValueBytes > 0 {
		d.MaxValueBytes = c.MaxValueBytes
	}
	if c.CommitTimeout > 0 {
		d.CommitTimeout = c.CommitTimeout
	}
	if c.ReclaimAfter > 0 {
		d.ReclaimAfter = c.ReclaimAfter
	}
	if c.MaxConns > 0 {
		d.MaxConns = c.MaxConns
	}
	if c.IdleTimeout > 0 {
		d.IdleTimeout = c.IdleTimeout
	}
	d.Limits = c.Limits.withDefaults()
	d.Consistency, d.Password, d.Logger, d.Now, d.Ready = c.Consistency, c.Password, c.Logger, c.Now, c.Ready
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Engine executes commands against a Store. It holds no connection: a
// Client carries each connection's state. Safe for concurrent use; the
// commands of one key are serialised on this node (a read-modify-write
// such as HINCRBY is atomic here), writes from different nodes to one key
// resolve per field, last writer wins.
type Engine struct {
	cfg   Config
	store Store
	seed  maphash.Seed
	locks [256]sync.Mutex
	ids   atomic.Int64
	stats stats
	// loaded latches Config.Ready: true once it returned true.
	loaded atomic.Bool
}

// NewEngine returns an engine over store.
func NewEngine(store Store, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg.withDefaults(), store: store, seed: maphash.MakeSeed()}
	e.stats.init()
	e.loaded.Store(e.cfg.Ready == nil)
	return e, nil
}

// Loading reports whether the engine refuses key commands with LOADING:
// Config.Ready has not returned true yet.
func (e *Engine) Loading() bool {
	if e.loaded.Load() {
		return false
	}
	if e.cfg.Ready() {
		e.loaded.Store(true)
		return false
	}
	return true
}

// Client is the state of one connection. Not safe for concurrent use:
// one goroutine serves a connection.
type Client struct {
	ID      int64  // CLIENT ID: unique per engine
	Name    string // CLIENT SETNAME
	Addr    string // the remote address (CLIENT LIST)
	authed  bool
	resp3   bool
	multi   bool
	queue   [][][]byte
	queueOK bool   // no error while queueing
	queued  int    // bytes of the queued arguments
	LibName string // CLIENT SETINFO lib-name
	LibVer  string // CLIENT SETINFO lib-ver
}

// NewClient returns the state of a new connection from addr.
func (e *Engine) NewClient(addr string) *Client {
	return &Client{ID: e.ids.Add(1), Addr: addr, authed: e.cfg.Password == "", queueOK: true}
}

// RESP3 reports whether the client switched to RESP3 (HELLO 3).
func (c *Client) RESP3() bool { return c.resp3 }

// recordID maps a key to its record ID in the replica.
func recordID(key string) string { return replicator.KeyPrefix + key }

// Attribute names inside a key record: a string's value, or a hash's
// fields with a prefix.
const (
	attrString = "s"
	hashPrefix = "h"
)

// entry is one key as a command (or a transaction) sees it: the record
// read at the start, and the changes made since, not yet committed.
type entry struct {
	key      string
	phys     *replicator.Session // the record in the replica (maybe past its TTL or empty); nil when absent
	over     map[string][]byte   // changed attributes; a nil value is a deletion
	cleared  bool                // every attribute of phys is gone
	deadline int64               // unix nanoseconds; 0 none
	dirty    bool
}

// get returns attribute a, or nil and false.
func (en *entry) get(a string) ([]byte, bool) {
	if v, ok := en.over[a]; ok {
		return v, v != nil
	}
	if en.cleared || en.phys == nil {
		return nil, false
	}
	at, ok := en.phys.Attrs.Get(a)
	if !ok || at.Deleted {
		return nil, false
	}
	return at.Value, true
}

// each calls fn for every live attribute (order unspecified).
func (en *entry) each(fn func(a string, v []byte)) {
	if !en.cleared && en.phys != nil {
		for a, at := range en.phys.Attrs.All() {
			if at.Deleted {
				continue
			}
			if _, ok := en.over[a]; ok {
				continue
			}
			fn(a, at.Value)
		}
	}
	for a, v := range en.over {
		if v != nil {
			fn(a, v)
		}
	}
}

type kind uint8

const (
	kindNone kind = iota
	kindString
	kindHash
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindHash:
		return "hash"
	}
	return "none"
}

// kind returns the type of the key: a string when it has a value, a hash
// when it has fields, none otherwise.
func (en *entry) kind() kind {
	if _, ok := en.get(attrString); ok {
		return kindString
	}
	for a, v := range en.over {
		if v != nil && len(a) > 0 && a[0] == hashPrefix[0] {
			return kindHash
		}
	}
	if en.cleared || en.phys == nil {
		return kindNone
	}
	for a, at := range en.phys.Attrs.All() {
		if at.Deleted || len(a) == 0 || a[0] != hashPrefix[0] {
			continue
		}
		if v, ok := en.over[a]; ok && v == nil {
			continue // deleted by this command
		}
		return kindHash
	}
	return kindNone
}

func (en *entry) set(a string, v []byte) {
	if en.over == nil {
		en.over = map[string][]byte{}
	}
	if v == nil {
		v = []byte{}
	}
	en.over[a] = v
	en.dirty = true
}

func (en *entry) del(a string) {
	if _, ok := en.get(a); !ok {
		return
	}
	if en.over == nil {
		en.over = map[string][]byte{}
	}
	en.over[a] = nil
	en.dirty = true
}

// clear deletes the key.
func (en *entry) clear() {
	en.cleared, en.over, en.deadline, en.dirty = true, nil, 0, true
}

func (en *entry) setDeadline(d int64) {
	if d != en.deadline {
		en.deadline, en.dirty = d, true
	}
}

// tx is the unit of commit: one command, or a MULTI/EXEC transaction. It
// reads each key once, applies changes to its entries and commits one
// delta per changed key at the end.
type tx struct {
	e       *Engine
	now     time.Time
	nowNs   int64
	entries map[string]*entry
	order   []*entry
}

func (e *Engine) newTx() *tx {
	now := e.cfg.Now()
	return &tx{e: e, now: now, nowNs: now.UnixNano()}
}

// key returns the entry of key, reading the record on first use. A
// record past its TTL reads as absent.
func (t *tx) key(key []byte) *entry {
	k := string(key)
	if en, ok := t.entries[k]; ok {
		return en
	}
	en := &entry{key: k, phys: t.e.store.Get(recordID(k))}
	if en.phys != nil {
		if en.phys.Deadline > 0 && en.phys.Deadline <= t.nowNs {
			en.cleared = true
		} else {
			en.deadline = en.phys.Deadline
		}
	}
	if t.entries == nil {
		t.entries = map[string]*entry{}
	}
	t.entries[k] = en
	t.order = append(t.order, en)
	return en
}

// commit writes every changed entry: one delta per key.
func (t *tx) commit() error {
	var errs []error
	for _, en := range t.order {
		if !en.dirty {
			continue
		}
		d := t.delta(en)
		if d == nil {
			continue
		}
		res, err := t.e.commitOne(d)
		switch {
		case err != nil:
			errs = append(errs, err)
		case res.TimedOut:
			errs = append(errs, replicator.ErrNotReplicated)
		}
	}
	if len(errs) > 0 {
		t.e.stats.commitErrors.Add(1)
	}
	return errors.Join(errs...)
}

// commitOne commits one delta, bounded by CommitTimeout.
func (e *Engine) commitOne(d *replicator.Delta) (replicator.CommitResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CommitTimeout)
	defer cancel()
	return e.store.Commit(ctx, d, e.cfg.Consistency)
}

// delta builds the delta that turns en.phys into en's state, or nil when
// nothing changes.
func (t *tx) delta(en *entry) *replicator.Delta {
	var ops []replicator.Op
	if en.cleared && en.phys != nil {
		for a, at := range en.phys.Attrs.All() {
			if _, ok := en.over[a]; !at.Deleted && !ok {
				ops = append(ops, replicator.Op{Kind: replicator.OpDel, Key: a})
			}
		}
	}
	for a, v := range en.over {
		if v != nil {
			ops = append(ops, replicator.Op{Kind: replicator.OpSet, Key: a, Value: v})
			continue
		}
		if en.phys != nil {
			if at, ok := en.phys.Attrs.Get(a); ok && !at.Deleted {
				ops = append(ops, replicator.Op{Kind: replicator.OpDel, Key: a})
			}
		}
	}
	exists := en.kind() != kindNone
	deadline := en.deadline
	if !exists {
		if en.phys == nil {
			return nil // nothing was there, nothing is
		}
		// The empty record stays until every node has the deletions.
		deadline = t.nowNs + int64(t.e.cfg.ReclaimAfter)
		if en.phys.Deadline > 0 && en.phys.Deadline < deadline && len(ops) == 0 {
			return nil // expired already; the replica reclaims it
		}
	}
	if len(ops) == 0 && en.phys != nil && deadline == en.phys.Deadline {
		return nil
	}
	if len(ops) > 1 {
		slices.SortFunc(ops, func(a, b replicator.Op) int { return strings.Compare(a.Key, b.Key) }) // deterministic deltas
	}
	d := &replicator.Delta{
		ID:         recordID(en.key),
		Owner:      t.e.store.Node(),
		Created:    t.nowNs,
		LastAccess: t.nowNs,
		Deadline:   deadline,
		Ops:        ops,
	}
	if en.phys != nil {
		d.Epoch = en.phys.Epoch
		d.Created = en.phys.Created
	}
	return d
}

// lock locks the stripes of keys (sorted, each once) and returns the
// unlock function.
func (e *Engine) lock(keys [][]byte) func() {
	if len(keys) == 0 {
		return func() {}
	}
	if len(keys) == 1 {
		m := &e.locks[maphash.Bytes(e.seed, keys[0])%uint64(len(e.locks))]
		m.Lock()
		return m.Unlock
	}
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.Bytes(e.seed, k)%uint64(len(e.locks))))
	}
	sort.Ints(idx)
	n := 0
	for i, x := range idx {
		if i == 0 || x != idx[n-1] {
			idx[n] = x
			n++
		}
	}
	idx = idx[:n]
	for _, x := range idx {
		e.locks[x].Lock()
	}
	return func() {
		for i := len(idx) - 1; i >= 0; i-- {
			e.locks[idx[i]].Unlock()
		}
	}
}

// errReply formats a commit error for the client.
func errReply(err error) string {
	switch {
	case errors.Is(err, replicator.ErrNotReplicated):
		// The store may have applied it here (a sync wait that ran out)
		// or refused it (no peer to acknowledge it): retry it.
		return "ERR not replicated: no peer acknowledged the write in time; retry it"
	case errors.Is(err, replicator.ErrTooLarge):
		return "ERR value too large: " + err.Error()
	}
	return fmt.Sprintf("ERR write failed: %v", err)
}
