package httpsession

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Manager loads, tracks and commits sessions for HTTP requests. Create one
// per application with New; all its methods are safe for concurrent use.
type Manager struct {
	store replicator.Store
	cfg   Config
	node  string
	idle  int64 // nanoseconds, 0 = none
	stats counters

	evictMu sync.Mutex
	fifo    []string // IDs in creation/takeover order, for MaxActiveEvictOldest
}

// New returns a Manager over store. The node name (store.Node()) becomes the
// route suffix of every token this Manager issues, so it must consist of 1
// to 64 characters of [A-Za-z0-9_-].
func New(store replicator.Store, cfg Config) (*Manager, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	node := store.Node()
	if !validRoute(node) {
		return nil, fmt.Errorf("%w: node name %q cannot be a route suffix (1-64 of [A-Za-z0-9_-])", ErrConfig, node)
	}
	m := &Manager{store: store, cfg: cfg, node: node}
	if cfg.IdleTimeout > 0 {
		m.idle = int64(cfg.IdleTimeout)
	}
	if es, ok := store.(EventStore); ok {
		es.Subscribe(m.storeEvent)
	}
	return m, nil
}

// Store returns the store the Manager commits to.
func (m *Manager) Store() replicator.Store { return m.store }

type ctxKey struct{}

type consistencyKey struct{}

// ConsistencyContext returns a context whose session commits use c instead
// of Config.Consistency. Apply it to the request before LoadAndSave (in an
// outer middleware), or call SetConsistency inside the handler.
func ConsistencyContext(ctx context.Context, c replicator.Consistency) context.Context {
	return context.WithValue(ctx, consistencyKey{}, c)
}

// FromContext returns the session LoadAndSave attached to ctx. It never
// panics: ok is false when ctx has no session.
func FromContext(ctx context.Context) (s *Session, ok bool) {
	if ctx == nil {
		return nil, false
	}
	s, ok = ctx.Value(ctxKey{}).(*Session)
	return s, ok && s != nil
}

// requestState holds everything one request needs, allocated at once:
// it is also the request's context (its parent's, plus the session under
// ctxKey) and holds the request the handler gets, so that attaching the
// session costs no allocation of its own.
type requestState struct {
	sess   Session
	w      responseWriter
	parent context.Context
	req    http.Request
}

func (st *requestState) Deadline() (time.Time, bool) { return st.parent.Deadline() }
func (st *requestState) Done() <-chan struct{}       { return st.parent.Done() }
func (st *requestState) Err() error                  { return st.parent.Err() }

// Value returns the session for ctxKey and asks the parent otherwise.
func (st *requestState) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return &st.sess
	}
	return st.parent.Value(key)
}

func (st *requestState) String() string {
	return fmt.Sprint(st.parent) + ".WithValue(httpsession.ctxKey)"
}

// LoadAndSave is the middleware: it loads the request's session (or
// prepares a new one), attaches it to the request context, and commits
// the changes before the first byte of the response (or when next
// returns, if it writes nothing). It never buffers the body.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &requestState{parent: r.Context()}
		s := &st.sess
		m.load(s, r)
		st.w = responseWriter{rw: w, s: s, r: r}
		s.w = &st.w
		// The copy WithContext makes stays on the stack (it is inlined);
		// st keeps the request.
		st.req = *r.WithContext(st)
		next.ServeHTTP(&st.w, &st.req)
		st.w.finish()
	})
}

// token extracts the client's token from the configured header or the
// cookie, without allocating.
func (m *Manager) token(r *http.Request) (tok string, fromHeader bool) {
	if m.cfg.HeaderName != "" {
		if v := r.Header.Get(m.cfg.HeaderName); v != "" {
			return v, true
		}
	}
	return readCookie(r.Header["Cookie"], m.cfg.Cookie.Name), false
}

