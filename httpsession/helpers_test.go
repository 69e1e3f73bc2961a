package httpsession

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/httpsession/sessiontest"
	"github.com/hanode/hanode/replicator"
)

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newManager(t testing.TB, store replicator.Store, mod func(*Config)) *Manager {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// node is one test server: a Manager over a store behind httptest.
type node struct {
	m   *Manager
	srv *httptest.Server
	st  *sessiontest.Store
}

func startNode(t testing.TB, store replicator.Store, mod func(*Config), h http.Handler) *node {
	t.Helper()
	m := newManager(t, store, mod)
	st, _ := store.(*sessiontest.Store)
	mux := http.NewServeMux()
	mux.Handle("/", h)
	srv := httptest.NewServer(m.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return &node{m: m, srv: srv, st: st}
}

// client is a browser with one cookie jar that can talk to several nodes
// (all on 127.0.0.1, so the host-only cookie is shared, like behind a load
// balancer).
type client struct {
	t   testing.TB
	jar *cookiejar.Jar
	hc  *http.Client
}

func newClient(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, jar: jar, hc: &http.Client{Jar: jar}}
}

func (c *client) get(n *node, path string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.hc.Get(n.srv.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func (c *client) token(n *node) string {
	u, _ := url.Parse(n.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == n.m.cfg.Cookie.Name {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setToken(n *node, tok string) {
	u, _ := url.Parse(n.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: n.m.cfg.Cookie.Name, Value: tok, Path: "/"}})
}

func idOf(t testing.TB, tok string) string {
	t.Helper()
	id, _, ok := ParseID(tok)
	if !ok {
		t.Fatalf("bad token %q", tok)
	}
	return id
}

func routeOf(tok string) string {
	_, r, _ := strings.Cut(tok, ".")
	return r
}
