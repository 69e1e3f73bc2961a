package testutil

import (
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		err := Wait(time.Second, func() error {
			calls++
			if time.Since(start) >= 300*time.Millisecond {
				return nil
			}
			return errors.New("early")
		})
		if err != nil || time.Since(start) > 400*time.Millisecond {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		start = time.Now()
		err = Wait(time.Second, func() error { return errors.New("never") })
		if err == nil || err.Error() != "never" || time.Since(start) < time.Second || time.Since(start) > 1100*time.Millisecond {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		if calls < 5 {
			t.Fatalf("polled %d times in 300ms", calls)
		}
	})
}

func TestWaitEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		err := WaitEvery(time.Second, 5*time.Millisecond, func() error {
			at = append(at, time.Since(start))
			if time.Since(start) >= 100*time.Millisecond {
				return nil
			}
			return errors.New("early")
		})
		if err != nil || len(at) != 21 || at[20] != 100*time.Millisecond {
			t.Fatalf("err %v, polled at %v", err, at)
		}
		start = time.Now()
		err = WaitEvery(50*time.Millisecond, 20*time.Millisecond, func() error { return errors.New("never") })
		if err == nil || time.Since(start) < 50*time.Millisecond || time.Since(start) > 60*time.Millisecond {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
	})
}

func TestWorkers(t *testing.T) {
	var sum, running, peak atomic.Int64
	Workers(100, 4, func(i int) {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		sum.Add(int64(i))
		running.Add(-1)
	})
	if sum.Load() != 4950 || peak.Load() > 4 {
		t.Fatalf("sum %d, peak %d", sum.Load(), peak.Load())
	}
}
