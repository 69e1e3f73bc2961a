package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(nil, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HA || cfg.Listen != "127.0.0.1:8080" || cfg.Admin != "127.0.0.1:9090" ||
		cfg.Group.String() != "239.255.42.99:45588" || cfg.TTL != 1 || cfg.Consistency != replicator.Async ||
		cfg.IdleTimeout != 30*time.Minute || cfg.Lifetime != 24*time.Hour || cfg.CookieName != "hanode_session" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if src, _ := cfg.Source("listen"); src != sourceDefault {
		t.Fatalf("listen source = %s", src)
	}
	if cfg.NodeName() != "local" {
		t.Fatalf("node name without --node = %q", cfg.NodeName())
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "hanode.toml", `
# a comment
node = "from-file"
listen = "127.0.0.1:7001"   # trailing comment
admin = '127.0.0.1:7002'
consistency = "sync"
idle-timeout = "5m"
ha = true
ttl = 3
`, 0o644)
	e := env(map[string]string{
		"HANODE_NODE":   "from-env",
		"HANODE_LISTEN": "127.0.0.1:6001",
		"HANODE_TTL":    "2",
	})
	flags := flagSource{"node": "from-flag"}
	cfg, err := loadConfig(flags, e, file)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name, src, where string
		got, want        any
	}{
		{"node", sourceFlag, "--node", cfg.Node, "from-flag"},
		{"listen", sourceEnv, "HANODE_LISTEN", cfg.Listen, "127.0.0.1:6001"},
		{"ttl", sourceEnv, "HANODE_TTL", cfg.TTL, 2},
		{"admin", sourceFile, file + ":5", cfg.Admin, "127.0.0.1:7002"},
		{"consistency", sourceFile, file + ":6", cfg.Consistency, replicator.Sync},
		{"idle-timeout", sourceFile, file + ":7", cfg.IdleTimeout, 5 * time.Minute},
		{"ha", sourceFile, file + ":8", cfg.HA, true},
		{"group", sourceDefault, "default", cfg.Group.String(), "239.255.42.99:45588"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
		src, where := cfg.Source(c.name)
		if src != c.src || where != c.where {
			t.Errorf("%s source = %s %s, want %s %s", c.name, src, where, c.src, c.where)
		}
	}
	// A flag that sets a bool to false beats a file that sets it true.
	cfg, err = loadConfig(flagSource{"ha": "false"}, e, file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HA {
		t.Error("--ha=false did not beat ha = true in the file")
	}
}

func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		content string
		want    []string // substrings of the error
	}{
		{"node = \"a\"\nlisen = \"127.0.0.1:1\"\n", []string{":2:", `unknown key "lisen"`, `did you mean "listen"`}},
		{"\n\nha = maybe\n", []string{":3:", "ha", "not a boolean"}},
		{"ttl = 0\n", []string{":1:", "ttl", "out of range"}},
		{"idle-timeout = \"5 minutes\"\n", []string{":1:", "idle-timeout", "not a duration"}},
		{"group = \"10.0.0.1:45588\"\n", []string{":1:", "group", "not an IPv4 multicast"}},
		{"consistency = \"eventual\"\n", []string{":1:", "consistency", "async, sync, sync-all"}},
		{"node = \"a.b\"\n", []string{":1:", "node", "no dots"}},
		{"listen 127.0.0.1:1\n", []string{":1:", "expected key = value"}},
		{"[server]\n", []string{":1:", "tables are not supported"}},
		{"node = \"unterminated\n", []string{":1:", "unterminated"}},
		{"node = a\nnode = b\n", []string{":2:", "already set on line 1"}},
		{"listen = \"nowhere\"\n", []string{":1:", "listen", "HOST:PORT"}},
	}
	for _, c := range cases {
		file := writeFile(t, "bad.conf", c.content, 0o644)
		_, err := loadConfig(nil, env(nil), file)
		if err == nil {
			t.Errorf("%q: no error", c.content)
			continue
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%q: error does not wrap ErrConfig: %v", c.content, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", c.content, err, w)
			}
		}
		if !strings.Contains(err.Error(), file) {
			t.Errorf("%q: error %q does not name the file", c.content, err)
		}
	}
}

func TestConfigEnvAndFlagErrorsNameTheirSource(t *testing.T) {
	_, err := loadConfig(nil, env(map[string]string{"HANODE_TTL": "x"}), "")
	if err == nil || !strings.Contains(err.Error(), "HANODE_TTL") {
		t.Errorf("env error = %v", err)
	}
	_, err = loadConfig(flagSource{"consistency": "x"}, env(nil), "")
	if err == nil || !strings.Contains(err.Error(), "--consistency") {
		t.Errorf("flag error = %v", err)
	}
}

func TestConfigValidateHA(t *testing.T) {
	cfg, err := loadConfig(flagSource{"ha": "true"}, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, w := range []string{"node is required", "interface is required", "key-file is required", "HANODE_KEY_FILE"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %q", err, w)
		}
	}
	cfg, err = loadConfig(flagSource{"ha": "true", "node": "n1", "interface": "eth0", "key-file": "/k"}, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("complete HA config: %v", err)
	}
	cfg, _ = loadConfig(flagSource{"admin": "127.0.0.1:8080"}, env(nil), "")
	if err := cfg.Validate(); err == nil {
		t.Error("same listen and admin address accepted")
	}
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
