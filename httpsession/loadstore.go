package httpsession

import (
	"context"

	"github.com/hanode/hanode/replicator"
)

// LoadStore is the optional capability of a store whose reads can fail,
// such as the Redis store (replicator/redisstore): Load returns the live
// session with this ID, nil and a nil error when there is none, and an
// error when the store could not answer. When the store has it,
// LoadAndSave loads the request's session with Load; a failed load makes
// the request's commit fail with that error (the ErrorFunc answers, 500
// by default; 503 for replicator.ErrNotReady, which a cluster node that is
// still joining returns for a session it has not received yet), so that a
// store outage is an error to the client instead of a fresh, empty
// session that hides the user's own.
type LoadStore interface {
	replicator.Store
	Load(ctx context.Context, id string) (*replicator.Session, error)
}

// loadSnapshot reads id from the store, through Load when it is a
// LoadStore.
func (m *Manager) loadSnapshot(ctx context.Context, id string) (*replicator.Session, error) {
	if ls, ok := m.store.(LoadStore); ok {
		return ls.Load(ctx, id)
	}
	return m.store.Get(id), nil
}
