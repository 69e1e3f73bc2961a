package httpsession

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Status is the state of a request's session.
type Status int

const (
	// Unmodified: nothing changed in this request.
	Unmodified Status = iota
	// Modified: the session changed and will be (or was) committed.
	Modified
	// Destroyed: the session was destroyed in this request.
	Destroyed
)

func (s Status) String() string {
	switch s {
	case Unmodified:
		return "unmodified"
	case Modified:
		return "modified"
	case Destroyed:
		return "destroyed"
	}
	return "unknown"
}

// reservedPrefix starts the names of attributes the package keeps for
// itself; Keys, Clear and Iterate skip them and Put refuses them.
const reservedPrefix = "\x00hanode."

const rememberKey = reservedPrefix + "remember"

// Session is the session of one request. Get it from the request context
// with FromContext, or use the Manager's methods that take a context. Its
// methods are safe for concurrent use by goroutines of the request.
//
// Changes are committed before the response starts. After that, every
// change returns ErrResponseStarted and is counted in Stats.LateWrites.
type Session struct {
	m   *Manager
	w   *responseWriter // nil in Iterate
	ctx context.Context
	mu  sync.Mutex

	id          string // current ID; "" while a new session has none yet
	stored      bool   // the session exists in the store under storedID
	storedID    string
	snap        *replicator.Session // as loaded; nil for a new session
	epoch       uint32
	created     int64
	deadline    int64
	idle        int64
	principal   string
	entries     entrySet
	consistency replicator.Consistency

	principalDirty bool
	metaDirty      bool
	takeover       bool // commit with OpTakeover (the snapshot's owner is another node)
	reissue        bool // rewrite the cookie: its route is not this node
	cookieDirty    bool // the token or the cookie's expiry changed
	clearCookie    bool // delete the client's cookie
	fromHeader     bool // the token came in the API header
	capChecked     bool // MaxActive checked for this new session
	touched        bool
	started        bool // the response started: no more changes
	status         Status
	destroyOld     *replicator.Session // destroyed in this request, invalidate at commit
	renameFrom     string              // stored ID to rename from at commit
	displace       []string            // sessions to displace after commit
	merged         []string            // sessions merged in (MergeSession), destroyed after commit

	committed bool
	lastRes   replicator.CommitResult
	lastErr   error
	loadErr   error // the store could not be read at load (LoadStore)
	// handedErr is the commit error Flush returned to the handler, until
	// the next change: the handler answers for it, not ErrorFunc.
	handedErr error
	// fence: the token's route names a node other than this one and the
	// session's owner here; commit with the epoch raised by two (see
	// Manager.load).
	fence bool

	// dbuf and obuf hold the first commit's delta and ops: two
	// allocations fewer per request. The store keeps a committed delta
	// (queued for replication), so later commits of the request allocate
	// their own.
	dbuf    replicator.Delta
	obuf    [2]replicator.Op
	bufUsed bool
}

// loadAttrs checks every attribute of snap. Checking at load means a
// record written by an incompatible version is detected before the handler
// runs, so the session can be dropped instead of failing halfway. Values
// of the types the package encodes itself are checked without being
// decoded (a getter decodes them on first use, and the typed getters such
// as GetInt without boxing them in an interface); values of the Codec are
// decoded now, as checking them means decoding them.
func (s *Session) loadAttrs(snap *replicator.Session) error {
	if snap.Attrs.Len() == 0 {
		return nil
	}
	s.entries.grow(snap.Attrs.Len())
	for k, a := range snap.Attrs.All() {
		if a.Deleted {
			continue
		}
		e := entry{raw: a.Value, mutable: a.Value[0] == tagBytes || a.Value[0] == tagCodec}
		if checkValue(a.Value) {
			e.lazy = true
		} else {
			v, err := decodeValue(s.m.cfg.Codec, a.Value)
			if err != nil {
				return fmt.Errorf("attribute %q: %w", k, err)
			}
			e.val = v
		}
		s.entries.kv = append(s.entries.kv, keyedEntry{key: k, e: e}) // Attrs are sorted by key
	}
	return nil
}

