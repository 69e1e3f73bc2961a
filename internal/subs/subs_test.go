package subs

import (
	"slices"
	"testing"
)

// Chain calls first, then the subscribers in the order they were added,
// including those added after Chain was called.
func TestChain(t *testing.T) {
	var l List[int]
	var got []string
	l.Add(func(e int) { got = append(got, "a") })
	f := l.Chain(func(e int) { got = append(got, "first") })
	l.Add(func(e int) { got = append(got, "b") })
	f(1)
	if want := []string{"first", "a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	got = nil
	l.Chain(nil)(2)
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
