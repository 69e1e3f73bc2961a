package httpsession

import (
	"context"
	"time"

	"github.com/hanode/hanode/replicator"
)

// The methods in this file take the request context, like the session
// managers Go developers know; each delegates to the *Session that
// LoadAndSave put in the context. Changing methods return ErrNoSession when
// there is none; getters return the zero value.

func (m *Manager) session(ctx context.Context) *Session {
	s, ok := FromContext(ctx)
	if !ok || s.m != m {
		return nil
	}
	return s
}

func (m *Manager) warn(msg string, s *Session, err error) {
	m.cfg.Logger.Warn(msg, "session", s.Hash(), "err", err)
}

// Put stores v under key in the request's session.
func (m *Manager) Put(ctx context.Context, key string, v any) error {
	s := m.session(ctx)
	if s == nil {
		return ErrNoSession
	}
	return s.Put(key, v)
}

// Get returns the value under key, or nil. A value changed in place after
// Get is not committed unless it is Put back (or Config.Dirty is
// DetectMutations): see (*Session).Get for the pattern.
func (m *Manager) Get(ctx context.Context, key string) any {
	if s := m.session(ctx); s != nil {
		return s.Get(key)
	}
	return nil
}

// Pop returns the value under key and removes it (a flash message). A
// removal that can no longer be committed is logged and counted in
// Stats.LateWrites; use (*Session).Pop to get the error.
func (m *Manager) Pop(ctx context.Context, key string) any {
	s := m.session(ctx)
	if s == nil {
		return nil
	}
	v, err := s.Pop(key)
	if err != nil {
		m.warn("httpsession: pop not committed", s, err)
	}
	return v
}

// Remove deletes key.
func (m *Manager) Remove(ctx context.Context, key string) error {
	if s := m.session(ctx); s != nil {
		return s.Remove(key)
	}
	return ErrNoSession
}

// Exists reports whether key holds a value.
func (m *Manager) Exists(ctx context.Context, key string) bool {
	if s := m.session(ctx); s != nil {
		return s.Exists(key)
	}
	return false
}

// Keys returns the session's keys, sorted.
func (m *Manager) Keys(ctx context.Context) []string {
	if s := m.session(ctx); s != nil {
		return s.Keys()
	}
	return nil
}

// Clear removes every key of the session.
func (m *Manager) Clear(ctx context.Context) error {
	if s := m.session(ctx); s != nil {
		return s.Clear()
	}
	return ErrNoSession
}

// Destroy ends the session everywhere and deletes the cookie.
func (m *Manager) Destroy(ctx context.Context) error {
	if s := m.session(ctx); s != nil {
		return s.Destroy()
	}
	return ErrNoSession
}

// MergeSession copies the attributes of the session of token into the
// request's session and destroys the other one after the commit; see
// (*Session).MergeSession.
func (m *Manager) MergeSession(ctx context.Context, token string) error {
	if s := m.session(ctx); s != nil {
		return s.MergeSession(token)
	}
	return ErrNoSession
}

// Load returns a context carrying the session of token, for code that
// handles a session outside LoadAndSave (a WebSocket read loop, a
// background job, a gRPC interceptor), as scs's Load does. token is what
// Token returned; "" or a token the store does not know gives a new,
// empty session (a fresh ID is minted at its first change). The session
// works as in a handler, but nothing is committed by itself: call Commit.
// When ctx already carries a session of this Manager, Load returns ctx as
// it is. The error is always nil; it is there for scs's signature.
func (m *Manager) Load(ctx context.Context, token string) (context.Context, error) {
	if m.session(ctx) != nil {
		return ctx, nil
	}
	s := &Session{}
	m.loadToken(s, ctx, token)
	return context.WithValue(ctx, ctxKey{}, s), nil
}