// valLocked returns e's decoded value, decoding it now (in place) when it
// is lazy.
func (s *Session) valLocked(e *entry) any {
	if e.lazy {
		v, err := decodeValue(s.m.cfg.Codec, e.raw)
		if err != nil { // checkValue accepted it: cannot happen
			return nil
		}
		e.val, e.lazy = v, false
	}
	return e.val
}

// writable checks, with s.mu held, that a change is allowed now, and gives
// a new session its ID.
func (s *Session) writable() error {
	if s.started {
		s.m.stats.lateWrites.Add(1)
		s.m.cfg.Logger.Warn("httpsession: session change after the response started", "session", ShortHash(s.id))
		return ErrResponseStarted
	}
	if !s.stored {
		if !s.capChecked {
			if err := s.m.makeRoom(s.context(), s.id); err != nil {
				return err
			}
			s.capChecked = true
		}
		if s.id == "" {
			s.id = newID()
			s.cookieDirty = true
		}
	}
	s.handedErr = nil
	return nil
}

func (s *Session) context() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return context.Background()
}

// ErrTooLarge is returned by Put when the value, or the session with it,
// would exceed the store's limits (replicator.ReplicaConfig's
// MaxAttrBytes, default 256 KiB, and MaxSessionBytes, default 1 MiB); the
// message names the limit. It is replicator.ErrTooLarge itself, so
// errors.Is matches either name, including for a commit that the store
// refuses later (a session that grew on another node meanwhile).
var ErrTooLarge = replicator.ErrTooLarge

// Put stores v under key. v is encoded now: a value that cannot be encoded
// (ErrUnencodable, or the Codec's error) or that would not fit the store's
// limits (ErrTooLarge) is an error here, logged as a warning, and nothing
// is stored; never a silent loss or a failure at commit.
//
// A mutable value (a map, a slice, a pointer, a struct holding them) is
// encoded again at commit, so changes made to v after Put and before the
// response starts are stored too.
func (s *Session) Put(key string, v any) error {
	if strings.HasPrefix(key, reservedPrefix) {
		return fmt.Errorf("httpsession: key %q is reserved", key)
	}
	return s.put(key, v)
}

