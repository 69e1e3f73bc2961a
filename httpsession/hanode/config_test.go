package hanode

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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

// withListOption adds a list setting for the length of a test (the
// table has none of its own yet).
func withListOption(t *testing.T) {
	saved := options
	options = append(append([]option(nil), options...), option{name: "test-peers", kind: kindList, usage: "test"})
	t.Cleanup(func() { options = saved })
}

func TestConfigFileTOML(t *testing.T) {
	withListOption(t)
	file := writeFile(t, "hanode.toml", "\ufeff"+`# TOML
"node" = "n\u0031"
ttl = 1_0
listen = 0.0.0.0:8080   # a bare word, as files of earlier versions have
sync-timeout = 2s
admin = '127.0.0.1:9091' # literal string
cookie-secure = true
test-peers = [
  "10.0.0.1:7946",   # comments inside arrays
  "10.0.0.2:7946",
]
`, 0o644)
	entries, err := parseConfigFile(file, strings.NewReader(readFile(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fileEntry{
		"node":          {raw: "n1", line: 2},
		"ttl":           {raw: "10", line: 3},
		"listen":        {raw: "0.0.0.0:8080", line: 4},
		"sync-timeout":  {raw: "2s", line: 5},
		"admin":         {raw: "127.0.0.1:9091", line: 6},
		"cookie-secure": {raw: "true", line: 7},
		"test-peers":    {raw: "10.0.0.1:7946,10.0.0.2:7946", list: true, line: 8},
	}
	for k, w := range want {
		if entries[k] != w {
			t.Errorf("%s = %+v, want %+v", k, entries[k], w)
		}
	}
	if len(entries) != len(want) {
		t.Errorf("entries %v", entries)
	}
	cfg, err := loadConfig(nil, env(nil), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TTL != 10 || cfg.Node != "n1" || cfg.Listen != "0.0.0.0:8080" || cfg.SyncTimeout != 2*time.Second || !cfg.CookieSecure {
		t.Errorf("config %+v", cfg)
	}
	var out bytes.Buffer
	cfg.WriteEffective(&out)
	if !regexp.MustCompile(`(?m)^test-peers += \["10\.0\.0\.1:7946", "10\.0\.0\.2:7946"\] +# file .*:8$`).MatchString(out.String()) {
		t.Errorf("config check output:\n%s", out.String())
	}

	// A list setting also takes a comma-separated string, in the file and
	// in the environment.
	for _, src := range []struct {
		file string
		env  map[string]string
	}{
		{"test-peers = \"a:1, b:2\"\n", nil},
		{"", map[string]string{"HANODE_TEST_PEERS": "a:1,b:2"}},
		{"test-peers = ['a:1', 'b:2']\n", nil},
	} {
		f := ""
		if src.file != "" {
			f = writeFile(t, "l.toml", src.file, 0o644)
		}
		cfg, err := loadConfig(nil, env(src.env), f)
		if err != nil {
			t.Fatalf("%+v: %v", src, err)
		}
		raw := cfg.values["test-peers"].raw
		if got := parseList(raw); len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
			t.Errorf("%+v: list %q", src, got)
		}
	}
}

func TestConfigFileTOMLErrors(t *testing.T) {
	withListOption(t)
	for _, c := range []struct {
		content string
		want    []string
	}{
		{"ttl = 3\nnode = [\"a\", \"b\"]\n", []string{":2:", "node", "one value, not a list"}},
		{"node = { a = 1 }\n", []string{":1:", "node", "table is not a setting value"}},
		{"a.b = 1\n", []string{":1:", `unknown key "a.b"`}},
		{"\n[[servers]]\n", []string{":2:", "tables are not supported"}},
		{"test-peers = [[\"a\"]]\n", []string{":1:", "nested list"}},
		{"test-peers = [\"a,b\"]\n", []string{":1:", "contains a comma"}},
		{"ttl = 1\nnode = a b\n", []string{":2:", "quote strings"}},
		{"node = \"a\\qb\"\n", []string{":1:", "escape"}},
		{"x = [1,\n", []string{":1:"}},
		{"node = \"\"\"\nx\n\"\"\"\nlisten = :1 :2\n", []string{":4:"}},
	} {
		file := writeFile(t, "bad.toml", c.content, 0o644)
		_, err := loadConfig(nil, env(nil), file)
		if err == nil {
			t.Errorf("%q: no error", c.content)
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), file) {
			t.Errorf("%q: %v", c.content, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", c.content, err, w)
			}
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigFileLegacyThenError: in a file with bare words, an error on
// another line is reported at that line.
func TestConfigFileLegacyThenError(t *testing.T) {
	file := writeFile(t, "old.conf", "node = n1\nlisten = :8080\nttl = [1,\n", 0o644)
	_, err := loadConfig(nil, env(nil), file)
	if err == nil || !strings.Contains(err.Error(), file+":3:") {
		t.Errorf("error %v, want it at line 3", err)
	}
	file = writeFile(t, "old.conf", "node = n1\nlisten = :8080\nlifetime = 2 h\n", 0o644)
	_, err = loadConfig(nil, env(nil), file)
	if err == nil || !strings.Contains(err.Error(), file+":3:") {
		t.Errorf("error %v, want it at line 3", err)
	}
}
