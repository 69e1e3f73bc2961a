package replicator

import "hash/maphash"

// slot is one record of a shard with the expiry queued for it.
type slot struct {
	s     *Session
	sched int64 // earliest expiry queued in the heap for this ID; 0 none
}

// table is a shard's index: an open-addressing hash table of records keyed
// by their Session.ID, with linear probing and backward-shift deletion (no
// deletion markers). A slot is 16 bytes plus a one-byte hash tag (so that
// a probe dereferences a record only when the tags match) and the table is
// kept between 40 and 80 % full, about 21-43 bytes per record; a Go map keyed by string
// costs 33 bytes per slot at 44-88 % (38-75 bytes per record), and it
// needs the key's string header besides the record's own ID. Not safe for
// concurrent use: the shard's lock guards it.
type table struct {
	seed  maphash.Seed
	slots []slot  // len is 0 or a power of two
	tags  []uint8 // 8 bits of each slot's hash: a probe reads a record only when they match
	n     int
}

const tableMin = 8

// hash returns id's home slot and tag. The shard took the low bits of
// the same hash; the table uses the high ones.
func (t *table) hash(id string) (int, uint8) {
	h := maphash.String(t.seed, id)
	return int(h>>32) & (len(t.slots) - 1), uint8(h >> 24)
}

func (t *table) home(id string) int {
	i, _ := t.hash(id)
	return i
}

// find returns the index of id's slot, or -1.
func (t *table) find(id string) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	i, tag := t.hash(id)
	for ; ; i = (i + 1) & mask {
		s := t.slots[i].s
		if s == nil {
			return -1
		}
		if t.tags[i] == tag && s.ID == id {
			return i
		}
	}
}

// get returns id's slot (zero when absent) and whether there is one.
func (t *table) get(id string) (slot, bool) {
	if i := t.find(id); i >= 0 {
		return t.slots[i], true
	}
	return slot{}, false
}

// put stores sl (sl.s.ID is the key), replacing any slot under that ID.
func (t *table) put(sl slot) {
	if i := t.find(sl.s.ID); i >= 0 {
		t.slots[i] = sl
		return
	}
	if (t.n+1)*5 > len(t.slots)*4 {
		t.grow()
	}
	t.insert(sl)
	t.n++
}

func (t *table) insert(sl slot) {
	mask := len(t.slots) - 1
	i, tag := t.hash(sl.s.ID)
	for t.slots[i].s != nil {
		i = (i + 1) & mask
	}
	t.slots[i], t.tags[i] = sl, tag
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, max(tableMin, 2*len(old)))
	t.tags = make([]uint8, len(t.slots))
	for _, sl := range old {
		if sl.s != nil {
			t.insert(sl)
		}
	}
}

// del removes id's slot, if any.
func (t *table) del(id string) {
	i := t.find(id)
	if i < 0 {
		return
	}
	mask := len(t.slots) - 1
	// Backward shift: move each later slot of the probe run into the
	// hole when its home position allows it.
	for j := (i + 1) & mask; t.slots[j].s != nil; j = (j + 1) & mask {
		h := t.home(t.slots[j].s.ID)
		// Slot j may move to i unless its home lies cyclically in (i, j].
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			t.slots[i], t.tags[i] = t.slots[j], t.tags[j]
			i = j
		}
	}
	t.slots[i], t.tags[i] = slot{}, 0
	t.n--
}

// each calls fn with every record.
func (t *table) each(fn func(*Session)) {
	for _, sl := range t.slots {
		if sl.s != nil {
			fn(sl.s)
		}
	}
}
