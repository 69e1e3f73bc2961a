package multicast

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// KeySize is the size in bytes of a cluster key (AES-256).
const KeySize = 32

// ErrKeyFilePermissions is returned by LoadKeyFile when the key file can be
// read or written by its group or by others. Fix with chmod 600.
var ErrKeyFilePermissions = errors.New("multicast: key file is accessible by group or others (chmod 600)")

// ErrKeyring is wrapped by every key-file parse error.
var ErrKeyring = errors.New("multicast: invalid keyring")

// Keyring holds the cluster keys. Several keys are accepted on receive;
// exactly one, the primary, is used to send. A Keyring is safe for
// concurrent use. Its keys change only through Replace, which swaps them
// all at once: every holder of the *Keyring (the transport, the state
// transfer) sees the new keys from its next packet or stream on, so a key
// can be rotated across a running cluster (install, promote, retire).
type Keyring struct {
	cur atomic.Pointer[keySet]
}

// keySet is the immutable key material of a Keyring at one moment.
type keySet struct {
	keys    map[uint8][KeySize]byte
	primary uint8
	gen     uint64 // unique per keySet: derived-key caches are flushed when it changes
}

var keySetGen atomic.Uint64

func newKeyringOf(keys map[uint8][KeySize]byte, primary uint8) *Keyring {
	k := &Keyring{}
	k.cur.Store(&keySet{keys: keys, primary: primary, gen: keySetGen.Add(1)})
	return k
}

var emptyKeySet = &keySet{}

// set returns the current keys (none for a zero Keyring).
func (k *Keyring) set() *keySet {
	if s := k.cur.Load(); s != nil {
		return s
	}
	return emptyKeySet
}

// Replace makes k hold the keys and primary of other, atomically; other
// is left as it was. Packets and streams already being opened finish
// with the keys they started with.
func (k *Keyring) Replace(other *Keyring) {
	o := other.set()
	k.cur.Store(&keySet{keys: o.keys, primary: o.primary, gen: keySetGen.Add(1)})
}

// Equal reports whether k and other hold the same keys and primary.
func (k *Keyring) Equal(other *Keyring) bool {
	a, b := k.set(), other.set()
	if a.primary != b.primary || len(a.keys) != len(b.keys) {
		return false
	}
	for id, key := range a.keys {
		if bk, ok := b.keys[id]; !ok || bk != key {
			return false
		}
	}
	return true
}

// Describe summarises k for logs, never showing key material: the key
// ids, the primary, and for each key an 8-hex-digit fingerprint (a hash),
// e.g. "1:3fa4c2d1 2:9b0e77aa (primary 2)".
func (k *Keyring) Describe() string {
	s := k.set()
	ids := make([]uint8, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%s", id, KeyFingerprint(s.keys[id]))
	}
	fmt.Fprintf(&b, " (primary %d)", s.primary)
	return b.String()
}

// KeyFingerprint is a short, non-secret identifier of a key for logs: the
// first 4 bytes, in hex, of SHA-256("hanode key fingerprint" | key).
func KeyFingerprint(key [KeySize]byte) string {
	sum := sha256.Sum256(append([]byte("hanode key fingerprint\x00"), key[:]...))
	return hex.EncodeToString(sum[:4])
}

// NewKeyring builds a keyring from keys by id; primary must be one of them.
func NewKeyring(keys map[uint8][KeySize]byte, primary uint8) (*Keyring, error) {
	if primary == 0 {
		return nil, fmt.Errorf("%w: key id 0 is reserved", ErrKeyring)
	}
	if _, ok := keys[primary]; !ok {
		return nil, fmt.Errorf("%w: primary key %d not in keyring", ErrKeyring, primary)
	}
	m := make(map[uint8][KeySize]byte, len(keys))
	for id, key := range keys {
		if id == 0 {
			return nil, fmt.Errorf("%w: key id 0 is reserved", ErrKeyring)
		}
		m[id] = key
	}
	return newKeyringOf(m, primary), nil
}

