package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/hanode/hanode/multicast"
)

func TestVersionPrintsBuildAndWire(t *testing.T) {
	out, errOut, code := runCLI(t, "version")
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"hanode " + buildVersion() + "\n",
		"\ncommit:",
		"\ngo:         " + runtime.Version() + "\n",
		fmt.Sprintf("\nwire:       %d (accepts ", multicast.WireVersion),
		"\nmembership: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}

	out, errOut, code = runCLI(t, "version", "--json")
	if code != 0 {
		t.Fatalf("version --json: exit %d: %s", code, errOut)
	}
	var v struct {
		Version      string `json:"version"`
		Commit       *string
		GoVersion    string `json:"go_version"`
		WireVersion  int    `json:"wire_version"`
		WireVersions []int  `json:"wire_versions"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	if v.Version != buildVersion() || v.GoVersion != runtime.Version() || v.Commit == nil ||
		v.WireVersion != multicast.WireVersion || len(v.WireVersions) == 0 {
		t.Errorf("version --json: %+v\n%s", v, out)
	}
}

func TestVersionLinkTimeOverride(t *testing.T) {
	old := version
	version = "v9.8.7"
	defer func() { version = old }()
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "hanode v9.8.7\n") {
		t.Errorf("with -X main.version: exit %d, %q", code, out)
	}
}

func TestKeygenOutputFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.key")
	// Even with a umask that would leave a file world-readable, the key
	// file is 0600.
	oldMask := syscall.Umask(0)
	out, errOut, code := runCLI(t, "keygen", "-o", p)
	syscall.Umask(oldMask)
	if code != 0 {
		t.Fatalf("keygen -o: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, p) {
		t.Errorf("keygen -o says %q", out)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	if _, err := multicast.LoadKeyFile(p); err != nil {
		t.Fatalf("the written key file does not load: %v", err)
	}
	first, _ := os.ReadFile(p)

	// An existing file is kept without --force.
	_, errOut, code = runCLI(t, "keygen", "-o", p)
	if code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("keygen -o over an existing file: exit %d, %q", code, errOut)
	}
	if b, _ := os.ReadFile(p); string(b) != string(first) {
		t.Error("the existing key file changed without --force")
	}

	// --force replaces it: a new key, mode 0600, no temporary file left.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "keygen", "-o", p, "--force")
	if code != 0 {
		t.Fatalf("keygen -o --force: exit %d: %s", code, errOut)
	}
	second, _ := os.ReadFile(p)
	if string(second) == string(first) {
		t.Error("--force kept the old key")
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced key file mode %#o, want 0600", st.Mode().Perm())
	}
	if _, err := multicast.LoadKeyFile(p); err != nil {
		t.Errorf("the replaced key file does not load: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files left in the directory: %v", ents)
	}
}

func TestKeygenOutputRefusals(t *testing.T) {
	dir := t.TempDir()
	// A symlink planted at the path is not followed: O_EXCL refuses it.
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cluster.key")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "keygen", "-o", link); code == 0 {
		t.Errorf("keygen -o through a symlink: exit 0 (%s)", errOut)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	// A directory that does not exist: an error, nothing created.
	if _, _, code := runCLI(t, "keygen", "-o", filepath.Join(dir, "nope", "k")); code != 1 {
		t.Errorf("keygen -o into a missing directory: exit %d, want 1", code)
	}
	// Usage errors (exit 2): --id with -o, --force without -o.
	for _, args := range [][]string{
		{"keygen", "--id", "2", "-o", filepath.Join(dir, "k2")},
		{"keygen", "--force"},
	} {
		if _, errOut, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "k2")); err == nil {
		t.Error("keygen --id -o created a file")
	}
}
