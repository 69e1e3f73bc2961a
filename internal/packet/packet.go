// Package packet is the fixed header of multicast's datagrams: its
// layout, encoding, decoding and consistency checks. Package multicast
// seals and opens packets with it; hanode's end-to-end tests forge
// packets with it. It is not part of multicast's API: a MemNetwork drop
// filter sees a multicast.PacketInfo instead.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Wire format of one datagram (all integers big-endian):
//
//	offset size field
//	0      2    magic "HN"
//	2      1    version (2)
//	3      1    type (Type)
//	4      1    flags (Flags)
//	5      1    key id (keyring id of the cluster key that sealed it)
//	6      2    length of the sealed payload that follows the header
//	8      8    cluster id (hash of the cluster name)
//	16     16   sender id (UUID)
//	32     8    sequence number (data) or control counter (other types): the nonce counter
//	40     8    sender's highest data sequence number when the packet was sealed
//	48     2    fragment index
//	50     2    fragment count
//	52     8    timestamp: the sender's wall clock when it sealed the packet,
//	            Unix milliseconds (> 0)
//	60     ...  sealed payload: AES-256-GCM ciphertext and 16-byte tag
//
// The whole header is the AEAD's associated data, except the retransmit
// flag: a member resending a packet (its own or another member's) sends the
// original sealed bytes and only sets that bit.
//
// Version 2 added the timestamp, which makes the first packet a receiver
// accepts from a sender it has never seen provably fresh (multicast
// Config.MaxClockSkew). Version 1 was never released; a packet of another
// version is refused ("version"), members of different versions do not
// talk to each other.
const (
	// HeaderLen is the size of the fixed packet header.
	HeaderLen = 60
	// TagLen is the size of the authentication tag that follows the ciphertext.
	TagLen = 16
	// Version is the protocol version of this header (multicast.WireVersion).
	Version = 2

	magic0 = 'H'
	magic1 = 'N'
)

// Type is the type of a packet. Numbers are append-only.
type Type uint8

// Packet types.
const (
	TypeData    Type = 1 // a reliable broadcast message or fragment of one
	TypeControl Type = 2 // an unreliable control message (SendControl)
	TypeNak     Type = 3 // a retransmission request
	TypeAck     Type = 4 // a delivery acknowledgement (SendOptions.Ack)
	TypeStatus  Type = 5 // periodic status: highest sequence, delivered-up-to per sender
	TypePeers   Type = 6 // unicast mode: peer addresses a member learned (peers.go)
	maxType          = TypePeers
)

