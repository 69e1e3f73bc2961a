package replicator

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/hanode/hanode/internal/wire"
)

// The codec is unexported: hanode's runtimes (replicator/cluster, the
// benchmarks) reach it through package internal/wire, users never need
// it.
func init() {
	wire.Install(wire.Codec[Delta, Session]{
		AppendBatch:     appendBatch,
		DecodeBatch:     decodeBatch,
		DecodeBatchInto: decodeBatchInto,
		DecodeBatchFor:  decodeBatchFor,
		AppendSession:   appendSession,
		DecodeSession:   decodeSession,
	})
}

// Wire and storage encoding of deltas and session records: uvarints for
// unsigned numbers and lengths, zig-zag varints for times, length-prefixed
// strings. Decoders check every length against the remaining input before
// allocating, so hostile input cannot make them allocate more than it
// justifies, and reject anything malformed with an error wrapping
// ErrCorrupt.
//
// Delta:   id, owner, epoch, version, hlc, created, lastAccess,
//          idleTimeout, deadline, nops, nops × (kind byte, key, value)
// Batch:   version byte (batchVersion), ndeltas, ndeltas × Delta
// Session: version byte (sessionVersion), id, flags byte
//          (bit 0 destroyed);
//          destroyed: reason byte, renamedTo;
//          live: owner, epoch, version, created, lastAccess, idleTimeout,
//          deadline, principal, principalAt stamp, nattrs,
//          nattrs × (key, flags byte (bit 0 deleted), value unless
//          deleted, stamp)
// Stamp:   epoch, hlc, node; node is encoded as a uvarint 0 for "same as
//          the session's owner", else len+1 and the bytes.

// Format versions and decoding limits.
const (
	batchVersion   = 1
	sessionVersion = 1

	maxKeyLen      = 4 << 10  // longest ID, attribute name, node name or principal
	maxValueLen    = 16 << 20 // longest attribute value
	maxOps         = 1 << 16  // most ops in one delta
	maxBatchDeltas = 1 << 16  // most deltas in one batch
	maxAttrs       = 1 << 20  // most attributes in one session record
)

// minimum encoded sizes, used to bound counts by the remaining input
const (
	minOpLen    = 3  // kind, empty key, empty value
	minDeltaLen = 10 // two empty strings and eight zero numbers
	minAttrLen  = 5  // empty key, flags, three-field stamp (a tombstone has no value)
)

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendDelta appends the encoding of d to b and returns the extended
// slice.
func appendDelta(b []byte, d *Delta) []byte {
	b = appendStr(b, d.ID)
	b = appendStr(b, d.Owner)
	b = binary.AppendUvarint(b, uint64(d.Epoch))
	b = binary.AppendUvarint(b, d.Version)
	b = binary.AppendUvarint(b, d.HLC)
	b = binary.AppendVarint(b, d.Created)
	b = binary.AppendVarint(b, d.LastAccess)
	b = binary.AppendVarint(b, d.IdleTimeout)
	b = binary.AppendVarint(b, d.Deadline)
	b = binary.AppendUvarint(b, uint64(len(d.Ops)))
	for i := range d.Ops {
		op := &d.Ops[i]
		b = append(b, byte(op.Kind))
		b = appendStr(b, op.Key)
		b = appendBytes(b, op.Value)
	}
	return b
}

// deltaSize returns the length of d's encoding.
func deltaSize(d *Delta) int {
	n := strSize(d.ID) + strSize(d.Owner) + uvarintSize(uint64(d.Epoch)) + uvarintSize(d.Version) +
		uvarintSize(d.HLC) + varintSize(d.Created) + varintSize(d.LastAccess) +
		varintSize(d.IdleTimeout) + varintSize(d.Deadline) + uvarintSize(uint64(len(d.Ops)))
	for i := range d.Ops {
		n += 1 + strSize(d.Ops[i].Key) + strSize(string(d.Ops[i].Value))
	}
	return n
}

