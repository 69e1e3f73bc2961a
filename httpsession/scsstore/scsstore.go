// Package scsstore lets an application built on github.com/alexedwards/scs/v2
// keep its code and gain hanode's replication: it implements scs's Store,
// CtxStore and IterableStore over a replicator.Store (the cluster runtime
// or the local replica). The migration is one line:
//
//	sessionManager.Store = scsstore.New(node) // node is a replicator.Store
//
// scs encodes the whole session as one blob, so each commit replicates the
// whole blob (one attribute) rather than the changed keys, and the
// replica's attribute limit (replicator.ReplicaConfig.MaxAttrBytes, 256
// KiB by default) caps the whole scs session: over it, Commit returns
// replicator.ErrTooLarge. scs tokens carry no route suffix, so a sticky
// load balancer needs a stickiness cookie of its own (or a hash of the
// token); any node can serve any session. Move to the httpsession package
// for per-key merging, takeover routing and the rest.
//
// This is a module of its own (scs stays out of hanode's go.mod). Until
// hanode publishes versions, depend on a checkout with two replace
// directives, the adapter's and hanode's (the README shows the commands).
package scsstore

import (
	"context"
	"time"

	"github.com/hanode/hanode/replicator"
)

// attr is the attribute that holds scs's encoded session.
const attr = "scs"

// Store adapts a replicator.Store to scs. Safe for concurrent use.
type Store struct {
	s replicator.Store
	// Consistency of commits; default replicator.Async.
	Consistency replicator.Consistency
	now         func() time.Time
}

// New returns a Store over s.
func New(s replicator.Store) *Store { return &Store{s: s, now: time.Now} }

// Find returns the session data of token; found is false for an unknown,
// destroyed or expired token.
func (st *Store) Find(token string) ([]byte, bool, error) {
	return st.FindCtx(context.Background(), token)
}

// FindCtx is Find with a context.
func (st *Store) FindCtx(_ context.Context, token string) ([]byte, bool, error) {
	s := st.s.Get(token)
	if s == nil || s.Destroyed || (s.Deadline != 0 && st.now().UnixNano() >= s.Deadline) {
		return nil, false, nil
	}
	a, ok := s.Attrs.Get(attr)
	if !ok || a.Deleted {
		return nil, false, nil
	}
	return a.Value, true, nil
}

// Commit stores b under token until expiry.
func (st *Store) Commit(token string, b []byte, expiry time.Time) error {
	return st.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is Commit with a context. A session last served by another
// node is taken over (its epoch is bumped) so that this node's writes win.
func (st *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	now := st.now().UnixNano()
	node := st.s.Node()
	d := &replicator.Delta{ID: token, Owner: node, Epoch: 1, Created: now, LastAccess: now, Deadline: expiry.UnixNano()}
	d.Ops = append(d.Ops, replicator.Op{Kind: replicator.OpSet, Key: attr, Value: append([]byte(nil), b...)})
	if cur := st.s.Get(token); cur != nil {
		d.Epoch, d.Created = cur.Epoch, cur.Created
		if cur.Owner != node {
			d.Takeover()
		}
	}
	_, err := st.s.Commit(ctx, d, st.Consistency)
	return err
}

// Delete destroys the session of token on every node; unknown tokens are
// a no-op.
func (st *Store) Delete(token string) error { return st.DeleteCtx(context.Background(), token) }

// DeleteCtx is Delete with a context.
func (st *Store) DeleteCtx(ctx context.Context, token string) error {
	cur := st.s.Get(token)
	if cur == nil {
		return nil
	}
	now := st.now().UnixNano()
	_, err := st.s.Commit(ctx, replicator.InvalidateDelta(cur, st.s.Node(), now, replicator.ReasonInvalidated), st.Consistency)
	return err
}

// ranger is implemented by stores that can list their sessions.
type ranger interface {
	Range(fn func(id string) bool)
}

// All returns the data of every live session, when the underlying store
// can list them (otherwise an empty map).
func (st *Store) All() (map[string][]byte, error) { return st.AllCtx(context.Background()) }

// AllCtx is All with a context.
func (st *Store) AllCtx(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	r, ok := st.s.(ranger)
	if !ok {
		return out, nil
	}
	r.Range(func(id string) bool {
		if b, found, _ := st.FindCtx(ctx, id); found {
			out[id] = b
		}
		return true
	})
	return out, nil
}