func (s *Session) put(key string, v any) error {
	raw, mutable, err := encodeValue(s.m.cfg.Codec, v)
	if err != nil {
		s.m.stats.encodeErrors.Add(1)
		err = fmt.Errorf("httpsession: put %q: %w", key, err)
		s.m.cfg.Logger.Warn("httpsession: value not stored", "session", s.Hash(), "key", key, "type", fmt.Sprintf("%T", v), "err", err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started { // a refused Put has no side effect (no ID minted, nobody evicted)
		if err := s.fitsLocked(key, raw); err != nil {
			err = fmt.Errorf("httpsession: put %q: %w", key, err)
			hash := ""
			if s.id != "" {
				hash = ShortHash(s.id)
			}
			s.m.cfg.Logger.Warn("httpsession: value not stored", "session", hash, "key", key, "err", err)
			return err
		}
	}
	if err := s.writable(); err != nil {
		return err
	}
	s.entries.set(key, entry{val: v, raw: raw, dirty: true, mutable: mutable})
	s.status = Modified
	return nil
}

// limiter is implemented by the stores whose limits Put checks in advance
// (replicator.Local and the cluster runtime).
type limiter interface {
	ReplicaConfig() replicator.ReplicaConfig
}

// fitsLocked returns ErrTooLarge, naming the limit, when storing raw under
// key would exceed the store's attribute or session size limit, counted
// as the replica counts them (keys, values and principal of the session
// as this request sees it).
func (s *Session) fitsLocked(key string, raw []byte) error {
	return s.fitManyLocked(1, func(i int) (string, []byte) { return key, raw })
}

// fitManyLocked is fitsLocked for n keys at once; at(i) returns the i-th
// key and encoding.
func (s *Session) fitManyLocked(n int, at func(i int) (string, []byte)) error {
	l, ok := s.m.store.(limiter)
	if !ok {
		return nil
	}
	cfg := l.ReplicaConfig()
	size := len(s.principal)
	for i := range n {
		key, raw := at(i)
		if cfg.MaxAttrBytes > 0 && len(raw) > cfg.MaxAttrBytes {
			return fmt.Errorf("%w: attribute %q is %d bytes encoded, limit %d (replicator.ReplicaConfig.MaxAttrBytes)", ErrTooLarge, key, len(raw), cfg.MaxAttrBytes)
		}
		size += len(key) + len(raw)
	}
	if cfg.MaxSessionBytes <= 0 {
		return nil
	}
	for _, x := range s.entries.kv {
		k, e := x.key, x.e
		if e.deleted {
			continue
		}
		replaced := false
		for i := 0; i < n && !replaced; i++ {
			key, _ := at(i)
			replaced = key == k
		}
		if !replaced {
			size += len(k) + len(e.raw)
		}
	}
	if size > cfg.MaxSessionBytes {
		return fmt.Errorf("%w: session would be %d bytes, limit %d (replicator.ReplicaConfig.MaxSessionBytes)", ErrTooLarge, size, cfg.MaxSessionBytes)
	}
	return nil
}

// Get returns the value stored under key, or nil.
//
// Changing a value in place (a map, a slice, a struct behind a pointer)
// after Get does not change the session: with the default Dirty policy,
// WrittenKeys, only keys written through the API are committed, so the
// change is lost when the request ends (scs users, beware: scs saves it
// if anything else in the session changed). Put the value back:
//
//	cart := sessions.Get(ctx, "cart").(map[string]int)
//	cart[item]++
//	err := sessions.Put(ctx, "cart", cart) // now it is committed and replicated
//
// or set Config.Dirty to DetectMutations, which re-encodes every mutable
// value read in the request at commit and stores those that changed.
// A value changed after its Put, before the response starts, is stored
// with the change (the commit encodes it again).
func (s *Session) Get(key string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getLocked(key)
}

func (s *Session) getLocked(key string) any {
	e := s.entries.ref(key)
	if e == nil || e.deleted {
		return nil
	}
	if e.mutable {
		e.read = true
	}
	return s.valLocked(e)
}

// Exists reports whether key holds a value.
func (s *Session) Exists(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries.ref(key)
	return e != nil && !e.deleted
}

// Keys returns the keys that hold a value, sorted.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, s.entries.len())
	for _, x := range s.entries.kv { // sorted by key
		if !x.e.deleted && !strings.HasPrefix(x.key, reservedPrefix) {
			keys = append(keys, x.key)
		}
	}
	return keys
}

// Remove deletes key. Removing an absent key is a no-op.
func (s *Session) Remove(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(key)
}

func (s *Session) removeLocked(key string) error {
	if e := s.entries.ref(key); e == nil || e.deleted {
		if s.started {
			return s.writable()
		}
		return nil
	}
	if err := s.writable(); err != nil {
		return err
	}
	s.entries.set(key, entry{deleted: true, dirty: true})
	s.status = Modified
	return nil
}

// Pop returns the value under key and removes it. When the removal cannot
// be committed (the response started) it returns the value and the error.
func (s *Session) Pop(key string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.getLocked(key)
	if v == nil {
		return nil, nil
	}
	return v, s.removeLocked(key)
}

// Clear removes every key. The session itself (its ID, principal and
// deadline) survives.
func (s *Session) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.entries.kv { // removeLocked replaces entries in place
		x := s.entries.kv[i]
		if x.e.deleted || strings.HasPrefix(x.key, reservedPrefix) {
			continue
		}
		if err := s.removeLocked(x.key); err != nil {
			return err
		}
	}
	return nil
}

