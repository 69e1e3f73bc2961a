package multicast

import (
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

// The packet header (layout, encoding, checks) is package
// internal/packet; packet.go there documents the wire format.
const (
	// HeaderLen is the size of the fixed packet header.
	HeaderLen = packet.HeaderLen
	// TagLen is the size of the authentication tag that follows the ciphertext.
	TagLen = packet.TagLen
	// Overhead is the per-datagram overhead of header and tag.
	Overhead = HeaderLen + TagLen
	// WireVersion is the protocol version this package speaks. It equals
	// packet.Version (TestWireVersion); the literal stays in this file,
	// where upgrade tests read it from a release's source.
	WireVersion = 2
	// MaxUDPPayload is the largest IPv4 UDP payload.
	MaxUDPPayload = 65507
)

// ErrMalformed is wrapped by every packet decoding error.
var ErrMalformed = packet.ErrMalformed

// ErrVersion reports a packet of an unsupported protocol version.
var ErrVersion = packet.ErrVersion

// Payload encodings of the non-data packet types.
//
// nak:    target sender (16) | range count (2) | count × (first seq (8) | last seq (8))
// ack:    target sender (16) | delivered-up-to (8)
// status: lowest retransmittable seq (8) | entry count (2) | count × (sender (16) | delivered-up-to (8))

type seqRange struct{ first, last uint64 }

type nakBody struct {
	target uuid.UUID
	ranges []seqRange
}

const maxNakRanges = 64

func (n *nakBody) append(b []byte) []byte {
	b = append(b, n.target[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(n.ranges)))
	for _, r := range n.ranges {
		b = binary.BigEndian.AppendUint64(b, r.first)
		b = binary.BigEndian.AppendUint64(b, r.last)
	}
	return b
}

func decodeNak(b []byte) (nakBody, error) {
	var n nakBody
	if len(b) < 18 {
		return n, fmt.Errorf("%w: short nak", ErrMalformed)
	}
	copy(n.target[:], b)
	c := int(binary.BigEndian.Uint16(b[16:]))
	b = b[18:]
	if c == 0 || c > maxNakRanges || len(b) != 16*c {
		return n, fmt.Errorf("%w: nak with %d ranges in %d bytes", ErrMalformed, c, len(b))
	}
	n.ranges = make([]seqRange, c)
	for i := range n.ranges {
		r := seqRange{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
		if r.first == 0 || r.last < r.first {
			return n, fmt.Errorf("%w: nak range %d-%d", ErrMalformed, r.first, r.last)
		}
		n.ranges[i] = r
		b = b[16:]
	}
	return n, nil
}

type ackBody struct {
	target uuid.UUID
	upTo   uint64
}

func (a *ackBody) append(b []byte) []byte {
	b = append(b, a.target[:]...)
	return binary.BigEndian.AppendUint64(b, a.upTo)
}

func decodeAck(b []byte) (ackBody, error) {
	var a ackBody
	if len(b) != 24 {
		return a, fmt.Errorf("%w: ack of %d bytes", ErrMalformed, len(b))
	}
	copy(a.target[:], b)
	a.upTo = binary.BigEndian.Uint64(b[16:])
	return a, nil
}

type statusEntry struct {
	sender    uuid.UUID
	delivered uint64
}

type statusBody struct {
	low     uint64
	entries []statusEntry
}

const statusEntryLen = 24

func (s *statusBody) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, s.low)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.entries)))
	for _, e := range s.entries {
		b = append(b, e.sender[:]...)
		b = binary.BigEndian.AppendUint64(b, e.delivered)
	}
	return b
}

func decodeStatus(b []byte) (statusBody, error) {
	var s statusBody
	if len(b) < 10 {
		return s, fmt.Errorf("%w: short status", ErrMalformed)
	}
	s.low = binary.BigEndian.Uint64(b)
	c := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if len(b) != statusEntryLen*c {
		return s, fmt.Errorf("%w: status with %d entries in %d bytes", ErrMalformed, c, len(b))
	}
	s.entries = make([]statusEntry, c)
	for i := range s.entries {
		copy(s.entries[i].sender[:], b)
		s.entries[i].delivered = binary.BigEndian.Uint64(b[16:])
		b = b[statusEntryLen:]
	}
	return s, nil
}
