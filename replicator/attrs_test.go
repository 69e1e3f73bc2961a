package replicator

import (
	"strings"
	"testing"
)

func TestAttrs(t *testing.T) {
	var a Attrs
	if a.Len() != 0 || a.Value("x") != nil {
		t.Fatal("zero Attrs not empty")
	}
	if _, ok := a.Get("x"); ok {
		t.Fatal("found a key in the zero Attrs")
	}
	b := a.With("m", Attr{Value: []byte("1"), Stamp: Stamp{Epoch: 2, HLC: 3, Node: "web-1"}})
	c := b.With("a", Attr{Value: []byte{}, Stamp: Stamp{HLC: 4, Node: "web-2"}}).
		With("z", Attr{Deleted: true, Stamp: Stamp{HLC: 5, Node: "web-1"}}).
		With("m", Attr{Value: []byte("2"), Stamp: Stamp{HLC: 6, Node: "web-3"}})
	if a.Len() != 0 || b.Len() != 1 || string(b.Value("m")) != "1" {
		t.Fatal("With modified its receiver")
	}
	var keys []string
	for k := range c.All() {
		keys = append(keys, k)
	}
	if strings.Join(keys, ",") != "a,m,z" {
		t.Fatalf("keys %v", keys)
	}
	if v := c.Value("a"); v == nil || len(v) != 0 {
		t.Fatalf("empty value came back as %#v (nil and empty differ)", v)
	}
	if m, ok := c.Get("m"); !ok || string(m.Value) != "2" || m.Stamp != (Stamp{HLC: 6, Node: "web-3"}) {
		t.Fatalf("m = %+v", m)
	}
	if z, ok := c.Get("z"); !ok || !z.Deleted || z.Value != nil || z.Stamp.Node != "web-1" || c.Value("z") != nil {
		t.Fatalf("z = %+v", z)
	}
	m := c.Map()
	if len(m) != 3 || NewAttrs(m).Len() != 3 || string(NewAttrs(m).Value("m")) != "2" {
		t.Fatalf("map round trip %v", m)
	}
	for k, v := range c.All() {
		if k == "m" {
			break // yield returning false stops the iteration
		}
		_ = v
	}
}

func TestNodeNamesInterned(t *testing.T) {
	name := strings.Repeat("n", 3) + "-interned"
	id := nodeID(name)
	if nodeID(strings.Clone(name)) != id || nodeName(id) != name || nodeID("") != 0 || nodeName(0) != "" {
		t.Fatal("intern table")
	}
	if internNode(strings.Clone(name)) != name {
		t.Fatal("internNode")
	}
}
