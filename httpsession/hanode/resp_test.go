package hanode

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The Redis-protocol settings come from flags, HANODE_ variables and
// config keys alike, and a non-loopback listener needs a password.
func TestRESPSettings(t *testing.T) {
	file := writeFile(t, "hanode.toml", "redis-listen = \"127.0.0.1:7379\"\nredis-password-file = \"/etc/hanode/redis.pw\"\n", 0o644)
	cfg, err := loadConfig(nil, env(nil), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisListen != "127.0.0.1:7379" || cfg.RedisPasswordFile != "/etc/hanode/redis.pw" {
		t.Fatalf("from the file: %+v", cfg)
	}
	cfg, err = loadConfig(flagSource{"redis-listen": "127.0.0.1:6380"}, env(map[string]string{"HANODE_REDIS_LISTEN": "127.0.0.1:6381", "HANODE_REDIS_PASSWORD": "pw"}), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisListen != "127.0.0.1:6380" || cfg.RedisPassword != "pw" {
		t.Fatalf("flag over env over file: %+v", cfg)
	}
	var out strings.Builder
	cfg.WriteEffective(&out)
	if strings.Contains(out.String(), `"pw"`) || !strings.Contains(out.String(), "redis-password") {
		t.Fatalf("config check shows the password or lacks it:\n%s", out.String())
	}
	if _, err := loadConfig(nil, env(map[string]string{"HANODE_REDIS_LISTEN": "nonsense"}), ""); err == nil || !strings.Contains(err.Error(), "HANODE_REDIS_LISTEN") {
		t.Fatalf("bad address: %v", err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string // error substring; "" valid
	}{
		{map[string]string{"HANODE_REDIS_LISTEN": "127.0.0.1:6379"}, ""},
		{map[string]string{"HANODE_REDIS_LISTEN": "localhost:6379"}, ""},
		{map[string]string{"HANODE_REDIS_LISTEN": "0.0.0.0:6379"}, "reachable from other hosts and no password is set"},
		{map[string]string{"HANODE_REDIS_LISTEN": ":6379"}, "reachable from other hosts"},
		{map[string]string{"HANODE_REDIS_LISTEN": "10.0.0.5:6379", "HANODE_REDIS_PASSWORD": "x"}, ""},
		{map[string]string{"HANODE_REDIS_PASSWORD": "x", "HANODE_REDIS_PASSWORD_FILE": "/f"}, "not both"},
		{map[string]string{"HANODE_REDIS_LISTEN": "127.0.0.1:8080"}, "also the HTTP or admin address"},
	} {
		cfg, err := loadConfig(nil, env(tc.env), "")
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
	pw := writeFile(t, "redis.pw", "s3cret\r\nignored\n", 0o600)
	cfg = &Config{RedisPasswordFile: pw}
	if got, err := cfg.respPassword(); got != "s3cret" || err != nil {
		t.Fatalf("password file: %q %v", got, err)
	}
	cfg.RedisPasswordFile = writeFile(t, "empty.pw", "\n", 0o600)
	if _, err := cfg.respPassword(); err == nil {
		t.Fatal("empty password file accepted")
	}
}

// A node started with redis-listen serves the Redis protocol over its
// store, counts it on /metrics, and stops it on Close.
func TestNodeServesRESP(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	cfg, err := loadConfig(flagSource{"listen": free(), "admin": free(), "redis-listen": "127.0.0.1:0", "redis-password": "pw"}, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogOutput = io.Discard
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := net.Dial("tcp", n.RedisAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, step := range []struct{ req, want string }{
		{"GET k\r\n", "-NOAUTH Authentication required.\r\n"},
		{"AUTH default pw\r\n", "+OK\r\n"},
		{"SET k v\r\n", "+OK\r\n"},
		{"GET k\r\n", "$1\r\n"},
	} {
		c.Write([]byte(step.req))
		if line, err := r.ReadString('\n'); line != step.want {
			t.Fatalf("%q: %q %v", step.req, line, err)
		}
	}
	if line, _ := r.ReadString('\n'); line != "v\r\n" {
		t.Fatalf("GET value %q", line)
	}
	if n.store.Get("kv:k") == nil {
		t.Fatal("the key is not a record of the node's store")
	}
	rec := httptest.NewRecorder()
	n.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.Bytes()
	if !strings.Contains(string(body), "hanode_redis_connections 1") || !strings.Contains(string(body), `hanode_redis_commands_total{command="set"} 1`) {
		t.Fatalf("/metrics:\n%s", body)
	}
	addr := n.RedisAddr().String()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection open after Close")
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Fatal("listener open after Close")
	}
}