func uvarintSize(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintSize(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintSize(u)
}

func strSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

// decoder reads from b; the first error sticks.
type decoder struct {
	b   []byte
	off int
	err error
	ids *Replica // when set, a delta's ID is this replica's copy when it holds the record
	// reuse: the deltas of the destination slice are overwritten instead
	// of allocated anew (decodeBatchFor)
	reuse []*Delta
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad %s at offset %d", what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad %s at offset %d", what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated %s at offset %d", what, d.off)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// raw returns the next length-prefixed field without copying.
func (d *decoder) raw(what string, max int) []byte {
	n := d.uvarint(what) // the error message names the field; no allocation here
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("%s length %d over limit %d", what, n, max)
		return nil
	}
	if n > uint64(d.left()) {
		d.fail("truncated %s: length %d, %d bytes left", what, n, d.left())
		return nil
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) str(what string, max int) string {
	v := d.raw(what, max)
	if len(v) == 0 {
		return ""
	}
	return string(v)
}

// bytes returns a copy of the next length-prefixed field, nil when empty.
func (d *decoder) bytes(what string, max int) []byte {
	v := d.raw(what, max)
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) count(what string, max, minEach int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.fail("%s %d over limit %d", what, n, max)
		return 0
	}
	if n*uint64(minEach) > uint64(d.left()) {
		d.fail("%s %d cannot fit in %d bytes", what, n, d.left())
		return 0
	}
	return int(n)
}

func (d *decoder) u32(what string) uint32 {
	v := d.uvarint(what)
	if v > 1<<32-1 {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	return uint32(v)
}

// deltaWithOps holds a delta and room for its first ops: decoding a
// small delta is one allocation for both.
type deltaWithOps struct {
	d   Delta
	ops [2]Op
}

// interned returns the next length-prefixed field as a string from t,
// allocating only for a string t does not hold yet.
func (d *decoder) interned(what string, max int, t *internTable) string {
	v := d.raw(what, max)
	if len(v) == 0 {
		return ""
	}
	return t.get(v)
}

// id returns the next length-prefixed field, a session ID: the string of
// d.ids's record when it holds one under that ID (no allocation), a copy
// otherwise.
func (d *decoder) id(what string, max int) string {
	v := d.raw(what, max)
	if len(v) == 0 {
		return ""
	}
	if d.ids != nil {
		if id := d.ids.heldID(v); id != "" {
			return id
		}
	}
	return string(v)
}

func (d *decoder) delta() *Delta { return d.deltaInto(nil) }

// deltaInto decodes the next delta into old (its Ops array too, when
// large enough), or into a new Delta when old is nil.
func (d *decoder) deltaInto(old *Delta) *Delta {
	// Peek at the op count to size the allocation: it follows the fixed
	// fields, so decode those first into a temporary.
	var hd Delta
	hd.ID = d.id("session id", maxKeyLen)
	hd.Owner = d.interned("owner", maxKeyLen, &ownerNames)
	hd.Epoch = d.u32("epoch")
	hd.Version = d.uvarint("version")
	hd.HLC = d.uvarint("hlc")
	hd.Created = d.varint("created")
	hd.LastAccess = d.varint("last access")
	hd.IdleTimeout = d.varint("idle timeout")
	hd.Deadline = d.varint("deadline")
	n := d.count("op count", maxOps, minOpLen)
	if d.err != nil {
		return nil
	}
	var dl *Delta
	if old != nil {
		ops := old.Ops[:0]
		*old = hd
		dl = old
		if n <= cap(ops) {
			dl.Ops = ops[:n]
		} else {
			dl.Ops = make([]Op, n)
		}
	} else if n <= len(deltaWithOps{}.ops) {
		x := &deltaWithOps{d: hd}
		dl = &x.d
		if n > 0 {
			dl.Ops = x.ops[:n:n]
		}
	} else {
		dl = new(Delta)
		*dl = hd
		dl.Ops = make([]Op, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		op := &dl.Ops[i]
		k := OpKind(d.byte("op kind"))
		if d.err == nil && (k < OpSet || k > OpPrincipal) {
			d.fail("unknown op kind %d", k)
		}
		op.Kind = k
		if k == OpRename {
			op.Key = d.str("op key", maxKeyLen) // a session ID: not worth interning
		} else {
			op.Key = d.interned("op key", maxKeyLen, &attrKeys)
		}
		op.Value = d.bytes("op value", maxValueLen)
	}
	if d.err != nil {
		return nil
	}
	return dl
}

// decodeDelta decodes one delta from the front of b and returns it with
// the number of bytes read. The delta does not alias b.
func decodeDelta(b []byte) (*Delta, int, error) {
	d := decoder{b: b}
	dl := d.delta()
	if d.err != nil {
		return nil, 0, d.err
	}
	return dl, d.off, nil
}

// appendBatch appends a batch of deltas (version byte, count, deltas) to b.
func appendBatch(b []byte, ds []*Delta) []byte {
	b = append(b, batchVersion)
	b = binary.AppendUvarint(b, uint64(len(ds)))
	for _, d := range ds {
		b = appendDelta(b, d)
	}
	return b
}

// decodeBatch decodes a batch that fills all of b. Trailing bytes are an
// error. The deltas do not alias b.
func decodeBatch(b []byte) ([]*Delta, error) {
	return decodeBatchInto(nil, b)
}

// decodeBatchInto is decodeBatch appending to dst[:0], so that a caller
// decoding batch after batch (a receive loop) reuses one slice. Nothing is
// appended when b is malformed.
func decodeBatchInto(dst []*Delta, b []byte) ([]*Delta, error) {
	return decodeDeltas(decoder{b: b}, dst)
}

// decodeBatchFor is decodeBatchInto for deltas about to be applied to
// replica (a *Replica): a delta of a session it holds (tombstones
// included) shares the replica's string of its ID instead of allocating
// one, and the Deltas dst holds up to its capacity (the earlier batches')
// are overwritten instead of allocated anew, so the caller must be done
// with them: a receive loop that applies each batch before decoding the
// next (Apply keeps no reference to a delta, only to its op values).
func decodeBatchFor(replica any, dst []*Delta, b []byte) ([]*Delta, error) {
	return decodeDeltas(decoder{b: b, ids: replica.(*Replica), reuse: dst[:cap(dst)]}, dst)
}

func decodeDeltas(d decoder, dst []*Delta) ([]*Delta, error) {
	if v := d.byte("batch version"); d.err == nil && v != batchVersion {
		return nil, fmt.Errorf("%w: batch version %d, want %d", ErrCorrupt, v, batchVersion)
	}
	n := d.count("delta count", maxBatchDeltas, minDeltaLen)
	if d.err != nil {
		return nil, d.err
	}
	ds := dst[:0]
	for i := 0; i < n; i++ {
		var old *Delta
		if i < len(d.reuse) {
			old = d.reuse[i]
		}
		dl := d.deltaInto(old)
		if d.err != nil {
			clear(ds)
			return dst[:0], fmt.Errorf("delta %d: %w", i, d.err)
		}
		ds = append(ds, dl)
	}
	if d.left() != 0 {
		clear(ds)
		return dst[:0], fmt.Errorf("%w: %d trailing bytes after batch", ErrCorrupt, d.left())
	}
	return ds, nil
}

func appendStamp(b []byte, s Stamp, owner string) []byte {
	b = binary.AppendUvarint(b, uint64(s.Epoch))
	b = binary.AppendUvarint(b, s.HLC)
	if s.Node == owner {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Node))+1)
	return append(b, s.Node...)
}

// appendSession appends the encoding of a full session record to b. A
// tombstone is encoded with its ID, Reason and RenamedTo only.
func appendSession(b []byte, s *Session) []byte {
	b = append(b, sessionVersion)
	b = appendStr(b, s.ID)
	if s.Destroyed {
		b = append(b, 1, byte(s.Reason))
		return appendStr(b, s.RenamedTo)
	}
	b = append(b, 0)
	b = appendStr(b, s.Owner)
	b = binary.AppendUvarint(b, uint64(s.Epoch))
	b = binary.AppendUvarint(b, s.Version)
	b = binary.AppendVarint(b, s.Created)
	b = binary.AppendVarint(b, s.LastAccess)
	b = binary.AppendVarint(b, s.IdleTimeout)
	b = binary.AppendVarint(b, s.Deadline)
	b = appendStr(b, s.Principal)
	b = appendStamp(b, s.PrincipalAt, s.Owner)
	b = binary.AppendUvarint(b, uint64(s.Attrs.Len()))
	for k, a := range s.Attrs.All() {
		b = appendStr(b, k)
		if a.Deleted {
			b = append(b, 1)
		} else {
			b = append(b, 0)
			b = appendBytes(b, a.Value)
		}
		b = appendStamp(b, a.Stamp, s.Owner)
	}
	return b
}

func (d *decoder) stamp(owner string, last *string) Stamp {
	var s Stamp
	s.Epoch = d.u32("stamp epoch")
	s.HLC = d.uvarint("stamp hlc")
	n := d.uvarint("stamp node length")
	if d.err != nil {
		return s
	}
	if n == 0 {
		s.Node = owner
		return s
	}
	n--
	if n > maxKeyLen || n > uint64(d.left()) {
		d.fail("bad stamp node length %d", n)
		return s
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	if string(v) == *last { // no allocation for repeated writers
		s.Node = *last
	} else {
		s.Node = string(v)
		*last = s.Node
	}
	return s
}

// decodeSession decodes one session record from the front of b and
// returns it with the number of bytes read. The record does not alias b.
func decodeSession(b []byte) (*Session, int, error) {
	d := decoder{b: b}
	s := d.session()
	if d.err != nil {
		return nil, 0, d.err
	}
	return s, d.off, nil
}

func (d *decoder) session() *Session {
	if v := d.byte("session version"); d.err == nil && v != sessionVersion {
		d.fail("session record version %d, want %d", v, sessionVersion)
	}
	s := &Session{}
	s.ID = d.str("session id", maxKeyLen)
	flags := d.byte("session flags")
	if d.err != nil {
		return nil
	}
	if s.ID == "" {
		d.fail("session without id")
		return nil
	}
	if flags > 1 {
		d.fail("unknown session flags %#x", flags)
		return nil
	}
	if flags == 1 {
		s.Destroyed = true
		s.Reason = DestroyReason(d.byte("destroy reason"))
		s.RenamedTo = d.str("renamed to", maxKeyLen)
		if d.err == nil && (s.Reason < ReasonInvalidated || s.Reason > ReasonRenamed) {
			d.fail("unknown destroy reason %d", s.Reason)
		}
		if d.err == nil && s.Reason == ReasonRenamed && s.RenamedTo == "" {
			d.fail("renamed tombstone without target")
		}
		if d.err != nil {
			return nil
		}
		return s
	}
	s.Owner = d.str("owner", maxKeyLen)
	s.Epoch = d.u32("epoch")
	s.Version = d.uvarint("version")
	s.Created = d.varint("created")
	s.LastAccess = d.varint("last access")
	s.IdleTimeout = d.varint("idle timeout")
	s.Deadline = d.varint("deadline")
	s.Principal = d.str("principal", maxKeyLen)
	last := s.Owner
	s.PrincipalAt = d.stamp(s.Owner, &last)
	n := d.count("attribute count", maxAttrs, minAttrLen)
	if d.err != nil {
		return nil
	}
	es := make([]attrEntry, 0, n)
	sorted := true
	for i := 0; i < n; i++ {
		k := d.str("attribute key", maxKeyLen)
		var a Attr
		switch f := d.byte("attribute flags"); f {
		case 0:
			a.Value = d.bytes("attribute value", maxValueLen)
		case 1:
			a.Deleted = true
		default:
			d.fail("unknown attribute flags %#x", f)
		}
		a.Stamp = d.stamp(s.Owner, &last)
		if d.err != nil {
			return nil
		}
		if len(es) > 0 && k <= es[len(es)-1].key {
			sorted = false
		}
		es = append(es, entryOf(k, &a))
	}
	// Records of this version sort their attributes; older writers sent
	// them in map order.
	if !sorted {
		slices.SortFunc(es, func(a, b attrEntry) int { return strings.Compare(a.key, b.key) })
	}
	for i := 1; i < len(es); i++ {
		if es[i].key == es[i-1].key {
			d.fail("duplicate attribute %q", es[i].key)
			return nil
		}
	}
	s.Attrs = attrsOf(es)
	s.Owner = internNode(s.Owner)
	return s
}
