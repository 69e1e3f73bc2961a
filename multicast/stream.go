package multicast

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sealed stream format (TCP state transfer):
//
//	"HNS1" | key id (1) | salt (32)
//	then chunks: length (4, of what follows) | AES-256-GCM(ciphertext | tag)
//
// The stream key is HKDF-SHA256(cluster key, salt, "hanode stream v1 " +
// label), and for a bound stream (NewBoundSealedWriter) HKDF-SHA256(
// cluster key, salt, "hanode stream v1 " + label + "\x00bound\x00" +
// bind): the bind bytes (the other side's fresh nonces in a handshake)
// never travel in the stream, so a recorded stream does not open in
// another handshake. The nonce of chunk i is a 4-byte kind (0 data, 1
// end) and the 8-byte counter i; the length prefix is associated data. A
// stream ends with an authenticated empty end chunk, so truncation is
// detected.
const (
	// MaxStreamChunk is the largest plaintext of one sealed-stream chunk.
	MaxStreamChunk = 64 << 10
	streamMagic    = "HNS1"
	streamSaltLen  = 32
)

// ErrStream is wrapped by every sealed-stream error (bad magic, unknown
// key, authentication failure, truncation, oversized chunk).
var ErrStream = errors.New("multicast: sealed stream")

// StreamSaltLen is the length of a sealed stream's salt (Salt).
const StreamSaltLen = streamSaltLen

func streamAEAD(key [KeySize]byte, salt []byte, label string, bind []byte) cipher.AEAD {
	info := "hanode stream v1 " + label
	if bind != nil {
		info += "\x00bound\x00" + string(bind)
	}
	k, err := hkdf.Key(sha256.New, key[:], salt, info, KeySize)
	if err != nil {
		panic("multicast: hkdf: " + err.Error())
	}
	return newGCM(k)
}

func streamNonce(end bool, i uint64) [12]byte {
	var n [12]byte
	if end {
		n[3] = 1
	}
	binary.BigEndian.PutUint64(n[4:], i)
	return n
}

// SealedWriter is a sealed stream being written (NewBoundSealedWriter).
type SealedWriter = sealedWriter

type sealedWriter struct {
	salt   []byte
	w      io.Writer
	aead   cipher.AEAD
	buf    []byte
	out    []byte
	n      uint64
	err    error
	closed bool
}

// NewSealedWriter returns a writer that seals everything written to it
// with the keyring's primary key, in chunks of at most 64 KiB, and writes
// it to w. label binds the stream to its purpose (both ends must agree).
// Close writes the end-of-stream chunk (it does not close w); without it
// the reader reports truncation. The key is chosen when the stream starts:
// a Keyring.Replace during the stream does not affect it, and the next
// stream uses the new primary.
func NewSealedWriter(kr *Keyring, w io.Writer, label string) (io.WriteCloser, error) {
	return newSealedWriter(kr, w, label, nil)
}

// NewBoundSealedWriter is NewSealedWriter for one run of a handshake: the
// stream key also covers bind (e.g. the peer's fresh nonce), which the
// reader must pass too; bind is not sent. Salt returns the stream's own
// fresh salt, for the peer to bind its answer to.
func NewBoundSealedWriter(kr *Keyring, w io.Writer, label string, bind []byte) (*SealedWriter, error) {
	if bind == nil {
		bind = []byte{}
	}
	return newSealedWriter(kr, w, label, bind)
}

func newSealedWriter(kr *Keyring, w io.Writer, label string, bind []byte) (*sealedWriter, error) {
	id, key := kr.Primary()
	hdr := make([]byte, 0, 5+streamSaltLen)
	hdr = append(hdr, streamMagic...)
	hdr = append(hdr, id)
	salt := make([]byte, streamSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("%w: salt: %w", ErrStream, err)
	}
	hdr = append(hdr, salt...)
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return &sealedWriter{salt: salt, w: w, aead: streamAEAD(key, salt, label, bind), buf: make([]byte, 0, MaxStreamChunk)}, nil
}

// Salt returns the stream's random salt (sent in its header).
func (s *sealedWriter) Salt() []byte { return s.salt }

func (s *sealedWriter) Write(p []byte) (int, error) {
	if s.closed {
		return 0, fmt.Errorf("%w: write after close", ErrStream)
	}
	written := 0
	for len(p) > 0 && s.err == nil {
		n := min(len(p), MaxStreamChunk-len(s.buf))
		s.buf = append(s.buf, p[:n]...)
		p = p[n:]
		written += n
		if len(s.buf) == MaxStreamChunk {
			s.flush(false)
		}
	}
	return written, s.err
}

func (s *sealedWriter) flush(end bool) {
	if s.err != nil {
		return
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(s.buf)+TagLen))
	nonce := streamNonce(end, s.n)
	s.n++
	s.out = append(s.out[:0], l[:]...)
	s.out = s.aead.Seal(s.out, nonce[:], s.buf, l[:])
	s.buf = s.buf[:0]
	_, s.err = s.w.Write(s.out)
}

func (s *sealedWriter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if len(s.buf) > 0 {
		s.flush(false)
	}
	s.flush(true)
	return s.err
}

