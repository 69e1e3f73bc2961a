package cluster

// Time and randomness, the node's inputs (Config.Clock, Config.Rand).
// Timers and tickers are Go's: testing/synctest fakes them together with
// time.Now. Deadlines of connections are timers too and use time.Now.

import (
	"math/rand/v2"
	"sync"
	"time"
)

// now reads the node's wall clock (Config.Clock).
func (n *Node) now() time.Time { return n.cfg.Clock() }

// since is the time elapsed since t on the node's wall clock.
func (n *Node) since(t time.Time) time.Duration { return n.now().Sub(t) }

// rng draws from Config.Rand, which need not be safe for concurrent use.
type rng struct {
	mu sync.Mutex
	r  *rand.Rand // nil: math/rand/v2's global source
}

func newRNG(src rand.Source) *rng {
	if src == nil {
		return &rng{}
	}
	return &rng{r: rand.New(src)}
}

// intN returns a random int in [0, k); k must be positive.
func (g *rng) intN(k int) int {
	if g.r == nil {
		return rand.IntN(k)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.IntN(k)
}

// jitter returns a random duration in [d/2, 3d/2); d must be positive.
func (g *rng) jitter(d time.Duration) time.Duration {
	if g.r == nil {
		return d/2 + rand.N(d)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return d/2 + time.Duration(g.r.Int64N(int64(d)))
}
