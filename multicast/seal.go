package multicast

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

// Nonce channels: the 12-byte GCM nonce is a 4-byte channel followed by
// the 8-byte counter of the header. Data packets count with their sequence
// numbers, every other type with a separate control counter, so a
// (sender key, nonce) pair is never used twice.
const (
	nonceChannelData    = 1
	nonceChannelControl = 2
)

// errAuth is returned when a packet fails authentication.
var errAuth = errors.New("multicast: authentication failed")

// ClusterID returns the 8-byte cluster id carried in every header: a hash
// of the cluster name, so members of other clusters on the same group and
// port are told apart before any cryptography.
func ClusterID(name string) [8]byte {
	sum := sha256.Sum256([]byte("hanode cluster id\x00" + name))
	return [8]byte(sum[:8])
}

// senderKey derives the key a sender seals with:
// HKDF-SHA256(cluster key, salt = cluster id, info = label | sender UUID).
func senderKey(clusterKey [KeySize]byte, cluster [8]byte, sender uuid.UUID) []byte {
	k, err := hkdf.Key(sha256.New, clusterKey[:], cluster[:], "hanode multicast v1 sender "+string(sender[:]), KeySize)
	if err != nil {
		panic("multicast: hkdf: " + err.Error()) // only on invalid lengths
	}
	return k
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("multicast: aes: " + err.Error())
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic("multicast: gcm: " + err.Error())
	}
	return a
}

func nonceFor(t packet.Type, counter uint64) [12]byte {
	var n [12]byte
	ch := uint32(nonceChannelControl)
	if t == packet.TypeData {
		ch = nonceChannelData
	}
	binary.BigEndian.PutUint32(n[:], ch)
	binary.BigEndian.PutUint64(n[4:], counter)
	return n
}

type aeadKey struct {
	sender uuid.UUID
	keyID  uint8
}

// maxAEADCache bounds the derived-key cache. Only senders whose packets
// authenticated enter it; when it is full one entry is evicted.
const maxAEADCache = 4096

// sealer seals and opens packets of one cluster. Not safe for concurrent
// use (the engine owns it). It reads the keyring afresh for every packet,
// so a Keyring.Replace takes effect at the next packet; the derived-key
// cache is flushed then (a key id may now name other key bytes).
type sealer struct {
	kr      *Keyring
	cluster [8]byte
	cache   map[aeadKey]cipher.AEAD
	gen     uint64 // keySet generation the cache was built from
	// The additional data and nonce of open, kept here so that they do
	// not escape to the heap per datagram (the AEAD takes them as
	// slices). open is serialised like the cache it uses.
	openAAD   [HeaderLen]byte
	openNonce [12]byte
}

// keys returns the keyring's current key set, flushing the cache when
// the keyring was replaced since the last call.
func (s *sealer) keys() *keySet {
	ks := s.kr.set()
	if ks.gen != s.gen {
		clear(s.cache)
		s.gen = ks.gen
	}
	return ks
}

func newSealer(kr *Keyring, cluster [8]byte) *sealer {
	return &sealer{kr: kr, cluster: cluster, cache: make(map[aeadKey]cipher.AEAD)}
}

// aead returns the sealing key of sender under key id, derived (and
// cached) on first use. Used to seal this member's own packets.
func (s *sealer) aead(sender uuid.UUID, id uint8, key [KeySize]byte) cipher.AEAD {
	k := aeadKey{sender, id}
	if a, ok := s.cache[k]; ok {
		return a
	}
	a := newGCM(senderKey(key, s.cluster, sender))
	s.remember(k, a)
	return a
}

func (s *sealer) remember(k aeadKey, a cipher.AEAD) {
	if len(s.cache) >= maxAEADCache {
		for old := range s.cache { // one arbitrary entry: it is derived again if needed
			delete(s.cache, old)
			break
		}
	}
	s.cache[k] = a
}

// seal completes h (version, key id, cluster, length) and returns the
// sealed datagram, appended to dst.
func (s *sealer) seal(dst []byte, h *packet.Header, plaintext []byte) []byte {
	ks := s.keys()
	id, key := ks.primary, ks.keys[ks.primary]
	h.Version = WireVersion
	if h.Timestamp <= 0 {
		h.Timestamp = time.Now().UnixMilli()
	}
	h.KeyID = id
	h.Cluster = s.cluster
	h.Length = uint16(len(plaintext) + TagLen)
	var hb [HeaderLen]byte
	h.Put(&hb)
	aad := hb
	aad[4] &^= byte(packet.FlagRetransmit)
	n := nonceFor(h.Type, h.Seq)
	dst = append(dst, hb[:]...)
	return s.aead(h.Sender, id, key).Seal(dst, n[:], plaintext, aad[:])
}

// rejectReason values, used as keys of Stats.Rejected.
const (
	reasonMalformed  = "malformed"
	reasonVersion    = "version"
	reasonCluster    = "cluster"
	reasonUnknownKey = "unknown_key"
	reasonAuth       = "auth"
	reasonReplay     = "replay"
	reasonDuplicate  = "duplicate"
	reasonOversize   = "oversize"
	reasonWindow     = "window"
	reasonFragment   = "fragment"
	reasonDecompress = "decompress"
	reasonRate       = "nak_rate"
	reasonForgotten  = "forgotten"
	reasonPeers      = "too_many_peers"
	reasonStale      = "stale"       // first packet of an unknown sender outside MaxClockSkew
	reasonSenderRate = "sender_rate" // key derivations for unknown senders over budget
)

// open decodes and authenticates datagram b, decrypting into scratch (which
// must have room for the plaintext; b is left intact, so the sealed bytes
// can be kept for retransmission). Nothing is allocated before the tag is
// verified. When the sender's key is not cached (an unknown sender, or
// the keyring changed), admit is asked first, with the unauthenticated
// header: a non-empty reason refuses the packet before any key is
// derived. Only a packet that authenticates puts its sender's key in the
// cache. On failure it returns the Stats.Rejected reason.
func (s *sealer) open(b, scratch []byte, admit func(*packet.Header) string) (packet.Header, []byte, string) {
	h, err := packet.DecodeHeader(b)
	if err != nil {
		if errors.Is(err, ErrVersion) {
			return h, nil, reasonVersion
		}
		return h, nil, reasonMalformed
	}
	if h.Cluster != s.cluster {
		return h, nil, reasonCluster
	}
	key, ok := s.keys().keys[h.KeyID]
	if !ok {
		return h, nil, reasonUnknownKey
	}
	k := aeadKey{h.Sender, h.KeyID}
	a, cached := s.cache[k]
	if !cached {
		if admit != nil {
			ah := h // a copy: h itself stays on the stack
			if reason := admit(&ah); reason != "" {
				return h, nil, reason
			}
		}
		a = newGCM(senderKey(key, s.cluster, h.Sender))
	}
	s.openAAD = [HeaderLen]byte(b[:HeaderLen])
	s.openAAD[4] &^= byte(packet.FlagRetransmit)
	s.openNonce = nonceFor(h.Type, h.Seq)
	ct := b[HeaderLen:]
	if cap(scratch) < len(ct) {
		scratch = make([]byte, 0, len(ct))
	}
	pt, err := a.Open(scratch[:0], s.openNonce[:], ct, s.openAAD[:])
	if err != nil {
		return h, nil, reasonAuth
	}
	if !cached {
		s.remember(k, a)
	}
	return h, pt, ""
}
