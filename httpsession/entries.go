package httpsession

import (
	"slices"
	"strings"
)

// entry is one attribute of a request's session.
type entry struct {
	val     any    // decoded value; not set yet when lazy
	raw     []byte // encoding as stored (or as put)
	dirty   bool   // changed in this request, not yet committed
	deleted bool
	mutable bool // the value may change in place (re-encode at commit)
	read    bool // handed out by a getter (for DetectMutations)
	lazy    bool // raw was checked at load but val is decoded on first use
}

// keyedEntry is an entry with its key.
type keyedEntry struct {
	key string
	e   entry
}

// entrySet holds a request's attributes sorted by key. It lives inside
// the Session (which LoadAndSave allocates with the request's other
// state), and its first two entries are stored inline: a session of one
// or two attributes costs no allocation of its own, where a Go map costs
// one. Lookups are binary searches, as in the replica's Attrs.
type entrySet struct {
	kv  []keyedEntry
	buf [2]keyedEntry
}

func (es *entrySet) find(key string) (int, bool) {
	return slices.BinarySearchFunc(es.kv, key, func(x keyedEntry, k string) int { return strings.Compare(x.key, k) })
}

// ref returns the entry under key, to read or change in place, or nil. The
// pointer is valid until the next set or grow.
func (es *entrySet) ref(key string) *entry {
	if i, ok := es.find(key); ok {
		return &es.kv[i].e
	}
	return nil
}

// set stores e under key.
func (es *entrySet) set(key string, e entry) {
	i, ok := es.find(key)
	if ok {
		es.kv[i].e = e
		return
	}
	if es.kv == nil {
		es.kv = es.buf[:0]
	}
	es.kv = slices.Insert(es.kv, i, keyedEntry{key: key, e: e})
}

// grow makes room for n more entries.
func (es *entrySet) grow(n int) {
	if es.kv == nil {
		es.kv = es.buf[:0]
	}
	es.kv = slices.Grow(es.kv, n)
}

// len returns the number of entries, deleted ones included.
func (es *entrySet) len() int { return len(es.kv) }

// reset drops every entry.
func (es *entrySet) reset() {
	clear(es.kv)
	es.kv = nil
}

// committed drops the deleted entries and marks the others clean, once
// the changes are committed.
func (es *entrySet) committed() {
	es.kv = slices.DeleteFunc(es.kv, func(x keyedEntry) bool { return x.e.deleted })
	for i := range es.kv {
		es.kv[i].e.dirty = false
	}
}
