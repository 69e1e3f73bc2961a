// Package testutil holds the helpers that hanode's tests share: waiting
// for a condition with a deadline (never for a fixed duration) and running
// work on a bounded pool of workers.
package testutil

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// Poll intervals: the first retry comes soon, later ones back off to
// maxPoll, so a fast condition is seen at once and a slow one costs
// little CPU.
const (
	minPoll = 2 * time.Millisecond
	maxPoll = 100 * time.Millisecond
)

// Eventually calls cond until it returns nil and fails t (Fatal) with
// cond's last error when timeout passes first. what names the condition
// in that message. Under testing/synctest the waits are virtual.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Wait(timeout, cond); err != nil {
		t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
	}
}

// WaitFor is Eventually for a condition without detail.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition false")

// Until is Eventually for a condition that explains itself: cond reports
// whether it holds and, when not, a detail that the failure quotes.
func Until(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	Eventually(t, timeout, what, func() error {
		if ok, detail := cond(); !ok {
			return errors.New("last: " + detail)
		}
		return nil
	})
}

// Wait calls cond until it returns nil, or until timeout has passed since
// the call; then it returns cond's last error.
func Wait(timeout time.Duration, cond func() error) error {
	pause := minPoll
	return poll(timeout, cond, func() time.Duration {
		p := pause
		pause = min(2*pause, maxPoll)
		return p
	})
}

// WaitEvery is Wait with a fixed poll interval instead of a backoff: for
// a test that measures when cond became true, every is the resolution of
// the measurement.
func WaitEvery(timeout, every time.Duration, cond func() error) error {
	return poll(timeout, cond, func() time.Duration { return every })
}

// poll calls cond until it returns nil or timeout has passed, pausing
// next() between calls (never past the deadline by more than 1 ms).
func poll(timeout time.Duration, cond func() error, next func() time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(min(next(), time.Until(deadline)+time.Millisecond))
	}
}

// Workers runs work(i) for i in [0, n) on at most workers goroutines and
// returns when all have finished.
func Workers(n, workers int, work func(i int)) {
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				work(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a log sink that a
// test reads while goroutines write to it. The zero value is ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
