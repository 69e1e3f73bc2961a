package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hanode/hanode/multicast"
)

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = runMain(append([]string{"hanode"}, args...), &o, &e)
	return o.String(), e.String(), code
}

func TestConfigCheckCommand(t *testing.T) {
	t.Setenv("HANODE_LISTEN", "127.0.0.1:6001")
	t.Setenv("HANODE_ADMIN_TOKEN", "s3cret")
	file := writeFile(t, "hanode.conf", "consistency = \"sync\"\n", 0o644)
	out, errOut, code := runCLI(t, "config", "check", "-c", file, "--node", "n7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Columns are aligned to the longest setting name: match any spacing.
	for _, w := range []string{
		`(?m)^node +=\s"n7" +# flag --node$`,
		`(?m)^listen +=\s127\.0\.0\.1:6001 +# env HANODE_LISTEN$`,
		`(?m)^consistency +=\ssync +# file ` + regexp.QuoteMeta(file) + `:1$`,
		`(?m)^group +=\s239\.255\.42\.99:45588 +# default$`,
		`(?m)^admin-token +=\s\(set, hidden\)`,
		`configuration OK`,
	} {
		if !regexp.MustCompile(w).MatchString(out) {
			t.Errorf("config check output does not match %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Error("config check printed the admin token")
	}
	_, errOut, code = runCLI(t, "config", "check", "--ha")
	if code != 2 || !strings.Contains(errOut, "node is required") {
		t.Errorf("HA without node: exit %d, %s", code, errOut)
	}
	bad := writeFile(t, "bad.conf", "nodes = \"x\"\n", 0o644)
	_, errOut, code = runCLI(t, "config", "check", "-c", bad)
	if code != 2 || !strings.Contains(errOut, bad+":1") {
		t.Errorf("bad file: exit %d, %s", code, errOut)
	}
}

func TestKeygenOutputParsesAndPermissions(t *testing.T) {
	out, errOut, code := runCLI(t, "keygen")
	if code != 0 {
		t.Fatalf("keygen exit %d: %s", code, errOut)
	}
	if _, err := multicast.ParseKeyring([]byte(out)); err != nil {
		t.Fatalf("keygen output does not parse: %v\n%s", err, out)
	}
	out2, _, _ := runCLI(t, "keygen")
	if out == out2 {
		t.Fatal("two keygen runs printed the same key")
	}
	good := writeFile(t, "key", out, 0o600)
	if _, err := multicast.LoadKeyFile(good); err != nil {
		t.Fatalf("mode 600 key file refused: %v", err)
	}
	loose := writeFile(t, "loose", out, 0o644)
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "config", "check", "--ha", "--node", "n1", "--interface", "lo", "--key-file", loose)
	if code == 0 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("loose key file: exit %d, %s", code, errOut)
	}
	_, errOut, code = runCLI(t, "config", "check", "--ha", "--node", "n1", "--interface", "lo", "--key-file", good)
	if code != 0 {
		t.Errorf("good key file: exit %d, %s", code, errOut)
	}
}

func TestVersionCommand(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "hanode ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestAdminURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9090":  "http://127.0.0.1:9090",
		":9090":           "http://127.0.0.1:9090",
		"0.0.0.0:9090":    "http://127.0.0.1:9090",
		"10.0.0.5:9090":   "http://10.0.0.5:9090",
		"http://h:1/":     "http://h:1",
		"localhost:19090": "http://localhost:19090",
	} {
		if got := adminURL(in); got != want {
			t.Errorf("adminURL(%q) = %q, want %q", in, got, want)
		}
	}
}