// Destroy ends the session on every node and deletes the client's cookie.
// A later change in the same request starts a fresh session with a new ID.
func (s *Session) Destroy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return s.writable()
	}
	if s.stored && s.snap != nil && s.storedID == s.snap.ID {
		s.destroyOld = s.snap
		s.clearCookie = true
	} else if s.stored {
		// Created (or renamed) earlier in this request.
		if snap := s.m.store.Get(s.storedID); snap != nil {
			s.destroyOld = snap
		}
		s.clearCookie = true
	}
	s.id, s.stored, s.storedID, s.snap = "", false, "", nil
	s.epoch, s.created, s.deadline, s.idle = 0, 0, 0, 0
	s.principal = ""
	s.entries.reset()
	s.principalDirty, s.metaDirty, s.takeover, s.reissue, s.cookieDirty = false, false, false, false, false
	s.capChecked, s.touched = false, false
	s.renameFrom, s.displace, s.merged = "", nil, nil
	s.status = Destroyed
	return nil
}

// MergeSession copies the attributes of another session of the same
// client, named by its token (or bare ID), into this one, overwriting the
// keys both hold, and destroys the other session on every node once this
// request commits (not before: a failed commit loses nothing). Use it when
// a cookie was lost across an OAuth or similar redirect, as with scs's
// MergeSession; call Clear first to keep none of this session's values.
// The other session's later deadline carries over; its principal does not
// (call SetPrincipal). Merging this session itself, or a token the store
// does not know (or that expired), is a no-op that returns nil. The merged
// values are checked against the store's limits like Put (ErrTooLarge),
// and an undecodable one fails the merge, changing nothing.
func (s *Session) MergeSession(token string) error {
	id, _, ok := ParseID(token)
	if !ok {
		return nil
	}
	snap := s.m.store.Get(id)
	if snap == nil || snap.Destroyed || !sameID(snap.ID, id) || snap.Expired(s.m.now()) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return s.writable()
	}
	if (s.stored && sameID(s.storedID, id)) || (s.id != "" && sameID(s.id, id)) {
		return nil
	}
	in := make(map[string]entry, snap.Attrs.Len())
	var keys []string
	for k, a := range snap.Attrs.All() {
		if a.Deleted || strings.HasPrefix(k, reservedPrefix) {
			continue
		}
		v, err := decodeValue(s.m.cfg.Codec, a.Value)
		if err != nil {
			return fmt.Errorf("httpsession: merge session: attribute %q: %w", k, err)
		}
		in[k] = entry{val: v, raw: a.Value, dirty: true, mutable: a.Value[0] == tagBytes || a.Value[0] == tagCodec}
		keys = append(keys, k)
	}
	if err := s.fitManyLocked(len(keys), func(i int) (string, []byte) { return keys[i], in[keys[i]].raw }); err != nil {
		return fmt.Errorf("httpsession: merge session: %w", err)
	}
	if err := s.writable(); err != nil {
		return err
	}
	for k, e := range in {
		s.entries.set(k, e)
	}
	if s.deadline != 0 && snap.Deadline > s.deadline {
		s.deadline = snap.Deadline
		s.cookieDirty = true
	}
	s.metaDirty = true // commit even when the other session held no values
	s.merged = append(s.merged, id)
	s.status = Modified
	return nil
}

// RenewToken gives the session a new ID, keeping its data: call it on
// login and privilege changes (session fixation defence). The rename is
// replicated as one ordered operation; the old ID stops working everywhere.
func (s *Session) RenewToken() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if s.stored && s.renameFrom == "" {
		s.renameFrom = s.storedID
	}
	s.id = newID()
	s.cookieDirty = true
	s.status = Modified
	return nil
}

