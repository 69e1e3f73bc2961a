package replicator

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hanode/hanode/internal/hlc"
	"github.com/hanode/hanode/multicast"
)

var (
	sealKey1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	sealKey2 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
)

func keyring(t testing.TB, text string) *multicast.Keyring {
	t.Helper()
	kr, err := multicast.ParseKeyring([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func testSealer(t testing.TB) Sealer {
	return multicast.SnapshotSealer{Keyring: keyring(t, "key 1 "+sealKey1+"\n")}
}

// TestSnapshotFileSealed: a snapshot file holds no session ID and no
// attribute in clear, loads in a new process (a keyring parsed again from
// the key file), keeps loading across a key rotation while its key is in
// the ring, and is refused with a clear error when group or others can
// read it, through a symlink, when unsealed or sealed with a retired key,
// and when tampered with; a refused file merges nothing.
func TestSnapshotFileSealed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sessions.snap")
	src := NewReplica(ReplicaConfig{})
	var c hlc.Clock
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("RAWSESSIONID%04dabcdefghijklmnop", i)
		d := &Delta{ID: ids[i], Owner: "n1", LastAccess: 1, IdleTimeout: 1800e9,
			Ops: []Op{{Kind: OpSet, Key: "secret-attribute", Value: []byte(fmt.Sprintf("card-number-%04d", i))},
				{Kind: OpPrincipal, Value: []byte("alice@example.com")}}}
		if err := src.Commit(d, &c, 1); err != nil {
			t.Fatal(err)
		}
	}
	ring1 := "key 1 " + sealKey1 + "\n"
	if n, err := SaveFile(path, src, "c", multicast.SnapshotSealer{Keyring: keyring(t, ring1)}); err != nil || n != len(ids) {
		t.Fatal(n, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"RAWSESSIONID", ids[7], "card-number", "secret-attribute", "alice@example.com", "HNSNAP"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the snapshot file shows %q in clear", plain)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("snapshot mode %#o, want 0600", st.Mode().Perm())
	}
	load := func(ring string) (*Replica, error) {
		dst := NewReplica(ReplicaConfig{})
		_, err := LoadFile(path, dst, "c", multicast.SnapshotSealer{Keyring: keyring(t, ring)})
		if err != nil && dst.Len() != 0 {
			t.Errorf("a refused snapshot merged %d sessions", dst.Len())
		}
		return dst, err
	}
	// A restart: the keyring is parsed again from the same key file.
	dst, err := load(ring1)
	if err != nil || dst.Len() != len(ids) || string(dst.Get(ids[3]).Attrs.Value("secret-attribute")) != "card-number-0003" {
		t.Fatalf("reload: %v (%d sessions)", err, dst.Len())
	}
	// Key rotation: key 2 installed and promoted, key 1 still in the ring.
	if _, err := load("key 1 " + sealKey1 + "\nkey 2 " + sealKey2 + " primary\n"); err != nil {
		t.Fatalf("after promoting key 2: %v", err)
	}
	// Key 1 retired: the file no longer opens, and the error says why.
	if _, err := load("key 2 " + sealKey2 + "\n"); !errors.Is(err, ErrSnapshotSeal) || !strings.Contains(err.Error(), path) {
		t.Errorf("sealing key retired: %v", err)
	}
	// Permissions, like the key file.
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		os.Chmod(path, mode)
		if _, err := load(ring1); !errors.Is(err, ErrSnapshotPermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %#o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	// A symlink to a good file is refused.
	link := filepath.Join(dir, "link.snap")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(link, NewReplica(ReplicaConfig{}), "c", testSealer(t)); !errors.Is(err, ErrSnapshotFile) || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: %v", err)
	}
	// An unsealed (older) snapshot is refused.
	var plain bytes.Buffer
	if _, err := WriteSnapshot(&plain, src, "c"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, plain.Bytes(), 0o600)
	if _, err := load(ring1); !errors.Is(err, ErrSnapshotSeal) {
		t.Errorf("plaintext snapshot: %v", err)
	}
	// Tampering anywhere, and truncation, are refused.
	for _, pos := range []int{40, len(raw) / 2, len(raw) - 3} {
		b := bytes.Clone(raw)
		b[pos] ^= 0x20
		os.WriteFile(path, b, 0o600)
		if _, err := load(ring1); err == nil {
			t.Errorf("flip at %d accepted", pos)
		}
	}
	os.WriteFile(path, raw[:len(raw)-10], 0o600)
	if _, err := load(ring1); err == nil {
		t.Error("truncated file accepted")
	}
	// No sealer, no file.
	if _, err := SaveFile(path, src, "c", nil); !errors.Is(err, ErrSnapshotFile) {
		t.Errorf("save without a sealer: %v", err)
	}
}
