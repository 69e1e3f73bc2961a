package membership

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
)

// Wire format. Every payload starts with a protocol version byte and a
// message type byte. Type numbers are append-only: a number is never reused
// for another meaning. Fields of a type are append-only too: decoders ignore
// bytes after the fields they know, so a later release can add a field at
// the end without a version bump; a change that old decoders must not
// misread bumps the version instead.
//
//	all:       version u8 | type u8
//	heartbeat: name str | started i64 (Unix ns) | incarnation uvarint |
//	           view u64 | meta count uvarint, (key str, value str)... |
//	           suspicions count uvarint, (id [16] | incarnation uvarint)...
//	ping:      to [16] | seq uvarint | incarnation uvarint [| flags uvarint]
//	ping-req:  to [16] | seq uvarint | target [16] | incarnation uvarint [| flags uvarint]
//	ack:       to [16] | seq uvarint | target [16] | incarnation uvarint
//	leave:     incarnation uvarint
//
// str is a uvarint length followed by that many bytes; integers of fixed
// width are big-endian. "to" names the intended recipient of a unicast
// message, so that a transport which carries unicast over the group cannot
// make a member act on a message meant for another.
//
// flags (added without a version bump: older decoders ignore it, and a
// ping without it is a suspicion, as older senders meant): bit 0 set
// means a probe of a member that went quiet but is not suspected yet, so
// the target answers without refuting.

// ProtocolVersion is the wire format version this package writes. Decoders
// accept versions MinProtocolVersion through ProtocolVersion.
const (
	ProtocolVersion    = 1
	MinProtocolVersion = 1
)

// Limits of the wire format. A heartbeat at every limit fits in
// MaxPayloadSize, which leaves room for the transport's header and seal in a
// 1400-byte datagram.
const (
	MaxPayloadSize  = 1200 // bytes in one membership payload
	MaxNameLen      = 64   // bytes in a member name
	MaxMetaKeys     = 16   // keys in a member's Meta
	MaxMetaKeyLen   = 64   // bytes in one Meta key
	MaxMetaValueLen = 256  // bytes in one Meta value
	MaxMetaSize     = 512  // bytes in all Meta keys and values together
	MaxSuspicions   = 16   // suspicions carried by one heartbeat
)

type msgType uint8

// flagProbe marks a ping (or ping-req) that probes a quiet member before
// any suspicion: the target acks without refuting.
const flagProbe = 1

// Message type numbers: append-only.
const (
	typeHeartbeat msgType = 1
	typePing      msgType = 2
	typePingReq   msgType = 3
	typeAck       msgType = 4
	typeLeave     msgType = 5
)

// suspicion is one entry of a heartbeat's suspicion list: the sender
// suspects, or has declared dead, member ID at incarnation Incarnation.
type suspicion struct {
	ID          uuid.UUID
	Incarnation uint64
}

// message is the decoded form of any payload; the fields a type does not
// use are zero.
type message struct {
	Type        msgType
	To          uuid.UUID // ping, ping-req, ack
	Seq         uint32    // ping, ping-req, ack
	Target      uuid.UUID // ping-req, ack
	Incarnation uint64    // all but heartbeat's suspicions: see the format above
	Flags       uint64    // ping, ping-req: flagProbe
	Name        string    // heartbeat
	Started     time.Time // heartbeat
	View        uint64    // heartbeat
	Meta        map[string]string
	Suspicions  []suspicion
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encode appends m to b. It does not check limits: the Machine only builds
// messages within them, and tests check that encode and decode agree.
func (m *message) encode(b []byte) []byte {
	b = append(b, ProtocolVersion, byte(m.Type))
	switch m.Type {
	case typeHeartbeat:
		b = appendString(b, m.Name)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Started.UnixNano()))
		b = binary.AppendUvarint(b, m.Incarnation)
		b = binary.BigEndian.AppendUint64(b, m.View)
		b = binary.AppendUvarint(b, uint64(len(m.Meta)))
		for _, k := range sortedKeys(m.Meta) {
			b = appendString(b, k)
			b = appendString(b, m.Meta[k])
		}
		b = binary.AppendUvarint(b, uint64(len(m.Suspicions)))
		for _, s := range m.Suspicions {
			b = append(b, s.ID[:]...)
			b = binary.AppendUvarint(b, s.Incarnation)
		}
	case typePing:
		b = append(b, m.To[:]...)
		b = binary.AppendUvarint(b, uint64(m.Seq))
		b = binary.AppendUvarint(b, m.Incarnation)
		b = binary.AppendUvarint(b, m.Flags)
	case typePingReq, typeAck:
		b = append(b, m.To[:]...)
		b = binary.AppendUvarint(b, uint64(m.Seq))
		b = append(b, m.Target[:]...)
		b = binary.AppendUvarint(b, m.Incarnation)
		if m.Type == typePingReq {
			b = binary.AppendUvarint(b, m.Flags)
		}
	case typeLeave:
		b = binary.AppendUvarint(b, m.Incarnation)
	}
	return b
}

