package hanode

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hanode/hanode/multicast"
)

// TestSecurityReloadKeys checks the SIGHUP reload logic without a
// network: bad files are refused with a clear error and the keys kept;
// a good file swaps the keys in place and the log says what changed,
// never the key material.
func TestSecurityReloadKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	f1, _ := multicast.GenerateKeyFile()
	if err := os.WriteFile(p, []byte(f1), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := multicast.LoadKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	log := slogText(&logs)
	holder := kr // what the transport and state transfer hold
	// Unchanged.
	if changed, err := reloadKeys(p, kr, log); changed || err != nil {
		t.Fatalf("unchanged file: %v %v", changed, err)
	}
	// Loose permissions, garbage, missing file: refused, keys kept.
	os.Chmod(p, 0o640)
	if _, err := reloadKeys(p, kr, log); !errors.Is(err, multicast.ErrKeyFilePermissions) {
		t.Fatalf("mode 640: %v", err)
	}
	os.WriteFile(p, []byte("key 1 nonsense primary\n"), 0o600)
	os.Chmod(p, 0o600)
	if _, err := reloadKeys(p, kr, log); !errors.Is(err, multicast.ErrKeyring) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := reloadKeys(filepath.Join(dir, "missing"), kr, log); err == nil {
		t.Fatal("missing file accepted")
	}
	if id, _ := holder.Primary(); id != 1 || len(holder.IDs()) != 1 {
		t.Fatal("keys changed by a refused reload")
	}
	// Install key 2, then promote it.
	l2, _ := multicast.GenerateKeyLine(2, false)
	os.WriteFile(p, []byte(f1+l2), 0o600)
	if changed, err := reloadKeys(p, kr, log); !changed || err != nil {
		t.Fatalf("install: %v %v", changed, err)
	}
	if ids := holder.IDs(); len(ids) != 2 {
		t.Fatalf("holder sees %v", ids)
	}
	os.WriteFile(p, []byte(strings.Replace(f1, " primary", "", 1)+strings.TrimSpace(l2)+" primary\n"), 0o600)
	if changed, _ := reloadKeys(p, kr, log); !changed {
		t.Fatal("promote: unchanged")
	}
	if id, _ := holder.Primary(); id != 2 {
		t.Fatalf("primary %d after promote", id)
	}
	out := logs.String()
	for _, want := range []string{"key reload refused", "chmod 600", "added=[2]", "primary=2", "primary_before=1", "keys=\"1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	k1 := strings.Fields(f1[strings.Index(f1, "key 1"):])[2]
	if strings.Contains(out, k1) || strings.Contains(out, strings.Fields(l2)[2]) {
		t.Error("the log shows key material")
	}
}

// TestSecurityAdminProtect: session listing and kill need the token when
// one is set; without a token they answer only on a loopback address.
func TestSecurityAdminProtect(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	for _, c := range []struct {
		admin, token, auth string
		want               int
	}{
		{"127.0.0.1:9090", "", "", 200},
		{"[::1]:9090", "", "", 200},
		{"localhost:9090", "", "", 200},
		{"10.0.0.1:9090", "", "", http.StatusForbidden},
		{"0.0.0.0:9090", "", "", http.StatusForbidden},
		{":9090", "", "", http.StatusForbidden},
		{"10.0.0.1:9090", "s3cret", "", http.StatusUnauthorized},
		{"10.0.0.1:9090", "s3cret", "Bearer s3cre", http.StatusUnauthorized},
		{"10.0.0.1:9090", "s3cret", "Bearer s3cret ", http.StatusUnauthorized},
		{"10.0.0.1:9090", "s3cret", "Basic s3cret", http.StatusUnauthorized},
		{"10.0.0.1:9090", "s3cret", "Bearer s3cret", 200},
		{"127.0.0.1:9090", "s3cret", "", http.StatusUnauthorized},
	} {
		a := &admin{cfg: &Config{Admin: c.admin, AdminToken: c.token}}
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			req, _ := http.NewRequest(m, "http://127.0.0.1:9090/sessions", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := &statusRecorder{}
			if m == http.MethodGet {
				a.protect(ok).ServeHTTP(rec, req)
			} else {
				a.protectMutation(ok).ServeHTTP(rec, req)
			}
			if rec.code != c.want {
				t.Errorf("%+v %s: %d, want %d", c, m, rec.code, c.want)
			}
		}
	}
}

type statusRecorder struct {
	h    http.Header
	code int
}

func (r *statusRecorder) Header() http.Header {
	if r.h == nil {
		r.h = http.Header{}
	}
	return r.h
}
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) { r.code = code }

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