// Commit commits the session in ctx now, as scs's Commit does, and
// returns its token and when it expires: its absolute deadline, or the
// end of its idle timeout when that comes first. For a session with
// nothing stored (or destroyed) the token is "" and the time zero. Under
// LoadAndSave it is Flush with the token added (the cookie is set by the
// middleware); for a session from Load it is the only way to save it, and
// the session stays usable for more changes and Commits.
func (m *Manager) Commit(ctx context.Context) (token string, expiry time.Time, err error) {
	s := m.session(ctx)
	if s == nil {
		return "", time.Time{}, ErrNoSession
	}
	if _, err := s.Flush(); err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stored || s.id == "" {
		return "", time.Time{}, nil
	}
	exp := s.deadline
	if s.idle > 0 {
		if e := m.now() + s.idle; exp == 0 || e < exp {
			exp = e
		}
	}
	if exp != 0 {
		expiry = time.Unix(0, exp)
	}
	return formatToken(s.id, m.node), expiry, nil
}

// RenewToken gives the session a new ID (call it on login).
func (m *Manager) RenewToken(ctx context.Context) error {
	if s := m.session(ctx); s != nil {
		return s.RenewToken()
	}
	return ErrNoSession
}

// RememberMe makes the cookie persistent or not for this session.
func (m *Manager) RememberMe(ctx context.Context, remember bool) error {
	if s := m.session(ctx); s != nil {
		return s.RememberMe(remember)
	}
	return ErrNoSession
}

// Deadline returns the absolute end of the session's lifetime.
func (m *Manager) Deadline(ctx context.Context) time.Time {
	if s := m.session(ctx); s != nil {
		return s.Deadline()
	}
	return time.Time{}
}

// SetDeadline moves the absolute end of the session's lifetime.
func (m *Manager) SetDeadline(ctx context.Context, t time.Time) error {
	if s := m.session(ctx); s != nil {
		return s.SetDeadline(t)
	}
	return ErrNoSession
}

// Token returns the session's token, or "".
func (m *Manager) Token(ctx context.Context) string {
	if s := m.session(ctx); s != nil {
		return s.Token()
	}
	return ""
}

// Status returns the session's state in this request.
func (m *Manager) Status(ctx context.Context) Status {
	if s := m.session(ctx); s != nil {
		return s.Status()
	}
	return Unmodified
}

// SetPrincipal records the user the session belongs to.
func (m *Manager) SetPrincipal(ctx context.Context, principal string) error {
	if s := m.session(ctx); s != nil {
		return s.SetPrincipal(principal)
	}
	return ErrNoSession
}

// Principal returns the session's principal.
func (m *Manager) Principal(ctx context.Context) string {
	if s := m.session(ctx); s != nil {
		return s.Principal()
	}
	return ""
}

// SetConsistency overrides the consistency of this request's commits.
func (m *Manager) SetConsistency(ctx context.Context, c replicator.Consistency) {
	if s := m.session(ctx); s != nil {
		s.SetConsistency(c)
	}
}

// Flush commits the session now, before the response starts. On an error
// the handler answers (see Session.Flush), for example with ErrorStatus.
func (m *Manager) Flush(ctx context.Context) (replicator.CommitResult, error) {
	if s := m.session(ctx); s != nil {
		return s.Flush()
	}
	return replicator.CommitResult{}, ErrNoSession
}

// LastCommit returns the result of the request's last commit; ok is false
// before the first one and when it failed.
func (m *Manager) LastCommit(ctx context.Context) (res replicator.CommitResult, ok bool) {
	if s := m.session(ctx); s != nil {
		return s.LastCommit()
	}
	return res, false
}

// GetString returns the string under key, or "".
func (m *Manager) GetString(ctx context.Context, key string) string {
	return getAs[string](m, ctx, key)
}

// GetInt returns the int under key, or 0.
func (m *Manager) GetInt(ctx context.Context, key string) int { return getAs[int](m, ctx, key) }

// GetInt64 returns the int64 under key, or 0.
func (m *Manager) GetInt64(ctx context.Context, key string) int64 { return getAs[int64](m, ctx, key) }

// GetInt32 returns the int32 under key, or 0.
func (m *Manager) GetInt32(ctx context.Context, key string) int32 { return getAs[int32](m, ctx, key) }

// GetBool returns the bool under key, or false.
func (m *Manager) GetBool(ctx context.Context, key string) bool { return getAs[bool](m, ctx, key) }

