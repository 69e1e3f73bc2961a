package replicator

import (
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Attrs is the immutable attribute set of a Session: live attributes and
// per-attribute tombstones, sorted by key. The zero value is the empty
// set. It is a value type of 16 bytes holding a compact array (48 bytes
// per attribute, node names interned), which is what keeps a small
// session small: a Go map costs a whole 8-slot group even for one
// attribute. Lookups are binary searches; every change builds a new
// array (copy on write), so an Attrs handed out is never modified.
type Attrs struct {
	p *attrEntry // first element of an array of n entries, sorted by key; nil when n is 0
	n int
}

// attrEntry is an Attr in compact form. The value is held as a pointer
// and a length (its capacity is not kept); the stamp's node name as an
// interned id.
type attrEntry struct {
	key     string
	val     *byte // unsafe.SliceData of the value: nil for a nil value
	vlen    uint32
	epoch   uint32
	hlc     uint64
	node    uint32
	deleted bool
}

func entryOf(key string, a *Attr) attrEntry {
	return attrEntry{
		key:     key,
		val:     unsafe.SliceData(a.Value),
		vlen:    uint32(len(a.Value)),
		epoch:   a.Stamp.Epoch,
		hlc:     a.Stamp.HLC,
		node:    nodeID(a.Stamp.Node),
		deleted: a.Deleted,
	}
}

func (e *attrEntry) value() []byte {
	if e.val == nil {
		return nil
	}
	return unsafe.Slice(e.val, e.vlen)
}

func (e *attrEntry) attr() Attr {
	return Attr{Value: e.value(), Stamp: Stamp{Epoch: e.epoch, HLC: e.hlc, Node: nodeName(e.node)}, Deleted: e.deleted}
}

func (a Attrs) entries() []attrEntry {
	if a.n == 0 {
		return nil
	}
	return unsafe.Slice(a.p, a.n)
}

func attrsOf(es []attrEntry) Attrs {
	if len(es) == 0 {
		return Attrs{}
	}
	return Attrs{p: &es[0], n: len(es)}
}

// Len returns the number of attributes, tombstones included.
func (a Attrs) Len() int { return a.n }

func (a Attrs) find(key string) (int, bool) {
	return slices.BinarySearchFunc(a.entries(), key, func(e attrEntry, k string) int { return strings.Compare(e.key, k) })
}

// Get returns the attribute under key (maybe a tombstone: check Deleted)
// and whether there is one.
func (a Attrs) Get(key string) (Attr, bool) {
	i, ok := a.find(key)
	if !ok {
		return Attr{}, false
	}
	return a.entries()[i].attr(), true
}

// Value returns the value of the live attribute under key, nil when there
// is none (absent or deleted). The slice is shared: do not modify it.
func (a Attrs) Value(key string) []byte {
	i, ok := a.find(key)
	if !ok {
		return nil
	}
	return a.entries()[i].value()
}

// All yields every attribute, tombstones included, in key order.
func (a Attrs) All() iter.Seq2[string, Attr] {
	return func(yield func(string, Attr) bool) {
		es := a.entries()
		for i := range es {
			if !yield(es[i].key, es[i].attr()) {
				return
			}
		}
	}
}

// Map returns a new map of every attribute, tombstones included.
func (a Attrs) Map() map[string]Attr {
	m := make(map[string]Attr, a.n)
	for k, v := range a.All() {
		m[k] = v
	}
	return m
}

// With returns a copy of a with key set to v (replacing any attribute
// under key); a itself is not modified. Merge rules are not applied.
func (a Attrs) With(key string, v Attr) Attrs {
	return a.with([]attrEntry{entryOf(key, &v)})
}

// NewAttrs returns the attribute set holding the entries of m.
func NewAttrs(m map[string]Attr) Attrs {
	es := make([]attrEntry, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		es = append(es, entryOf(k, &v))
	}
	return attrsOf(es)
}

// with returns a merged with ch (sorted by key, keys unique): an entry of
// ch replaces a's entry under the same key.
func (a Attrs) with(ch []attrEntry) Attrs {
	old := a.entries()
	out := make([]attrEntry, 0, len(old)+len(ch))
	i, j := 0, 0
	for i < len(old) || j < len(ch) {
		switch {
		case j == len(ch):
			out = append(out, old[i])
			i++
		case i == len(old):
			out = append(out, ch[j])
			j++
		default:
			switch c := strings.Compare(old[i].key, ch[j].key); {
			case c < 0:
				out = append(out, old[i])
				i++
			case c > 0:
				out = append(out, ch[j])
				j++
			default:
				out = append(out, ch[j])
				i++
				j++
			}
		}
	}
	return attrsOf(out)
}

// sessionOne is a Session allocated together with the array of its only
// attribute: the common small session costs one allocation per version
// instead of two, at the same size (the two size classes add up to the
// combined one).
type sessionOne struct {
	s Session
	e [1]attrEntry
}

// embedsAttrs reports whether s's attribute array is the one allocated
// with s (sessionOne).
func embedsAttrs(s *Session) bool {
	return s.Attrs.n == 1 && uintptr(unsafe.Pointer(s.Attrs.p)) == uintptr(unsafe.Pointer(s))+unsafe.Offsetof(sessionOne{}.e)
}

// copySession returns a new copy of s. An attribute array allocated with
// s is copied along, so that the copy does not keep s alive.
func copySession(s *Session) *Session {
	if embedsAttrs(s) {
		x := &sessionOne{s: *s, e: [1]attrEntry{*s.Attrs.p}}
		x.s.Attrs = Attrs{p: &x.e[0], n: 1}
		return &x.s
	}
	n := *s
	return &n
}

// withAttrs returns a new copy of base whose attributes are base's merged
// with ch (see Attrs.with), allocated as one sessionOne when the result
// holds a single attribute.
func withAttrs(base *Session, ch []attrEntry) *Session {
	if len(ch) == 0 {
		return copySession(base)
	}
	old := base.Attrs.entries()
	if len(ch) == 1 && (len(old) == 0 || (len(old) == 1 && old[0].key == ch[0].key)) {
		x := &sessionOne{s: *base, e: [1]attrEntry{ch[0]}}
		x.s.Attrs = Attrs{p: &x.e[0], n: 1}
		return &x.s
	}
	n := *base
	n.Attrs = base.Attrs.with(ch)
	return &n
}

// Node names are interned: every stamp of every session names one of a
// few writers, so an attribute holds a 4-byte id instead of a string
// header (and, for decoded records, a string of its own). The table only
// grows; it holds each distinct writer name this process has seen.
var nodeTab struct {
	mu    sync.Mutex
	ids   sync.Map                 // name → uint32
	names atomic.Pointer[[]string] // id i is names[i]; appended under mu
}

func init() {
	names := []string{""}
	nodeTab.names.Store(&names)
	nodeTab.ids.Store("", uint32(0))
}

// nodeID returns the id of a node name, interning it on first sight.
func nodeID(name string) uint32 {
	if name == "" {
		return 0
	}
	if id, ok := nodeTab.ids.Load(name); ok {
		return id.(uint32)
	}
	nodeTab.mu.Lock()
	defer nodeTab.mu.Unlock()
	if id, ok := nodeTab.ids.Load(name); ok {
		return id.(uint32)
	}
	name = strings.Clone(name)
	// Appending in place is safe: readers only index below the length
	// they loaded.
	names := append(*nodeTab.names.Load(), name)
	id := uint32(len(names) - 1)
	nodeTab.names.Store(&names)
	nodeTab.ids.Store(name, id)
	return id
}

func nodeName(id uint32) string {
	names := *nodeTab.names.Load()
	if int(id) < len(names) {
		return names[id]
	}
	return ""
}

// internNode returns the interned copy of a node name, so that the many
// records naming one owner share one string.
func internNode(name string) string {
	return nodeName(nodeID(name))
}

// internTable interns strings decoded from the wire that repeat across
// deltas: writer names and attribute keys. Lookups do not allocate; a
// string not held yet is added while the table is below its bound, so a
// stream of ever new strings costs one allocation each, as without it.
type internTable struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[string]string] // copy on write
	max   int
	canon func(string) string // maps a new string to the value to hold; nil: itself
}

var (
	ownerNames = internTable{max: 1024, canon: internNode}
	attrKeys   = internTable{max: 4096}
)

func (t *internTable) get(b []byte) string {
	if m := t.m.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	if t.canon != nil {
		s = t.canon(s)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[string]string
	if m := t.m.Load(); m != nil {
		old = *m
	}
	if len(old) >= t.max {
		return s
	}
	if v, ok := old[s]; ok {
		return v
	}
	m := make(map[string]string, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[s] = s
	t.m.Store(&m)
	return s
}