// readCookie returns the value of the first cookie called name, like
// (*http.Request).Cookie but without allocating.
func readCookie(lines []string, name string) string {
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

func (m *Manager) now() int64 { return m.cfg.Clock().UnixNano() }

// load fills s for request r.
func (m *Manager) load(s *Session, r *http.Request) {
	tok, fromHeader := m.token(r)
	s.fromHeader = fromHeader
	m.loadToken(s, r.Context(), tok)
}

// loadToken fills s with the session of token tok, for a request's ctx.
func (m *Manager) loadToken(s *Session, ctx context.Context, tok string) {
	s.m = m
	s.ctx = ctx
	s.consistency = m.cfg.Consistency
	if c, ok := ctx.Value(consistencyKey{}).(replicator.Consistency); ok {
		s.consistency = c
	}
	id, route, ok := ParseID(tok)
	if !ok {
		return
	}
	snap, err := m.loadSnapshot(ctx, id) // loadstore.go
	if err != nil {
		s.loadErr = err // the store could not be read: the commit fails with it
		return
	}
	if snap == nil || snap.Destroyed || !sameID(snap.ID, id) {
		return
	}
	now := m.now()
	if snap.Expired(now) {
		m.destroyID(ctx, snap, replicator.ReasonExpired)
		return
	}
	if err := s.loadAttrs(snap); err != nil {
		m.stats.undecodable.Add(1)
		m.cfg.Logger.Warn("httpsession: dropping session with undecodable value",
			"session", ShortHash(id), "err", err)
		m.destroyID(ctx, snap, replicator.ReasonInvalidated)
		s.entries.reset()
		return
	}
	s.snap = snap
	s.id = id
	s.stored = true
	s.storedID = id
	s.epoch = snap.Epoch
	s.created = snap.Created
	s.deadline = snap.Deadline
	s.idle = snap.IdleTimeout
	s.principal = snap.Principal
	if snap.Owner != m.node {
		s.takeover = true
	}
	if route != m.node {
		s.reissue = true
		// The token names a third node: it answered this client last
		// and may hold a change of this session that never reached this
		// node, such as a takeover whose sync commit failed there (the
		// client got a 503 and retries here). Commit two epochs above
		// the session's so that this retry wins over it whenever it
		// surfaces.
		if route != "" && route != snap.Owner {
			s.fence = true
		}
	}
}

// destroyID commits an invalidation of snap's session with reason and
// reports it. The reason travels in the op's value (one byte).
func (m *Manager) destroyID(ctx context.Context, snap *replicator.Session, reason replicator.DestroyReason) error {
	now := m.now()
	d := replicator.InvalidateDelta(snap, m.node, now, reason)
	if snap.Owner != m.node {
		d.Epoch++
	}
	if _, err := m.store.Commit(context.WithoutCancel(ctx), d, replicator.Async); err != nil {
		m.stats.commitErrors.Add(1)
		return err
	}
	m.stats.commits.Add(1)
	m.countDestroyed(reason)
	m.emit(Event{Kind: EventDestroyed, Reason: reason, Session: ShortHash(snap.ID), Principal: snap.Principal})
	return nil
}

// DestroyID destroys the session with this ID (the random part of a token,
// as SessionsOf returns it) on every node. It is a no-op for an unknown
// ID. Use it from admin tools.
func (m *Manager) DestroyID(ctx context.Context, id string) error {
	if i, _, ok := ParseID(id); ok {
		id = i
	}
	snap := m.store.Get(id)
	if snap == nil {
		return nil
	}
	return m.destroyID(ctx, snap, replicator.ReasonInvalidated)
}

// SessionInfo describes one live session for admin views.
type SessionInfo struct {
	// ID is the session's store key. It is a secret: anyone holding it can
	// use the session. Display Hash instead.
	ID         string
	Hash       string    // ShortHash(ID)
	Owner      string    // the node that served it last
	Principal  string    // the logged-in user, if any (SetPrincipal)
	Created    time.Time // first commit
	LastAccess time.Time // last request
	Deadline   time.Time // absolute end (Lifetime); zero: none
}

// SessionsOf returns the live sessions of principal (on every node, as far
// as the local replica knows).
func (m *Manager) SessionsOf(principal string) []SessionInfo {
	if principal == "" {
		return nil
	}
	ids := m.store.SessionsOf(principal)
	out := make([]SessionInfo, 0, len(ids))
	for _, id := range ids {
		s := m.store.Get(id)
		if s == nil || s.Destroyed {
			continue
		}
		out = append(out, SessionInfo{
			ID: s.ID, Hash: ShortHash(s.ID), Owner: s.Owner, Principal: s.Principal,
			Created: time.Unix(0, s.Created), LastAccess: time.Unix(0, s.LastAccess), Deadline: time.Unix(0, s.Deadline),
		})
	}
	return out
}

// DestroyPrincipal destroys every session of principal (for example after
// a password change) and returns how many it destroyed.
func (m *Manager) DestroyPrincipal(ctx context.Context, principal string) (int, error) {
	if principal == "" {
		return 0, nil
	}
	n := 0
	for _, id := range m.store.SessionsOf(principal) {
		snap := m.store.Get(id)
		if snap == nil || snap.Destroyed {
			continue
		}
		if err := m.destroyID(ctx, snap, replicator.ReasonInvalidated); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// track remembers id for MaxActiveEvictOldest.
func (m *Manager) track(id string) {
	if m.cfg.MaxActive <= 0 || m.cfg.MaxActivePolicy != MaxActiveEvictOldest {
		return
	}
	m.evictMu.Lock()
	m.fifo = append(m.fifo, id)
	m.evictMu.Unlock()
}

// makeRoom enforces MaxActive before a new session is created.
func (m *Manager) makeRoom(ctx context.Context, self string) error {
	if m.cfg.MaxActive <= 0 || m.store.Len() < m.cfg.MaxActive {
		return nil
	}
	if m.cfg.MaxActivePolicy != MaxActiveEvictOldest {
		m.stats.refused.Add(1)
		return ErrTooManySessions
	}
	for m.store.Len() >= m.cfg.MaxActive {
		m.evictMu.Lock()
		var id string
		for len(m.fifo) > 0 && id == "" {
			id = m.fifo[0]
			m.fifo[0] = ""
			m.fifo = m.fifo[1:]
			if id == self {
				id = ""
			}
		}
		m.evictMu.Unlock()
		if id == "" {
			m.stats.refused.Add(1)
			return ErrTooManySessions
		}
		if snap := m.store.Get(id); snap != nil && !snap.Destroyed {
			if err := m.destroyID(ctx, snap, replicator.ReasonEvicted); err != nil {
				return err
			}
		}
	}
	return nil
}