// GetFloat returns the float64 under key, or 0.
func (m *Manager) GetFloat(ctx context.Context, key string) float64 {
	return getAs[float64](m, ctx, key)
}

// GetBytes returns the []byte under key, or nil.
func (m *Manager) GetBytes(ctx context.Context, key string) []byte {
	return as[[]byte](m.Get(ctx, key))
}

// GetTime returns the time.Time under key, or the zero time.
func (m *Manager) GetTime(ctx context.Context, key string) time.Time {
	return as[time.Time](m.Get(ctx, key))
}

// PopString returns the string under key and removes it.
func (m *Manager) PopString(ctx context.Context, key string) string {
	return as[string](m.Pop(ctx, key))
}

// PopInt returns the int under key and removes it.
func (m *Manager) PopInt(ctx context.Context, key string) int { return as[int](m.Pop(ctx, key)) }

// PopInt64 returns the int64 under key and removes it.
func (m *Manager) PopInt64(ctx context.Context, key string) int64 { return as[int64](m.Pop(ctx, key)) }

// PopBool returns the bool under key and removes it.
func (m *Manager) PopBool(ctx context.Context, key string) bool { return as[bool](m.Pop(ctx, key)) }

// PopFloat returns the float64 under key and removes it.
func (m *Manager) PopFloat(ctx context.Context, key string) float64 {
	return as[float64](m.Pop(ctx, key))
}

// PopBytes returns the []byte under key and removes it.
func (m *Manager) PopBytes(ctx context.Context, key string) []byte {
	return as[[]byte](m.Pop(ctx, key))
}

// PopTime returns the time.Time under key and removes it.
func (m *Manager) PopTime(ctx context.Context, key string) time.Time {
	return as[time.Time](m.Pop(ctx, key))
}

// getAs is as[T](m.Get(ctx, key)), without boxing a value that is
// still in its encoding (see loadAttrs) and is a T.
func getAs[T any](m *Manager, ctx context.Context, key string) T {
	s := m.session(ctx)
	if s == nil {
		var t T
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries.ref(key); e != nil && !e.deleted && e.lazy {
		if t, ok := decodeAs[T](e.raw); ok {
			return t
		}
	}
	return as[T](s.getLocked(key))
}

func as[T any](v any) T {
	t, _ := v.(T)
	return t
}

// RangeStore is the optional store capability Iterate needs: calling fn
// with the ID of every live session until fn returns false.
type RangeStore interface {
	replicator.Store
	Range(fn func(id string) bool)
}

// Iterate calls fn once for every live session in the store, with a
// context that carries that session; changes fn makes are committed after
// it returns. It returns the first error of fn or of a commit, and
// ErrNotSupported when the store is not a RangeStore.
func (m *Manager) Iterate(ctx context.Context, fn func(context.Context) error) error {
	rs, ok := m.store.(RangeStore)
	if !ok {
		return ErrNotSupported
	}
	var ids []string
	rs.Range(func(id string) bool {
		if !replicator.IsKeyRecord(id) { // Redis-protocol keys share the store
			ids = append(ids, id)
		}
		return true
	})
	now := m.now()
	for _, id := range ids {
		snap := m.store.Get(id)
		if snap == nil || snap.Destroyed || snap.Expired(now) {
			continue
		}
		s := &Session{m: m, ctx: ctx, consistency: m.cfg.Consistency}
		if err := s.loadAttrs(snap); err != nil {
			m.stats.undecodable.Add(1)
			continue
		}
		s.snap, s.id, s.stored, s.storedID = snap, id, true, id
		s.epoch, s.created, s.deadline, s.idle, s.principal = snap.Epoch, snap.Created, snap.Deadline, snap.IdleTimeout, snap.Principal
		s.takeover = snap.Owner != m.node
		s.touched = true // iterating is not an access
		if err := fn(context.WithValue(ctx, ctxKey{}, s)); err != nil {
			return err
		}
		s.mu.Lock()
		s.takeover = s.takeover && s.status != Unmodified
		_, err := s.commitLocked()
		s.started = true
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
