package hanode

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAdminMutationsNeedSameOrigin: without a token, on a loopback admin
// address, the endpoints that drain the node or kill sessions refuse what
// a web page open in a local browser can send (a cross-origin form or
// fetch, a DNS-rebound host name), and serve the CLI (no Origin) and
// same-origin requests. With a token, the token decides.
func TestAdminMutationsNeedSameOrigin(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	type req struct {
		name           string
		token          string
		remote, host   string
		origin, fetch  string
		auth           string
		mutation, read int // expected status for a mutation and for a read
	}
	for _, c := range []req{
		{name: "cli", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", mutation: 200, read: 200},
		{name: "localhost host", remote: "127.0.0.1:5000", host: "localhost:9090", mutation: 200, read: 200},
		{name: "same origin", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", origin: "http://127.0.0.1:9090", fetch: "same-origin", mutation: 200, read: 200},
		{name: "typed in the address bar", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", fetch: "none", mutation: 200, read: 200},
		{name: "cross-origin form", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", origin: "https://evil.example", fetch: "cross-site", mutation: 403, read: 200},
		{name: "null origin", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", origin: "null", mutation: 403, read: 200},
		{name: "other loopback port", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", origin: "http://127.0.0.1:8080", mutation: 403, read: 200},
		{name: "cross-site without origin", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", fetch: "cross-site", mutation: 403, read: 200},
		{name: "same-site", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", fetch: "same-site", mutation: 403, read: 200},
		{name: "dns rebinding", remote: "127.0.0.1:5000", host: "evil.example:9090", origin: "http://evil.example:9090", fetch: "same-origin", mutation: 403, read: 403},
		{name: "rebinding without port", remote: "127.0.0.1:5000", host: "evil.example", mutation: 403, read: 403},
		{name: "peer not loopback", remote: "10.0.0.5:5000", host: "127.0.0.1:9090", mutation: 403, read: 403},
		{name: "token, cross-origin", token: "s3cret", auth: "Bearer s3cret", remote: "10.0.0.5:5000", host: "evil.example", origin: "https://evil.example", mutation: 200, read: 200},
		{name: "token missing", token: "s3cret", remote: "127.0.0.1:5000", host: "127.0.0.1:9090", mutation: 401, read: 401},
	} {
		a := &admin{cfg: &Config{Admin: "127.0.0.1:9090", AdminToken: c.token}}
		for _, mut := range []bool{true, false} {
			method, want, h := http.MethodGet, c.read, a.protect(ok)
			if mut {
				method, want, h = http.MethodPost, c.mutation, a.protectMutation(ok)
			}
			r := httptest.NewRequest(method, "/drain", nil)
			r.RemoteAddr, r.Host = c.remote, c.host
			for k, v := range map[string]string{"Origin": c.origin, "Sec-Fetch-Site": c.fetch, "Authorization": c.auth} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != want {
				t.Errorf("%s (%s): %d, want %d: %s", c.name, method, rec.Code, want, rec.Body.String())
			}
		}
	}
}

// TestAdminRoutesUseMutationGuard: POST /drain and DELETE /sessions/...
// of the real handler refuse a cross-origin request (and do not drain).
func TestAdminRoutesUseMutationGuard(t *testing.T) {
	store := newLocalBackend("n1")
	defer store.Close()
	a := &admin{cfg: &Config{Admin: "127.0.0.1:9090"}, store: store, log: slog.New(slog.DiscardHandler), draining: new(atomic.Bool)}
	h := a.handler()
	for _, target := range []string{"POST /drain", "DELETE /sessions/abc"} {
		method, path, _ := strings.Cut(target, " ")
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr, r.Host = "127.0.0.1:5000", "127.0.0.1:9090"
		r.Header.Set("Origin", "http://attacker.example")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s cross-origin: %d", target, rec.Code)
		}
	}
	if a.draining.Load() {
		t.Fatal("a cross-origin POST /drain drained the node")
	}
	r := httptest.NewRequest(http.MethodPost, "/drain", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:5000", "127.0.0.1:9090"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 200 || !a.draining.Load() {
		t.Fatalf("same-origin POST /drain: %d draining=%v", rec.Code, a.draining.Load())
	}
}

// TestAdminTokenFile: --admin-token-file, HANODE_ADMIN_TOKEN_FILE and
// admin-token-file in the config file set the token; a file that others
// can read is refused like the key file; errors never show the file's
// content; the token and the file together are an error.
func TestAdminTokenFile(t *testing.T) {
	const tok = "tok-9f8e7d6c5b4a"
	good := writeFile(t, "token", tok+"\n", 0o600)
	cfgFile := writeFile(t, "hanode.toml", "admin-token-file = \""+good+"\"\n", 0o644)
	for name, load := range map[string]func() (*Config, error){
		"flag": func() (*Config, error) { return loadConfig(flagSource{"admin-token-file": good}, env(nil), "") },
		"env": func() (*Config, error) {
			return loadConfig(nil, env(map[string]string{"HANODE_ADMIN_TOKEN_FILE": good}), "")
		},
		"file": func() (*Config, error) { return loadConfig(nil, env(nil), cfgFile) },
	} {
		cfg, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.AdminToken != tok || cfg.AdminTokenFile != good {
			t.Errorf("%s: token %q from %q", name, cfg.AdminToken, cfg.AdminTokenFile)
		}
	}
	open := writeFile(t, "token-open", tok+"\n", 0o644)
	_, err := loadConfig(flagSource{"admin-token-file": open}, env(nil), "")
	if !errors.Is(err, ErrTokenFilePermissions) || !errors.Is(err, ErrConfig) {
		t.Errorf("mode 0644: %v", err)
	}
	for name, content := range map[string]string{
		"two words": tok + " " + tok + "\n",
		"two lines": tok + "\n" + tok + "\n",
		"empty":     "\n",
		"control":   tok + "\x01\n",
		"too large": strings.Repeat(tok, 400),
	} {
		p := writeFile(t, "t", content, 0o600)
		_, err := loadConfig(flagSource{"admin-token-file": p}, env(nil), "")
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("%s: error shows the token: %v", name, err)
		}
	}
	if _, err := loadConfig(flagSource{"admin-token-file": good, "admin-token": "x"}, env(nil), ""); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("token and token file: %v", err)
	}
	if err := os.Remove(good); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(flagSource{"admin-token-file": good}, env(nil), ""); err == nil {
		t.Error("missing token file accepted")
	}
	// A malformed admin-token line in a config file is reported without
	// its value.
	bad := writeFile(t, "bad.toml", "admin-token = "+tok+" "+tok+"\n", 0o600)
	if _, err := loadConfig(nil, env(nil), bad); err == nil || strings.Contains(err.Error(), tok) {
		t.Errorf("malformed admin-token line: %v", err)
	}
}
