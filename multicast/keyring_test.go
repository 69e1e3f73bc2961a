package multicast

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateAndParseKeyFile(t *testing.T) {
	text, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ParseKeyring([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	id, key := kr.Primary()
	if id != 1 || key == ([KeySize]byte{}) {
		t.Fatalf("primary = %d %x", id, key)
	}
	if got := kr.IDs(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("IDs = %v", got)
	}
	if _, ok := kr.Lookup(2); ok {
		t.Fatal("Lookup(2) found a key")
	}
}

func TestParseKeyring(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32)))
	good := "# rotation\nkey 1 " + k1 + "\n\nkey 7 " + k2 + " primary # new\n"
	kr, err := ParseKeyring([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := kr.Primary(); id != 7 {
		t.Fatalf("primary %d", id)
	}
	if ids := kr.IDs(); len(ids) != 2 || ids[0] != 1 || ids[1] != 7 {
		t.Fatalf("IDs %v", ids)
	}
	if k, ok := kr.Lookup(1); !ok || k != ([32]byte{}) {
		t.Fatal("lookup 1")
	}
	bad := map[string]string{
		"empty":         "# nothing\n",
		"no primary":    "key 1 " + k1 + "\nkey 2 " + k2 + "\n",
		"two primaries": "key 1 " + k1 + " primary\nkey 2 " + k2 + " primary\n",
		"id 0":          "key 0 " + k1 + "\n",
		"id 256":        "key 256 " + k1 + "\n",
		"short key":     "key 1 AAAA\n",
		"bad base64":    "key 1 !!!!\n",
		"duplicate":     "key 1 " + k1 + " primary\nkey 1 " + k2 + "\n",
		"junk":          "secret 1 " + k1 + "\n",
		"junk suffix":   "key 1 " + k1 + " main\n",
	}
	for name, in := range bad {
		if _, err := ParseKeyring([]byte(in)); !errors.Is(err, ErrKeyring) {
			t.Errorf("%s: err = %v, want ErrKeyring", name, err)
		}
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	text, _ := GenerateKeyFile()
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(p); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o602, 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(p); !errors.Is(err, ErrKeyFilePermissions) {
			t.Errorf("mode %#o: err = %v", mode, err)
		}
	}
}
