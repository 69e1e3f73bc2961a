package main

// Wire format of `hanode probe` datagrams. They are not hanode cluster
// traffic: they start with their own magic ("HNPB"), go to their own port
// (the group's port + 1 by default) and carry nothing secret: names,
// counters, timestamps and the sender's interface address. With
// --key-file they are authenticated (HMAC-SHA256 with a key derived from
// the cluster key), never encrypted.
//
// Layout (big endian):
//
//	0   magic "HNPB"
//	4   version (1)
//	5   kind: 1 announce (multicast), 2 echo request, 3 echo reply (unicast)
//	6   flags: bit 0 authenticated (a 32-byte HMAC trails the packet)
//	7   key id (when authenticated)
//	8   instance id (uint64, random per run)
//	16  seq: number of the sender's last multicast announce
//	20  sent at (unix nanoseconds, sender's clock)
//	28  echo id (echo request and reply)
//	32  echoed sent-at (echo reply: the request's sent-at)
//	40  sender's interface address (4 bytes) and prefix length (1 byte)
//	45  sender's TTL
//	46  name length, name (at most 64 bytes)
//	..  report count (at most 32), reports of 17 bytes each:
//	    instance id (8), multicast announces received (4),
//	    announces expected (4), flags (1, bit 0: heard over unicast)
//	..  HMAC-SHA256 of everything before it (when authenticated)

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

const (
	probeMagic      = "HNPB"
	probeVersion    = 1
	probeMaxName    = 64
	probeMaxReports = 32
	probeMACSize    = sha256.Size
	probeFixedSize  = 46
	probeReportSize = 17
	// probeMaxSize bounds every probe datagram.
	probeMaxSize = probeFixedSize + 1 + probeMaxName + 1 + probeMaxReports*probeReportSize + probeMACSize
)

type probeKind uint8

const (
	kindAnnounce  probeKind = 1
	kindEchoReq   probeKind = 2
	kindEchoReply probeKind = 3
)

