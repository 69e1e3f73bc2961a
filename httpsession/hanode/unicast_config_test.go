package hanode

import (
	"errors"
	"strings"
	"testing"
)

// TestConfigUnicast: --peers, HANODE_PEERS and the peers key; discovery;
// and the clear errors of issue 14 (a peer that is not an IPv4 address or
// name, both set, a port out of range).
func TestConfigUnicast(t *testing.T) {
	cfg, err := loadConfig(flagSource{"peers": "10.0.0.2, node-c:7000"}, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Peers, ",") != "10.0.0.2,node-c:7000" || cfg.Discovery != "" {
		t.Fatalf("peers %q discovery %q", cfg.Peers, cfg.Discovery)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err = loadConfig(nil, env(map[string]string{"HANODE_DISCOVERY": "dns:hanode.default.svc.cluster.local"}), "")
	if err != nil || cfg.Discovery != "dns:hanode.default.svc.cluster.local" {
		t.Fatalf("discovery from env: %v %+v", err, cfg)
	}
	file := writeFile(t, "hanode.toml", "peers = \"10.0.0.2,10.0.0.3\"\n", 0o600)
	cfg, err = loadConfig(nil, env(nil), file)
	if err != nil || len(cfg.Peers) != 2 {
		t.Fatalf("peers from file: %v %+v", err, cfg)
	}
	file = writeFile(t, "list.toml", "# a TOML array\npeers = [\"10.0.0.2\", \"node-c:7000\"]\n", 0o600)
	cfg, err = loadConfig(nil, env(nil), file)
	if err != nil || strings.Join(cfg.Peers, ",") != "10.0.0.2,node-c:7000" {
		t.Fatalf("peers as a TOML array: %v %+v", err, cfg)
	}
	if src, where := cfg.Source("peers"); src != sourceFile || !strings.HasSuffix(where, "list.toml:2") {
		t.Errorf("source %s %s", src, where)
	}

	cfg, err = loadConfig(flagSource{"peers": "10.0.0.2"}, env(map[string]string{"HANODE_DISCOVERY": "dns:x.example"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "both set") ||
		!strings.Contains(err.Error(), "--peers") || !strings.Contains(err.Error(), "HANODE_DISCOVERY") {
		t.Errorf("both set: %v", err)
	}
	for in, frag := range map[string]string{
		"10.0.0.2:70000":  "out of range",
		"10.0.0.2:0":      "out of range",
		"fe80::1":         "IPv6",
		"239.1.1.1":       "not a unicast address",
		"not a host!":     "not an IPv4 address or host name",
		"10.0.0.2,,node":  "empty peer entry",
		"http://10.0.0.2": "",
	} {
		_, err := loadConfig(flagSource{"peers": in}, env(nil), "")
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), frag) || !strings.Contains(err.Error(), "--peers") {
			t.Errorf("--peers %q: %v", in, err)
		}
	}
	for _, in := range []string{"hanode.svc", "dns:", "dns:10.0.0.1", "srv:_hanode._udp"} {
		if _, err := loadConfig(flagSource{"discovery": in}, env(nil), ""); err == nil || !strings.Contains(err.Error(), "discovery") {
			t.Errorf("--discovery %q: %v", in, err)
		}
	}
}
