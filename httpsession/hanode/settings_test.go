package hanode

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestFromFlags: an application's flags (AddFlags, FromFlags) resolve
// with the same precedence and errors as `hanode run`'s.
func TestFromFlags(t *testing.T) {
	file := writeFile(t, "app.toml", "ha = true\nnode = \"from-file\"\nttl = 4\nlisten = \"127.0.0.1:7001\"\n", 0o644)
	t.Setenv("HANODE_TTL", "3")
	t.Setenv("HANODE_CONFIG", "")
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	AddFlags(fs)
	if fs.Lookup("demo-debug") != nil {
		t.Error("AddFlags defined the daemon-only --demo-debug")
	}
	if err := fs.Parse([]string{"-c", file, "--node", "n2", "--ha=false"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := FromFlags(fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node != "n2" || cfg.HA || cfg.TTL != 3 || cfg.Listen != "127.0.0.1:7001" || cfg.ConfigFile != file {
		t.Errorf("config %+v", cfg)
	}
	if src, where := cfg.Source("ttl"); src != sourceEnv || where != "HANODE_TTL" {
		t.Errorf("ttl from %s %s", src, where)
	}
	if _, where := cfg.Source("listen"); where != file+":4" {
		t.Errorf("listen from %s", where)
	}

	// A bare boolean flag means true; a bad value names the flag.
	fs = flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	AddFlags(fs)
	if err := fs.Parse([]string{"--ha", "--ttl", "x"}); err != nil {
		t.Fatal(err)
	}
	_, err = FromFlags(fs)
	if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--ttl") {
		t.Errorf("bad --ttl: %v", err)
	}
	if err := fs.Parse([]string{"--ha=maybe"}); err == nil {
		t.Error("--ha=maybe accepted")
	}

	// HANODE_CONFIG names the file when -c is absent.
	t.Setenv("HANODE_CONFIG", file)
	cfg, err = FromEnv()
	if err != nil || !cfg.HA || cfg.Node != "from-file" {
		t.Errorf("FromEnv: %+v %v", cfg, err)
	}
}

func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings() {
		if seen[s.Name] || s.Env != EnvName(s.Name) || s.Usage == "" {
			t.Errorf("setting %+v", s)
		}
		seen[s.Name] = true
	}
	for _, n := range []string{"ha", "node", "listen", "admin", "key-file", "interface", "consistency"} {
		if !seen[n] {
			t.Errorf("no setting %s", n)
		}
	}
}
