package multicast

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
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

// TestKeyFileErrorsNeverQuoteContent: a key file that does not parse is
// refused with an error that names the line but never shows what is on
// it (a bare key pasted alone, a key in the wrong field): the error is
// logged at start and on SIGHUP.
func TestKeyFileErrorsNeverQuoteContent(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("q", 32)))
	cases := map[string]string{
		"bare key":            k1 + "\n",
		"bare key, primary":   k1 + " primary\n",
		"key in fourth field": "key 1 " + k1 + " " + k2 + "\n",
		"two keys on a line":  "key 1 " + k1 + " primary " + k2 + "\n",
		"other word":          k2 + " 1 " + k1 + "\n",
		"bad base64":          "key 1 " + k1[:20] + "!" + k1[21:] + "\n",
		"short key":           "key 1 " + k1[:24] + "\n",
	}
	dir := t.TempDir()
	i := 0
	for name, text := range cases {
		_, err := ParseKeyring([]byte(text))
		if !errors.Is(err, ErrKeyring) {
			t.Errorf("%s: err = %v, want ErrKeyring", name, err)
			continue
		}
		i++
		p := filepath.Join(dir, "key"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, lerr := LoadKeyFile(p)
		if lerr == nil {
			t.Fatalf("%s: LoadKeyFile accepted it", name)
		}
		for _, msg := range []string{err.Error(), lerr.Error()} {
			for _, secret := range []string{k1, k2, k1[:12], k2[:12], k1[:24]} {
				if strings.Contains(msg, secret) {
					t.Errorf("%s: error quotes key material: %s", name, msg)
				}
			}
			if !strings.Contains(msg, "line 1") {
				t.Errorf("%s: error does not name the line: %s", name, msg)
			}
		}
	}
}
