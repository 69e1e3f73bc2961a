// Package subs holds the lifecycle-event subscriber lists that hanode's
// stores (replicator.Local, replicator/cluster.Node) offer through their
// Subscribe methods. It is not part of their API.
package subs

import "sync"

// List is a list of event callbacks. The zero value is ready to use; it
// is safe for concurrent use.
type List[E any] struct {
	mu  sync.RWMutex
	fns []func(E)
}

// Add registers fn.
func (s *List[E]) Add(fn func(E)) {
	s.mu.Lock()
	s.fns = append(s.fns, fn)
	s.mu.Unlock()
}

// Chain returns an event callback that calls first (when not nil), then
// every subscriber.
func (s *List[E]) Chain(first func(E)) func(E) {
	return func(e E) {
		if first != nil {
			first(e)
		}
		s.mu.RLock()
		fns := s.fns
		s.mu.RUnlock()
		for _, fn := range fns {
			fn(e)
		}
	}
}
