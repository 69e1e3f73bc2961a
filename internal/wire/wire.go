// Package wire lets hanode's runtimes reach the wire codec of package
// replicator (deltas, batches of deltas, session records) without the
// codec being part of replicator's API.
//
// The codec lives in replicator, unexported: it works on replicator's
// record types and on their unexported parts (interned names, compact
// attribute arrays), and replicator's snapshots use it. This package sits
// below replicator and cannot name those types, so it is generic:
// replicator installs its codec at init (Install), and a runtime that
// imports replicator takes it out with the same type arguments (Of):
//
//	var codec = wire.Of[replicator.Delta, replicator.Session]()
//
// The format itself is described in replicator/codec.go.
package wire

import "fmt"

// Codec is the wire codec of the delta type D and the session record
// type S. Every function is safe for concurrent use; decoded records do
// not alias their input.
type Codec[D, S any] struct {
	// AppendBatch appends a batch of deltas (version byte, count,
	// deltas) to b and returns the extended slice.
	AppendBatch func(b []byte, ds []*D) []byte
	// DecodeBatch decodes a batch that fills all of b; trailing bytes
	// are an error.
	DecodeBatch func(b []byte) ([]*D, error)
	// DecodeBatchInto is DecodeBatch appending to dst[:0], so that a
	// receive loop reuses one slice; nothing is appended when b is
	// malformed.
	DecodeBatchInto func(dst []*D, b []byte) ([]*D, error)
	// DecodeBatchFor is DecodeBatchInto for a receive loop whose deltas
	// are about to be applied to replica (a *replicator.Replica): a delta
	// of a session the replica holds shares the replica's string of its
	// ID instead of allocating one, and the deltas in dst (the previous
	// batch's) are overwritten instead of allocated anew: the caller must
	// be done with them.
	DecodeBatchFor func(replica any, dst []*D, b []byte) ([]*D, error)
	// AppendSession appends the encoding of a full session record to b.
	AppendSession func(b []byte, s *S) []byte
	// DecodeSession decodes one session record from the front of b and
	// returns it with the number of bytes read.
	DecodeSession func(b []byte) (*S, int, error)
}

// installed holds the Codec[D, S] given to Install.
var installed any

// Install makes c the codec that Of returns. Package replicator calls it
// from its init; nothing else should.
func Install[D, S any](c Codec[D, S]) { installed = c }

// Of returns the codec installed for D and S. Package initialisation
// runs replicator's init before the init of any package importing it, so
// a package-level variable of an importer may call Of. It panics when no
// codec for D and S is installed.
func Of[D, S any]() Codec[D, S] {
	c, ok := installed.(Codec[D, S])
	if !ok {
		panic(fmt.Sprintf("wire: no codec installed for %T and %T (installed: %T)", *new(D), *new(S), installed))
	}
	return c
}