// SetPrincipal records the user the session belongs to, in the replicated
// principal index. An empty principal clears it. Under the RefuseNewer
// policy it fails with ErrDuplicateLogin when the principal has another
// live session; under InvalidateOlder the other sessions are destroyed
// (reason displaced) once this request commits.
func (s *Session) SetPrincipal(principal string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if principal != "" && principal != s.principal {
		var others []string
		for _, id := range s.m.store.SessionsOf(principal) {
			if id != s.storedID && id != s.id {
				if o := s.m.store.Get(id); o != nil && !o.Destroyed {
					others = append(others, id)
				}
			}
		}
		switch s.m.cfg.DuplicateLogin {
		case RefuseNewer:
			if len(others) > 0 {
				s.m.stats.refused.Add(1)
				return ErrDuplicateLogin
			}
		case InvalidateOlder:
			s.displace = append(s.displace, others...)
		}
	}
	s.principal = principal
	s.principalDirty = true
	s.status = Modified
	return nil
}

// Principal returns the session's principal ("" when none).
func (s *Session) Principal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.principal
}

// RememberMe makes the cookie persistent (true) or a browser-session
// cookie (false) for this session. It matters when
// CookieConfig.BrowserSession is set; otherwise cookies persist anyway.
func (s *Session) RememberMe(remember bool) error {
	if err := s.put(rememberKey, remember); err != nil {
		return err
	}
	s.mu.Lock()
	s.cookieDirty = true
	s.mu.Unlock()
	return nil
}

// Deadline returns the absolute end of the session's lifetime.
func (s *Session) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deadline == 0 {
		return s.m.cfg.Clock().Add(s.m.cfg.Lifetime)
	}
	return time.Unix(0, s.deadline)
}

// SetDeadline moves the absolute end of the session's lifetime.
func (s *Session) SetDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if s.created == 0 {
		s.created = s.m.now()
	}
	s.deadline = t.UnixNano()
	s.metaDirty = true
	s.cookieDirty = true
	s.status = Modified
	return nil
}

// Token returns the session's token ("<id>.<route>") as the client will
// see it, or "" for a new session that has not been given an ID. Treat it
// as a secret.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == "" {
		return ""
	}
	return formatToken(s.id, s.m.node)
}

// Hash returns ShortHash of the session's ID, for logs.
func (s *Session) Hash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == "" {
		return ""
	}
	return ShortHash(s.id)
}

// Status returns the session's state in this request.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// IsNew reports whether the session did not exist in the store when the
// request arrived (or was destroyed in it).
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap == nil
}

// SetConsistency overrides the consistency of this request's commits.
func (s *Session) SetConsistency(c replicator.Consistency) {
	s.mu.Lock()
	s.consistency = c
	s.mu.Unlock()
}

// LastCommit returns the result of the request's last commit; ok is false
// before the first commit and when it failed (Flush returns the error).
// res.Replicated says whether the requested consistency was met.
func (s *Session) LastCommit() (res replicator.CommitResult, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRes, s.committed && s.lastErr == nil
}

// Flush commits the changes made so far, before the response starts (use
// it before streaming, or to learn whether a login was replicated). The
// session stays writable until the response starts; later changes are
// committed again then. After the response started it returns the last
// commit's result.
//
// When the commit fails, the handler answers: LoadAndSave does not call
// Config.ErrorFunc for this error once the handler writes its response,
// nor commit the same changes again (a change made after the failed Flush
// is committed when the response starts, as usual). ErrorStatus gives the
// status code to answer with; replicator.ErrNotReplicated means 503, the
// outcome is indeterminate and the client may retry on another node. A
// handler that returns without writing anything after a failed Flush is
// answered by ErrorFunc.
func (s *Session) Flush() (replicator.CommitResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return s.lastRes, s.lastErr
	}
	res, err := s.commitLocked()
	s.handedErr = err
	if err != nil {
		s.m.cfg.Logger.Warn("httpsession: commit failed", "session", ShortHash(s.id), "err", err)
	}
	if s.w != nil && rebindOnError(err) {
		s.writeCookieLocked(s.w.rw.Header())
	}
	return res, err
}

