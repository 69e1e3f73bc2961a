package hlc

import (
	"sync"
	"testing"
)

func TestHLC(t *testing.T) {
	var c Clock
	a := c.Now(1 << 20)
	b := c.Now(1 << 20)
	if b <= a || Wall(a) != 1<<20 {
		t.Fatal("not monotonic")
	}
	if c.Now(5) <= b { // wall clock went back
		t.Fatal("went back")
	}
	c.Update(1<<40, 0)
	if c.Now(1<<20) <= 1<<40 {
		t.Fatal("update ignored")
	}
	var wg sync.WaitGroup
	seen := sync.Map{}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if _, dup := seen.LoadOrStore(c.Now(int64(i)), true); dup {
					t.Error("duplicate")
				}
			}
		}()
	}
	wg.Wait()
}