// GenerateKeyFile returns a new key file holding one random 32-byte key
// with id 1, marked primary.
func GenerateKeyFile() (string, error) {
	line, err := GenerateKeyLine(1, true)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# hanode cluster key file: keep it secret (chmod 600) and identical on every node.\n")
	b.WriteString("# Format: key <id 1-255> <base64 of 32 bytes> [primary]\n")
	b.WriteString(line)
	return b.String(), nil
}

// GenerateKeyLine returns one key-file line ("key <id> <base64> [primary]\n")
// holding a new random key, to add to an existing key file when rotating.
func GenerateKeyLine(id uint8, primary bool) (string, error) {
	if id == 0 {
		return "", fmt.Errorf("%w: key id 0 is reserved", ErrKeyring)
	}
	var key [KeySize]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("multicast: generate key: %w", err)
	}
	line := fmt.Sprintf("key %d %s", id, base64.StdEncoding.EncodeToString(key[:]))
	if primary {
		line += " primary"
	}
	return line + "\n", nil
}

// ParseKeyring parses the key-file format described in the package
// documentation.
func ParseKeyring(data []byte) (*Keyring, error) {
	keys := make(map[uint8][KeySize]byte)
	var primaries []uint8
	var order []uint8
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if f[0] != "key" {
			// Never quote the line: it may be a key pasted on its own.
			return nil, fmt.Errorf("%w: line %d: expected a line \"key <id> <base64> [primary]\" (content not shown)", ErrKeyring, line)
		}
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("%w: line %d: expected \"key <id> <base64> [primary]\"", ErrKeyring, line)
		}
		id, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%w: line %d: key id must be 1-255", ErrKeyring, line)
		}
		raw, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: key is not valid base64", ErrKeyring, line)
		}
		if len(raw) != KeySize {
			return nil, fmt.Errorf("%w: line %d: key is %d bytes, want %d", ErrKeyring, line, len(raw), KeySize)
		}
		if _, dup := keys[uint8(id)]; dup {
			return nil, fmt.Errorf("%w: line %d: duplicate key id %d", ErrKeyring, line, id)
		}
		if len(f) == 4 {
			if f[3] != "primary" {
				return nil, fmt.Errorf("%w: line %d: unexpected fourth field (only \"primary\" may follow the key; content not shown)", ErrKeyring, line)
			}
			primaries = append(primaries, uint8(id))
		}
		keys[uint8(id)] = [KeySize]byte(raw)
		order = append(order, uint8(id))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: after line %d: %w", ErrKeyring, line, err)
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("%w: no keys", ErrKeyring)
	case len(primaries) > 1:
		return nil, fmt.Errorf("%w: %d keys marked primary, want exactly one", ErrKeyring, len(primaries))
	case len(primaries) == 0 && len(keys) == 1:
		primaries = append(primaries, order[0])
	case len(primaries) == 0:
		return nil, fmt.Errorf("%w: several keys and none marked primary", ErrKeyring)
	}
	return newKeyringOf(keys, primaries[0]), nil
}

// LoadKeyFile reads and parses a key file. It refuses (ErrKeyFilePermissions)
// a file that its group or others may read or write.
func LoadKeyFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("multicast: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("multicast: stat key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyring, path)
	}
	if perm := st.Mode().Perm(); perm&0o066 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o", ErrKeyFilePermissions, path, perm)
	}
	data, err := readAllLimited(f, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("multicast: read key file: %w", err)
	}
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes", limit)
	}
	return data, nil
}

// Primary returns the id and key used to seal outgoing packets.
func (k *Keyring) Primary() (id uint8, key [KeySize]byte) {
	s := k.set()
	return s.primary, s.keys[s.primary]
}

// Lookup returns the key with the given id; ok is false when the keyring
// has no such key.
func (k *Keyring) Lookup(id uint8) (key [KeySize]byte, ok bool) {
	key, ok = k.set().keys[id]
	return key, ok
}

// IDs returns the key ids in ascending order.
func (k *Keyring) IDs() []uint8 {
	s := k.set()
	ids := make([]uint8, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
