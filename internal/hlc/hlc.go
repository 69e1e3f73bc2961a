// Package hlc is the hybrid logical clock that stamps hanode's deltas:
// values that compare like wall-clock times, never repeat on one node and
// never go backwards, even when the wall clock does. Package replicator
// commits with it and replicator/cluster merges the stamps it receives
// into it; it is not part of their API.
package hlc

import "sync/atomic"

// logicalBits is the width of the logical counter held in the low bits of
// an HLC value.
const logicalBits = 16

const logicalMask = 1<<logicalBits - 1

// Clock is a hybrid logical clock. A value is wall-clock nanoseconds with
// the low 16 bits replaced by a logical counter, so values compare like
// times, stay close to the wall clock, and never repeat or go backwards on
// one node even when the wall clock does.
//
// The zero Clock is ready to use. All methods are safe for concurrent use
// and lock-free (one compare-and-swap in the common case). Time is an
// input: callers pass the wall clock (unix nanoseconds) in.
type Clock struct {
	last atomic.Uint64
}

func wallPart(wall int64) uint64 {
	if wall <= 0 {
		return 0
	}
	return uint64(wall) &^ logicalMask
}

// Now returns a new HLC value for a local event at wall (unix
// nanoseconds). It is greater than every value Now returned before and
// every value passed to Update.
func (c *Clock) Now(wall int64) uint64 {
	w := wallPart(wall)
	for {
		old := c.last.Load()
		n := w
		if n <= old {
			n = old + 1
		}
		if c.last.CompareAndSwap(old, n) {
			return n
		}
	}
}

// Update merges a value received from another node (the HLC of a remote
// delta) at local wall time wall, so that the next Now orders after it.
func (c *Clock) Update(remote uint64, wall int64) {
	n := max(remote, wallPart(wall))
	for {
		old := c.last.Load()
		if n <= old || c.last.CompareAndSwap(old, n) {
			return
		}
	}
}

// Last returns the latest value issued or merged, 0 for a new Clock.
func (c *Clock) Last() uint64 { return c.last.Load() }

// Wall returns the wall-clock part of an HLC value in unix nanoseconds
// (the logical counter zeroed).
func Wall(h uint64) int64 { return int64(h &^ logicalMask) }