// SealedReader is a sealed stream being read (NewBoundSealedReader).
type SealedReader = sealedReader

type sealedReader struct {
	r        io.Reader
	kr       *Keyring
	label    string
	bind     []byte
	salt     []byte
	maxChunk int
	aead     cipher.AEAD
	n        uint64
	buf      []byte // ciphertext scratch
	plain    []byte // unread plaintext
	err      error
}

// NewSealedReader returns a reader of a stream written by NewSealedWriter
// with a key of kr and the same label. Chunks declaring more than maxChunk
// plaintext bytes (≤ 0 or above 64 KiB: 64 KiB) are refused before
// anything is allocated for them. Errors wrap ErrStream; a stream that
// ends without its end chunk is an error wrapping io.ErrUnexpectedEOF.
func NewSealedReader(kr *Keyring, r io.Reader, label string, maxChunk int) io.Reader {
	return newSealedReader(kr, r, label, maxChunk, nil)
}

// NewBoundSealedReader reads a stream written by NewBoundSealedWriter
// with the same label and bind. maxChunk bounds what is read and
// allocated for one chunk before its tag is checked: a server reading
// from unauthenticated peers passes the size of the largest message it
// expects, not 64 KiB.
func NewBoundSealedReader(kr *Keyring, r io.Reader, label string, maxChunk int, bind []byte) *SealedReader {
	if bind == nil {
		bind = []byte{}
	}
	return newSealedReader(kr, r, label, maxChunk, bind)
}

func newSealedReader(kr *Keyring, r io.Reader, label string, maxChunk int, bind []byte) *sealedReader {
	if maxChunk <= 0 || maxChunk > MaxStreamChunk {
		maxChunk = MaxStreamChunk
	}
	return &sealedReader{r: r, kr: kr, label: label, bind: bind, maxChunk: maxChunk}
}

// Salt returns the salt of the stream's header, nil until the first Read
// has read it.
func (s *sealedReader) Salt() []byte { return s.salt }

func (s *sealedReader) fail(format string, args ...any) error {
	s.err = fmt.Errorf("%w: "+format, append([]any{ErrStream}, args...)...)
	return s.err
}

func (s *sealedReader) Read(p []byte) (int, error) {
	for len(s.plain) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.next()
	}
	n := copy(p, s.plain)
	s.plain = s.plain[n:]
	return n, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next reads and opens one chunk, setting s.plain or s.err.
func (s *sealedReader) next() {
	if s.aead == nil {
		var hdr [5 + streamSaltLen]byte
		if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
			s.fail("header: %w", unexpected(err))
			return
		}
		if string(hdr[:4]) != streamMagic {
			s.fail("bad magic")
			return
		}
		key, ok := s.kr.Lookup(hdr[4])
		if !ok {
			s.fail("unknown key id %d", hdr[4])
			return
		}
		s.salt = append([]byte(nil), hdr[5:]...)
		s.aead = streamAEAD(key, s.salt, s.label, s.bind)
	}
	var l [4]byte
	if _, err := io.ReadFull(s.r, l[:]); err != nil {
		s.fail("truncated: %w", unexpected(err))
		return
	}
	size := int(binary.BigEndian.Uint32(l[:]))
	if size < TagLen || size-TagLen > s.maxChunk {
		s.fail("chunk of %d bytes (limit %d)", size, s.maxChunk+TagLen)
		return
	}
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	ct := s.buf[:size]
	if _, err := io.ReadFull(s.r, ct); err != nil {
		s.fail("truncated: %w", unexpected(err))
		return
	}
	i := s.n
	s.n++
	nonce := streamNonce(false, i)
	pt, err := s.aead.Open(ct[:0], nonce[:], ct, l[:])
	if err == nil {
		s.plain = pt
		return
	}
	nonce = streamNonce(true, i)
	if pt, err := s.aead.Open(ct[:0], nonce[:], ct, l[:]); err == nil && len(pt) == 0 {
		s.err = io.EOF
		return
	}
	s.fail("chunk %d: authentication failed", i)
}

// SnapshotLabel is the sealed-stream label of snapshot files: their key
// is derived from the cluster key under a label of their own, so a
// snapshot cannot pass for a state transfer or the other way round.
const SnapshotLabel = "hanode snapshot file v1"

// SnapshotSealer seals snapshot files (replicator.SaveFile, LoadFile)
// with the keyring: written with the primary key, read with whichever
// key of the ring sealed them (its id is in the file), so a snapshot
// stays readable across a key rotation until its key is retired.
type SnapshotSealer struct {
	Keyring *Keyring // the cluster keys
}

// SealWriter returns a sealed writer to w (see NewSealedWriter).
func (s SnapshotSealer) SealWriter(w io.Writer) (io.WriteCloser, error) {
	return NewSealedWriter(s.Keyring, w, SnapshotLabel)
}

// OpenReader returns a sealed reader of r (see NewSealedReader).
func (s SnapshotSealer) OpenReader(r io.Reader) io.Reader {
	return NewSealedReader(s.Keyring, r, SnapshotLabel, 0)
}
