package hanode

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/redisstore"
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

// Switching to store = redis imports the sessions of the replica store's
// snapshot file once (users stay logged in); what Redis already holds
// wins; the file is renamed so that a later start imports nothing.
func TestSwitchImportsSnapshot(t *testing.T) {
	srv := redistest.Start(t)
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, "cluster.key", kf, 0o600)
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		t.Fatal(err)
	}
	// The replica store's sessions, as a node on store = replica saved them.
	l := replicator.NewLocal("n1", replicator.DefaultReplicaConfig())
	now := time.Now().UnixNano()
	commit := func(id string, ops ...replicator.Op) {
		d := &replicator.Delta{ID: id, Epoch: 1, Created: now, LastAccess: now, IdleTimeout: int64(time.Hour), Deadline: now + int64(24*time.Hour), Ops: ops}
		if _, err := l.Commit(context.Background(), d, replicator.Async); err != nil {
			t.Fatal(err)
		}
	}
	set := func(k, v string) replicator.Op {
		return replicator.Op{Kind: replicator.OpSet, Key: k, Value: []byte(v)}
	}
	commit("alice-session-000000000000000001", set("cart", "3 items"), replicator.Op{Kind: replicator.OpPrincipal, Value: []byte("alice")})
	commit("bob-session-00000000000000000002", set("cart", "from the replica"))
	commit("gone-session-0000000000000000003", set("k", "v"))
	commit("gone-session-0000000000000000003", replicator.InvalidateOp(replicator.ReasonInvalidated))
	snap := filepath.Join(t.TempDir(), "replica.snap")
	if _, err := replicator.SaveFile(snap, l.Replica(), "hanode", multicast.SnapshotSealer{Keyring: kr}); err != nil {
		t.Fatal(err)
	}
	// bob's session is already in Redis, newer: it must stay.
	pre, err := redisstore.New(redisstore.Config{Node: "n2", Addrs: []string{srv.Addr}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	d := &replicator.Delta{ID: "bob-session-00000000000000000002", Epoch: 1, Created: now, LastAccess: now, IdleTimeout: int64(time.Hour), Ops: []replicator.Op{set("cart", "from redis")}}
	if _, err := pre.Commit(context.Background(), d, replicator.Async); err != nil {
		t.Fatal(err)
	}
	pre.Close()

	start := func() *Node {
		cfg, err := loadConfig(flagSource{"store": "redis", "store-addrs": srv.Addr, "snapshot": snap, "key-file": keyFile,
			"listen": "127.0.0.1:0", "admin": "localhost:0"}, env(nil), "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	st := n.Sessions().Store()
	if ss := st.Get("alice-session-000000000000000001"); ss == nil || string(ss.Attrs.Value("cart")) != "3 items" || ss.Principal != "alice" {
		t.Fatalf("alice's session after the import: %+v", ss)
	}
	if ids := st.SessionsOf("alice"); len(ids) != 1 {
		t.Fatalf("principal index after the import: %v", ids)
	}
	if ss := st.Get("bob-session-00000000000000000002"); ss == nil || string(ss.Attrs.Value("cart")) != "from redis" {
		t.Fatalf("the import overwrote what Redis held: %+v", ss)
	}
	if ss := st.Get("gone-session-0000000000000000003"); ss != nil {
		t.Fatal("a destroyed session was imported")
	}
	if _, err := os.Stat(snap + ".imported"); err != nil {
		t.Fatalf("snapshot not renamed: %v", err)
	}
	n.Close()
	// A second start finds no snapshot: nothing is imported again.
	n = start()
	n.Close()
}