func (t Type) String() string {
	switch t {
	case TypeData:
		return "data"
	case TypeControl:
		return "control"
	case TypeNak:
		return "nak"
	case TypeAck:
		return "ack"
	case TypeStatus:
		return "status"
	case TypePeers:
		return "peers"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Flags are packet flag bits.
type Flags uint8

// Flag bits. Unknown bits are rejected.
const (
	FlagCompressed   Flags = 1 << 0 // data: the reassembled message is compressed (first byte names the codec)
	FlagFragment     Flags = 1 << 1 // data: one fragment of a multi-packet message
	FlagRetransmit   Flags = 1 << 2 // a resent packet; not authenticated, informational only
	FlagAckRequested Flags = 1 << 3 // data: receivers acknowledge delivery at once
	FlagAnyone       Flags = 1 << 4 // nak: any member holding the packets may answer
	knownFlags             = FlagCompressed | FlagFragment | FlagRetransmit | FlagAckRequested | FlagAnyone
)

// ErrMalformed is wrapped by every packet decoding error
// (multicast.ErrMalformed).
var ErrMalformed = errors.New("multicast: malformed packet")

// ErrVersion reports a packet of an unsupported protocol version
// (multicast.ErrVersion).
var ErrVersion = errors.New("multicast: unsupported protocol version")

// Header is the decoded fixed header of a packet.
type Header struct {
	Version   uint8     // protocol version of the sender (Version)
	Type      Type      // data, NAK, status, ack, control, ...
	Flags     Flags     // per-type bits (FlagAck, ...)
	KeyID     uint8     // which key of the ring sealed the packet
	Length    uint16    // sealed payload bytes after the header (ciphertext + tag)
	Cluster   [8]byte   // ClusterID of the cluster name: other clusters' packets are dropped
	Sender    uuid.UUID // member ID of the sender
	Seq       uint64    // the packet's number in the sender's stream (the AEAD nonce)
	HighSeq   uint64    // the sender's highest sequence number sent
	FragIndex uint16    // this fragment's index in its message
	FragCount uint16    // fragments of the message (1: not fragmented)
	Timestamp int64     // sender's wall clock at sealing, Unix milliseconds
}

// Append appends the encoded header to b.
func (h *Header) Append(b []byte) []byte {
	var a [HeaderLen]byte
	h.Put(&a)
	return append(b, a[:]...)
}

// Put encodes the header into a.
func (h *Header) Put(a *[HeaderLen]byte) {
	a[0], a[1] = magic0, magic1
	a[2] = h.Version
	a[3] = byte(h.Type)
	a[4] = byte(h.Flags)
	a[5] = h.KeyID
	binary.BigEndian.PutUint16(a[6:], h.Length)
	copy(a[8:16], h.Cluster[:])
	copy(a[16:32], h.Sender[:])
	binary.BigEndian.PutUint64(a[32:], h.Seq)
	binary.BigEndian.PutUint64(a[40:], h.HighSeq)
	binary.BigEndian.PutUint16(a[48:], h.FragIndex)
	binary.BigEndian.PutUint16(a[50:], h.FragCount)
	binary.BigEndian.PutUint64(a[52:], uint64(h.Timestamp))
}

// DecodeHeader decodes and checks the header of datagram b. It checks that
// the length field matches the datagram exactly and that the fields are
// consistent with each other; it does not authenticate anything.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), HeaderLen)
	}
	if b[0] != magic0 || b[1] != magic1 {
		return h, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	h.Version = b[2]
	if h.Version != Version {
		return h, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	h.Type = Type(b[3])
	h.Flags = Flags(b[4])
	h.KeyID = b[5]
	h.Length = binary.BigEndian.Uint16(b[6:])
	copy(h.Cluster[:], b[8:16])
	copy(h.Sender[:], b[16:32])
	h.Seq = binary.BigEndian.Uint64(b[32:])
	h.HighSeq = binary.BigEndian.Uint64(b[40:])
	h.FragIndex = binary.BigEndian.Uint16(b[48:])
	h.FragCount = binary.BigEndian.Uint16(b[50:])
	h.Timestamp = int64(binary.BigEndian.Uint64(b[52:]))
	if err := h.check(len(b) - HeaderLen); err != nil {
		return h, err
	}
	return h, nil
}

func (h *Header) check(rest int) error {
	switch {
	case h.Type == 0 || h.Type > maxType:
		return fmt.Errorf("%w: unknown type %d", ErrMalformed, h.Type)
	case h.Flags&^knownFlags != 0:
		return fmt.Errorf("%w: unknown flags %#x", ErrMalformed, uint8(h.Flags))
	case int(h.Length) != rest:
		return fmt.Errorf("%w: length field %d, %d bytes follow the header", ErrMalformed, h.Length, rest)
	case h.Length < TagLen:
		return fmt.Errorf("%w: payload shorter than the tag", ErrMalformed)
	case h.KeyID == 0:
		return fmt.Errorf("%w: key id 0", ErrMalformed)
	case h.Seq == 0:
		return fmt.Errorf("%w: sequence number 0", ErrMalformed)
	case h.Sender == uuid.Nil:
		return fmt.Errorf("%w: nil sender", ErrMalformed)
	case h.Timestamp <= 0:
		return fmt.Errorf("%w: timestamp %d", ErrMalformed, h.Timestamp)
	}
	if h.Type == TypeData {
		if h.HighSeq < h.Seq {
			return fmt.Errorf("%w: highest sequence below the packet's", ErrMalformed)
		}
		if h.Flags&FlagFragment != 0 {
			if h.FragCount < 2 || h.FragIndex >= h.FragCount {
				return fmt.Errorf("%w: fragment %d of %d", ErrMalformed, h.FragIndex, h.FragCount)
			}
			if uint64(h.FragIndex) >= h.Seq {
				return fmt.Errorf("%w: fragment index beyond the sequence start", ErrMalformed)
			}
		} else if h.FragIndex != 0 || h.FragCount != 1 {
			return fmt.Errorf("%w: fragment fields on an unfragmented packet", ErrMalformed)
		}
		return nil
	}
	if h.Flags&(FlagCompressed|FlagFragment|FlagAckRequested) != 0 {
		return fmt.Errorf("%w: data flags on a %s packet", ErrMalformed, h.Type)
	}
	if h.Flags&FlagAnyone != 0 && h.Type != TypeNak {
		return fmt.Errorf("%w: anyone flag on a %s packet", ErrMalformed, h.Type)
	}
	if h.FragIndex != 0 || h.FragCount != 1 {
		return fmt.Errorf("%w: fragment fields on a %s packet", ErrMalformed, h.Type)
	}
	return nil
}
