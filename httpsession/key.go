package httpsession

import "context"

// Key is a typed session key: Get returns a T without type assertions and
// Put accepts only a T. NewKey registers T with encoding/gob once, so you
// never call gob.Register for it.
type Key[T any] struct {
	name string
}

// NewKey returns the typed key called name. Declare keys once, at package
// level:
//
//	var cartKey = httpsession.NewKey[Cart]("cart")
func NewKey[T any](name string) Key[T] {
	var zero T
	registerGob(zero)
	return Key[T]{name: name}
}

// Name returns the key's name.
func (k Key[T]) Name() string { return k.name }

// Get returns the value under the key. ok is false when the key is absent
// or holds a value that is not a T. Changing v in place (a map, a slice, a
// pointer's target) is not committed unless you Put it back (or
// Config.Dirty is DetectMutations); see (*Session).Get.
func (k Key[T]) Get(ctx context.Context) (v T, ok bool) {
	s, found := FromContext(ctx)
	if !found {
		return v, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries.ref(k.name)
	if e == nil || e.deleted {
		return v, false
	}
	v, err := decodeInto[T](s.m.cfg.Codec, e.raw, s.valLocked(e))
	if err != nil {
		return v, false
	}
	if e.mutable {
		e.read = true
		e.val = v // later mutations of v are what DetectMutations compares
	}
	return v, true
}

// Put stores v under the key.
func (k Key[T]) Put(ctx context.Context, v T) error {
	s, ok := FromContext(ctx)
	if !ok {
		return ErrNoSession
	}
	return s.Put(k.name, v)
}

// Pop returns the value under the key and removes it.
func (k Key[T]) Pop(ctx context.Context) (v T, ok bool, err error) {
	v, ok = k.Get(ctx)
	if !ok {
		return v, false, nil
	}
	s, _ := FromContext(ctx)
	return v, true, s.Remove(k.name)
}

// Remove deletes the key.
func (k Key[T]) Remove(ctx context.Context) error {
	s, ok := FromContext(ctx)
	if !ok {
		return ErrNoSession
	}
	return s.Remove(k.name)
}