// commitLocked turns the pending changes into deltas and commits them.
func (s *Session) commitLocked() (replicator.CommitResult, error) {
	m := s.m
	ctx := s.context()
	var res replicator.CommitResult
	if s.loadErr != nil {
		return s.done(res, s.loadErr)
	}
	if s.destroyOld != nil {
		if err := m.destroyID(ctx, s.destroyOld, replicator.ReasonInvalidated); err != nil {
			return s.done(res, err)
		}
		s.destroyOld = nil
	}
	if s.id == "" {
		return res, nil
	}
	now := m.now()
	ops, err := s.collectOps()
	if err != nil {
		return s.done(res, err)
	}
	// A request that changed nothing of the stored session only touches it,
	// or commits just its takeover.
	unchanged := s.stored && len(ops) == 0 && !s.metaDirty && s.renameFrom == ""
	if unchanged && !s.takeover {
		if !s.touched {
			m.store.Touch(s.storedID, now)
			m.stats.touches.Add(1)
			s.touched = true
		}
		return res, nil
	}
	if !s.stored {
		if len(ops) == 0 && !s.metaDirty {
			return res, nil // nothing worth storing: no session, no cookie
		}
		if s.created == 0 {
			s.created = now
		}
		if s.deadline == 0 && m.cfg.Lifetime > 0 {
			s.deadline = s.created + int64(m.cfg.Lifetime)
		}
		s.idle = m.idle
		s.epoch = 1
	}
	var d *replicator.Delta
	if !s.bufUsed {
		d, s.bufUsed = &s.dbuf, true
	} else {
		d = new(replicator.Delta)
	}
	*d = replicator.Delta{
		ID: s.id, Owner: m.node, Epoch: s.epoch,
		Created: s.created, LastAccess: now, IdleTimeout: s.idle, Deadline: s.deadline,
	}
	d.Ops = ops
	if s.takeover {
		d.Takeover()
	}
	if s.fence {
		d.Epoch = s.epoch + 2
	}
	if s.renameFrom != "" {
		d.RenameFrom(s.renameFrom)
	}
	c := s.consistency
	if unchanged {
		// Only the takeover of a request that read the session: no change
		// of the user's to make durable, so no acknowledgement to wait
		// for. A lone Sync survivor serves the sessions of a dead node to
		// readers; a later write takes it over again if this one is lost,
		// and fences above it when it names this node.
		c = replicator.Async
	}
	res, err = m.store.Commit(ctx, d, c)
	if err != nil {
		return s.done(res, err)
	}
	m.stats.commits.Add(1)
	s.entries.committed()
	s.principalDirty = false
	s.metaDirty = false
	s.touched = true
	hash := func() string { return ShortHash(s.id) } // only when an event needs it: a SHA-256 and an allocation
	if !s.stored {
		m.stats.created.Add(1)
		m.track(s.id)
		s.cookieDirty = true
		m.emit(Event{Kind: EventCreated, Session: hash(), Principal: s.principal})
	}
	if s.fence {
		s.fence = false
		s.epoch = d.Epoch
	}
	if s.takeover {
		s.takeover = false
		s.epoch = d.Epoch
		m.stats.takeovers.Add(1)
		m.track(s.id)
		from := ""
		if s.snap != nil {
			from = s.snap.Owner
		}
		m.emit(Event{Kind: EventTakenOver, Session: hash(), Principal: s.principal, From: from})
	}
	if s.renameFrom != "" {
		s.renameFrom = ""
		m.stats.renewed.Add(1)
		m.track(s.id)
		m.emit(Event{Kind: EventRenewed, Session: hash(), Principal: s.principal})
	}
	s.stored = true
	s.storedID = s.id
	for _, id := range s.displace {
		if o := m.store.Get(id); o != nil && !o.Destroyed {
			if err := m.destroyID(ctx, o, replicator.ReasonDisplaced); err != nil {
				m.cfg.Logger.Warn("httpsession: cannot displace session", "session", ShortHash(id), "err", err)
			}
		}
	}
	s.displace = nil
	for _, id := range s.merged {
		if o := m.store.Get(id); o != nil && !o.Destroyed {
			if err := m.destroyID(ctx, o, replicator.ReasonInvalidated); err != nil {
				m.cfg.Logger.Warn("httpsession: cannot destroy merged session", "session", ShortHash(id), "err", err)
			}
		}
	}
	s.merged = nil
	return s.done(res, nil)
}