// reader is a bounds-checked cursor; the first failure sticks in err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uuid(what string) uuid.UUID {
	var id uuid.UUID
	if r.err != nil || len(r.b) < len(id) {
		r.fail(what)
		return id
	}
	copy(id[:], r.b)
	r.b = r.b[len(id):]
	return id
}

func (r *reader) string(what string, max int) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail(what + " length")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) seq() uint32 {
	v := r.uvarint("seq")
	if v > math.MaxUint32 {
		r.fail("seq")
	}
	return uint32(v)
}

// decode parses one payload. It never panics; every failure wraps
// ErrMalformed, ErrVersion, ErrUnknownType or ErrTooLarge.
func decode(b []byte) (*message, error) {
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	r := &reader{b: b}
	v := r.byte("version")
	t := msgType(r.byte("type"))
	if r.err != nil {
		return nil, r.err
	}
	if v < MinProtocolVersion || v > ProtocolVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	m := &message{Type: t}
	switch t {
	case typeHeartbeat:
		m.Name = r.string("name", MaxNameLen)
		m.Started = time.Unix(0, int64(r.u64("started")))
		m.Incarnation = r.uvarint("incarnation")
		m.View = r.u64("view")
		n := r.uvarint("meta count")
		if n > MaxMetaKeys {
			r.fail("meta count")
		}
		if r.err == nil && n > 0 {
			m.Meta = make(map[string]string, n)
			size := 0
			for i := uint64(0); i < n && r.err == nil; i++ {
				k := r.string("meta key", MaxMetaKeyLen)
				val := r.string("meta value", MaxMetaValueLen)
				if _, dup := m.Meta[k]; dup || k == "" {
					r.fail("empty or duplicate meta key")
				}
				m.Meta[k] = val
				size += len(k) + len(val)
			}
			if size > MaxMetaSize {
				r.fail("meta size")
			}
		}
		n = r.uvarint("suspicion count")
		if n > MaxSuspicions {
			r.fail("suspicion count")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			id := r.uuid("suspicion id")
			inc := r.uvarint("suspicion incarnation")
			m.Suspicions = append(m.Suspicions, suspicion{ID: id, Incarnation: inc})
		}
		if r.err == nil {
			if err := checkName(m.Name); err != nil {
				r.err = fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	case typePing:
		m.To = r.uuid("to")
		m.Seq = r.seq()
		m.Incarnation = r.uvarint("incarnation")
		if r.err == nil && len(r.b) > 0 {
			m.Flags = r.uvarint("flags")
		}
	case typePingReq, typeAck:
		m.To = r.uuid("to")
		m.Seq = r.seq()
		m.Target = r.uuid("target")
		m.Incarnation = r.uvarint("incarnation")
		if t == typePingReq && r.err == nil && len(r.b) > 0 {
			m.Flags = r.uvarint("flags")
		}
	case typeLeave:
		m.Incarnation = r.uvarint("incarnation")
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// checkName reports whether s may be a member name (ValidName).
func checkName(s string) error {
	if !ValidName(s) {
		return fmt.Errorf("name %q is not a valid node name (1 to %d bytes of ASCII letters, digits, '-' and '_')", s, MaxNameLen)
	}
	return nil
}

// checkMeta reports whether meta is within the Meta limits.
func checkMeta(meta map[string]string) error {
	if len(meta) > MaxMetaKeys {
		return fmt.Errorf("%w: %d keys, at most %d", ErrMetaTooLarge, len(meta), MaxMetaKeys)
	}
	size := 0
	for k, v := range meta {
		if k == "" || len(k) > MaxMetaKeyLen {
			return fmt.Errorf("%w: key %q must have 1 to %d bytes", ErrMetaTooLarge, k, MaxMetaKeyLen)
		}
		if len(v) > MaxMetaValueLen {
			return fmt.Errorf("%w: value of %q has %d bytes, at most %d", ErrMetaTooLarge, k, len(v), MaxMetaValueLen)
		}
		size += len(k) + len(v)
	}
	if size > MaxMetaSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrMetaTooLarge, size, MaxMetaSize)
	}
	return nil
}
