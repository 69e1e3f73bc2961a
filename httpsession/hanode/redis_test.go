package hanode

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hanode/hanode/replicator/redisstore/redistest"
)

// The store settings: names, sources, list parsing and the checks
// between them.
func TestConfigStoreSettings(t *testing.T) {
	cfg, err := loadConfig(nil, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != StoreReplica || cfg.StoreAddrs != nil || cfg.StoreTLS {
		t.Fatalf("defaults: store %q addrs %v tls %v", cfg.Store, cfg.StoreAddrs, cfg.StoreTLS)
	}
	file := writeFile(t, "h.toml", "store = \"redis\"\nstore-addrs = [\"10.0.0.1:7000\", \"10.0.0.2:7000\"]\nstore-tls = true\n", 0o600)
	cfg, err = loadConfig(nil, env(nil), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != StoreRedis || !slices.Equal(cfg.StoreAddrs, []string{"10.0.0.1:7000", "10.0.0.2:7000"}) || !cfg.StoreTLS {
		t.Fatalf("from the file: %q %v %v", cfg.Store, cfg.StoreAddrs, cfg.StoreTLS)
	}
	cfg, err = loadConfig(flagSource{"store-addrs": "a:1, b:2"}, env(map[string]string{"HANODE_STORE": "redis", "HANODE_STORE_ADDRS": "c:3"}), file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.StoreAddrs, []string{"a:1", "b:2"}) {
		t.Fatalf("flag over env over file: %v", cfg.StoreAddrs)
	}
	if src, where := cfg.Source("store"); src != sourceEnv || where != "HANODE_STORE" {
		t.Fatalf("store from %s %s", src, where)
	}
	// store = redis needs nothing of HA, even with ha = true.
	cfg, _ = loadConfig(flagSource{"store": "redis", "store-addrs": "127.0.0.1:6379", "ha": "true"}, env(nil), "")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("store = redis with ha and no node, interface, key-file: %v", err)
	}
	for _, tc := range []struct {
		flags flagSource
		want  string
	}{
		{flagSource{"store": "redis"}, "store-addrs is required"},
		{flagSource{"store": "redis", "store-addrs": "h:1", "store-password": "x", "store-password-file": "/p"}, "not both"},
	} {
		cfg, err := loadConfig(tc.flags, env(nil), "")
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.flags, err, tc.want)
		}
	}
	for _, bad := range []flagSource{{"store": "memcached"}, {"store-addrs": "no-port"}} {
		if _, err := loadConfig(bad, env(nil), ""); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// An application embedding hanode gets its sessions in Redis from the
// settings alone; the password comes from a file.
func TestStartWithRedisStore(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "pw")
	pw := writeFile(t, "pass", "pw\n", 0o600)
	cfg, err := loadConfig(flagSource{"store": "redis", "store-addrs": srv.Addr, "store-password-file": pw,
		"listen": "127.0.0.1:0", "admin": "localhost:0"}, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Ready() {
		t.Fatal("a node on a reachable Redis is not ready")
	}
	m := n.Sessions()
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = m.Put(r.Context(), "k", "v")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Set-Cookie") == "" {
		t.Fatalf("request: %d, cookie %q", rec.Code, rec.Header().Get("Set-Cookie"))
	}
	if keys, _ := srv.Do("--no-auth-warning", "-a", "pw", "KEYS", "hanode:s:*"); !strings.Contains(keys, "hanode:s:{") {
		t.Fatalf("no session hash in Redis: %q", keys)
	}
}