func (s *Session) done(res replicator.CommitResult, err error) (replicator.CommitResult, error) {
	if err != nil {
		s.m.stats.commitErrors.Add(1)
	}
	s.committed, s.lastRes, s.lastErr = true, res, err
	if s.m.cfg.OnCommit != nil && s.w != nil {
		s.m.cfg.OnCommit(s.w.r, res, err)
	}
	return res, err
}

// collectOps builds the set/delete operations of the dirty attributes.
func (s *Session) collectOps() ([]replicator.Op, error) {
	var ops []replicator.Op
	if !s.bufUsed {
		ops = s.obuf[:0] // see dbuf
	}
	detect := s.m.cfg.Dirty == DetectMutations
	for i := range s.entries.kv {
		k, e := s.entries.kv[i].key, s.entries.kv[i].e
		switch {
		case e.dirty && e.deleted:
			ops = append(ops, replicator.Op{Kind: replicator.OpDel, Key: k})
		case e.dirty:
			if e.mutable {
				raw, _, err := encodeValue(s.m.cfg.Codec, e.val)
				if err != nil {
					s.m.stats.encodeErrors.Add(1)
					return nil, fmt.Errorf("httpsession: encode %q: %w", k, err)
				}
				e.raw = raw
				s.entries.kv[i].e = e
			}
			ops = append(ops, replicator.Op{Kind: replicator.OpSet, Key: k, Value: e.raw})
		case detect && e.read && e.mutable && !e.deleted:
			raw, _, err := encodeValue(s.m.cfg.Codec, e.val)
			if err != nil {
				s.m.stats.encodeErrors.Add(1)
				return nil, fmt.Errorf("httpsession: encode %q: %w", k, err)
			}
			if !bytes.Equal(raw, e.raw) {
				e.raw, e.dirty = raw, true
				s.entries.kv[i].e = e
				ops = append(ops, replicator.Op{Kind: replicator.OpSet, Key: k, Value: raw})
			}
		}
	}
	if s.principalDirty {
		ops = append(ops, replicator.Op{Kind: replicator.OpPrincipal, Value: []byte(s.principal)})
	}
	return ops, nil
}

// writeCookieLocked sets the token on the response (cookie or header) when
// it changed, and deletes the cookie of a destroyed session.
func (s *Session) writeCookieLocked(h http.Header) {
	cc := &s.m.cfg.Cookie
	var value string
	var expires time.Time
	maxAge := 0
	switch {
	case s.stored && (s.cookieDirty || s.reissue):
		value = formatToken(s.id, s.m.node)
		persist := !cc.BrowserSession
		if e := s.entries.ref(rememberKey); e != nil && !e.deleted {
			persist, _ = s.valLocked(e).(bool)
		}
		if persist && s.deadline != 0 {
			expires = time.Unix(0, s.deadline).UTC()
		}
	case s.clearCookie && !s.stored:
		expires = time.Unix(1, 0).UTC()
		maxAge = -1
	default:
		return
	}
	s.cookieDirty, s.reissue, s.clearCookie = false, false, false
	if s.fromHeader {
		h.Set(s.m.cfg.HeaderName, value)
		return
	}
	c := http.Cookie{
		Name: cc.Name, Value: value, Path: cc.Path, Domain: cc.Domain,
		Expires: expires, MaxAge: maxAge, Secure: cc.Secure, HttpOnly: !cc.AllowScript,
		SameSite: cc.SameSite, Partitioned: cc.Partitioned,
	}
	prefix := cc.Name + "="
	lines := h["Set-Cookie"]
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	h["Set-Cookie"] = append(lines, c.String())
	if !slices.ContainsFunc(h.Values("Vary"), func(v string) bool { return strings.Contains(v, "Cookie") }) {
		h.Add("Vary", "Cookie")
	}
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", `no-cache="Set-Cookie"`)
	}
}
