package redisstore_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator/redisstore"
	"github.com/hanode/hanode/replicator/redisstore/redistest"
)

// app is a small application on httpsession over a Redis store:
// /login?u=NAME renews the ID and sets the principal, /whoami answers the
// principal, /put?v= stores a value, /get answers it.
func app(t *testing.T, s *redisstore.Store, policy httpsession.DuplicateLoginPolicy) (*httptest.Server, *httpsession.Manager) {
	t.Helper()
	m, err := httpsession.New(s, httpsession.Config{
		DuplicateLogin: policy, IdleTimeout: time.Minute, Lifetime: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if err := m.RenewToken(ctx); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if err := m.SetPrincipal(ctx, r.URL.Query().Get("u")); err != nil {
			code := 500
			if errors.Is(err, httpsession.ErrDuplicateLogin) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, m.Principal(r.Context()))
	})
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		_ = m.Put(r.Context(), "v", r.URL.Query().Get("v"))
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, m.GetString(r.Context(), "v"))
	})
	srv := httptest.NewServer(m.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv, m
}

func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 5 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// The duplicate-login policies work on the Redis store through its
// principal index, across two nodes sharing one Redis.
func TestHTTPSessionPolicies(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, redisstore.Config{Node: "a", Addrs: []string{srv.Addr}})
	b := open(t, redisstore.Config{Node: "b", Addrs: []string{srv.Addr}})

	t.Run("InvalidateOlder", func(t *testing.T) {
		sa, _ := app(t, a, httpsession.InvalidateOlder)
		sb, mb := app(t, b, httpsession.InvalidateOlder)
		first, second := browser(t), browser(t)
		if code, _ := get(t, first, sa.URL+"/login?u=alice"); code != 200 {
			t.Fatalf("login: %d", code)
		}
		if _, who := get(t, first, sa.URL+"/whoami"); who != "alice" {
			t.Fatalf("whoami = %q", who)
		}
		if code, _ := get(t, second, sb.URL+"/login?u=alice"); code != 200 {
			t.Fatalf("second login: %d", code)
		}
		if _, who := get(t, first, sa.URL+"/whoami"); who != "" {
			t.Fatalf("the older session still logged in as %q", who)
		}
		if n := len(mb.SessionsOf("alice")); n != 1 {
			t.Fatalf("SessionsOf(alice) = %d sessions, want 1", n)
		}
	})
	t.Run("RefuseNewer", func(t *testing.T) {
		sa, _ := app(t, a, httpsession.RefuseNewer)
		sb, _ := app(t, b, httpsession.RefuseNewer)
		first, second := browser(t), browser(t)
		if code, _ := get(t, first, sa.URL+"/login?u=bob"); code != 200 {
			t.Fatalf("login: %d", code)
		}
		if code, _ := get(t, second, sb.URL+"/login?u=bob"); code != http.StatusConflict {
			t.Fatalf("second login on the other node: %d, want 409", code)
		}
		if _, who := get(t, first, sb.URL+"/whoami"); who != "bob" {
			t.Fatalf("the first session on the other node: whoami = %q", who)
		}
	})
}

// During an outage a request with a session cookie gets an error, not a
// fresh empty session that would hide the user's own.
func TestHTTPSessionOutageIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, redisstore.Config{Node: "a", Addrs: []string{srv.Addr}, Timeout: 500 * time.Millisecond})
	sa, _ := app(t, s, httpsession.AllowDuplicates)
	c := browser(t)
	get(t, c, sa.URL+"/put?v=kept")
	if _, v := get(t, c, sa.URL+"/get"); v != "kept" {
		t.Fatalf("get = %q", v)
	}
	srv.Kill()
	// The near cache may answer until the store notices (its connection
	// drops or a health check fails); from then on requests fail.
	waitFor(t, 5*time.Second, "the store notices the outage", func() bool { return !s.Ready() })
	if code, body := get(t, c, sa.URL+"/get"); code < 500 {
		t.Fatalf("a read during the outage answered %d %q, want a 5xx error", code, body)
	}
}