func (k probeKind) String() string {
	switch k {
	case kindAnnounce:
		return "announce"
	case kindEchoReq:
		return "echo-request"
	case kindEchoReply:
		return "echo-reply"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

const flagAuth = 1

// probeHeard is what the sender reports about one instance it hears.
type probeHeard struct {
	Instance uint64
	Received uint32 // multicast announces received
	Expected uint32 // announces the sender could have received
	Unicast  bool   // the sender hears it over unicast
}

// probePacket is one decoded probe datagram.
type probePacket struct {
	Kind       probeKind
	Auth       bool
	KeyID      uint8
	Instance   uint64
	Seq        uint32
	SentAt     int64
	EchoID     uint32
	EchoSentAt int64
	Addr       netip.Addr // sender's IPv4 interface address
	PrefixLen  uint8
	TTL        uint8
	Name       string
	Heard      []probeHeard
}

var errProbePacket = errors.New("not a probe packet")

// probeAuth authenticates probes with keys derived from the cluster key
// file. A nil *probeAuth means no authentication.
type probeAuth struct {
	primary uint8
	keys    map[uint8][]byte
}

// deriveProbeKey derives the probe's HMAC key from a cluster key, so the
// cluster key itself is never used for another purpose.
func deriveProbeKey(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hanode probe v1"))
	return m.Sum(nil)
}

// encodeProbe appends p to b (authenticating it when a is not nil).
func encodeProbe(b []byte, p *probePacket, a *probeAuth) ([]byte, error) {
	if len(p.Name) > probeMaxName {
		return nil, fmt.Errorf("probe: name longer than %d bytes", probeMaxName)
	}
	if len(p.Heard) > probeMaxReports {
		return nil, fmt.Errorf("probe: more than %d reports", probeMaxReports)
	}
	if p.Kind < kindAnnounce || p.Kind > kindEchoReply {
		return nil, fmt.Errorf("probe: bad kind %d", p.Kind)
	}
	start := len(b)
	b = append(b, probeMagic...)
	var flags, keyID uint8
	if a != nil {
		flags |= flagAuth
		keyID = a.primary
	}
	b = append(b, probeVersion, byte(p.Kind), flags, keyID)
	b = binary.BigEndian.AppendUint64(b, p.Instance)
	b = binary.BigEndian.AppendUint32(b, p.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(p.SentAt))
	b = binary.BigEndian.AppendUint32(b, p.EchoID)
	b = binary.BigEndian.AppendUint64(b, uint64(p.EchoSentAt))
	var a4 [4]byte
	if p.Addr.Is4() {
		a4 = p.Addr.As4()
	}
	b = append(b, a4[:]...)
	b = append(b, p.PrefixLen, p.TTL, byte(len(p.Name)))
	b = append(b, p.Name...)
	b = append(b, byte(len(p.Heard)))
	for _, h := range p.Heard {
		b = binary.BigEndian.AppendUint64(b, h.Instance)
		b = binary.BigEndian.AppendUint32(b, h.Received)
		b = binary.BigEndian.AppendUint32(b, h.Expected)
		var f byte
		if h.Unicast {
			f = 1
		}
		b = append(b, f)
	}
	if a != nil {
		m := hmac.New(sha256.New, a.keys[a.primary])
		m.Write(b[start:])
		b = m.Sum(b)
	}
	return b, nil
}

// Errors of decodeProbe for authentication, told apart so that the
// report can count them.
var (
	errProbeUnauthenticated = errors.New("probe packet is not authenticated but --key-file is set")
	errProbeUnknownKey      = errors.New("probe packet authenticated with a key id we do not hold")
	errProbeBadMAC          = errors.New("probe packet fails authentication")
	errProbeNoKey           = errors.New("probe packet is authenticated but no --key-file is set")
)

// decodeProbe parses and authenticates one datagram. It never panics on
// any input (FuzzDecodeProbe).
func decodeProbe(b []byte, a *probeAuth) (*probePacket, error) {
	if len(b) < probeFixedSize+2 || string(b[:4]) != probeMagic {
		return nil, errProbePacket
	}
	if b[4] != probeVersion {
		return nil, fmt.Errorf("%w: version %d", errProbePacket, b[4])
	}
	p := &probePacket{Kind: probeKind(b[5]), KeyID: b[7]}
	if p.Kind < kindAnnounce || p.Kind > kindEchoReply {
		return nil, fmt.Errorf("%w: kind %d", errProbePacket, b[5])
	}
	if b[6]&^flagAuth != 0 {
		return nil, fmt.Errorf("%w: flags %#x", errProbePacket, b[6])
	}
	p.Auth = b[6]&flagAuth != 0
	body := b
	if p.Auth {
		if len(b) < probeFixedSize+2+probeMACSize {
			return nil, fmt.Errorf("%w: short", errProbePacket)
		}
		body = b[:len(b)-probeMACSize]
	} else if p.KeyID != 0 {
		return nil, fmt.Errorf("%w: key id without authentication", errProbePacket)
	}
	p.Instance = binary.BigEndian.Uint64(body[8:])
	p.Seq = binary.BigEndian.Uint32(body[16:])
	p.SentAt = int64(binary.BigEndian.Uint64(body[20:]))
	p.EchoID = binary.BigEndian.Uint32(body[28:])
	p.EchoSentAt = int64(binary.BigEndian.Uint64(body[32:]))
	p.Addr = netip.AddrFrom4([4]byte(body[40:44]))
	p.PrefixLen, p.TTL = body[44], body[45]
	if p.PrefixLen > 32 {
		return nil, fmt.Errorf("%w: prefix length %d", errProbePacket, p.PrefixLen)
	}
	rest := body[46:]
	n := int(rest[0])
	if n > probeMaxName || len(rest) < 1+n+1 {
		return nil, fmt.Errorf("%w: name", errProbePacket)
	}
	p.Name = string(rest[1 : 1+n])
	rest = rest[1+n:]
	count := int(rest[0])
	rest = rest[1:]
	if count > probeMaxReports || len(rest) != count*probeReportSize {
		return nil, fmt.Errorf("%w: reports", errProbePacket)
	}
	if count > 0 {
		p.Heard = make([]probeHeard, count)
	}
	for i := range p.Heard {
		r := rest[i*probeReportSize:]
		if r[16] > 1 {
			return nil, fmt.Errorf("%w: report flags", errProbePacket)
		}
		p.Heard[i] = probeHeard{
			Instance: binary.BigEndian.Uint64(r),
			Received: binary.BigEndian.Uint32(r[8:]),
			Expected: binary.BigEndian.Uint32(r[12:]),
			Unicast:  r[16] == 1,
		}
	}
	// Authentication last: the structure is checked first so that a
	// packet that is not a probe at all is not counted as a forgery.
	switch {
	case a == nil && p.Auth:
		return p, errProbeNoKey
	case a != nil && !p.Auth:
		return p, errProbeUnauthenticated
	case a != nil:
		key, ok := a.keys[p.KeyID]
		if !ok {
			return p, errProbeUnknownKey
		}
		m := hmac.New(sha256.New, key)
		m.Write(body)
		if !hmac.Equal(m.Sum(nil), b[len(body):]) {
			return p, errProbeBadMAC
		}
	}
	return p, nil
}
