package httpsession

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/httpsession/sessiontest"
	"github.com/hanode/hanode/replicator"
)

func TestUndecodableSessionDropped(t *testing.T) {
	st := sessiontest.NewStore("n1")
	n := startApp(t, st, nil)
	id := newID()
	now := time.Now().UnixNano()
	st.Put(&replicator.Session{ID: id, Owner: "n1", Epoch: 1, Created: now, LastAccess: now,
		Attrs: replicator.NewAttrs(map[string]replicator.Attr{"x": {Value: []byte{tagCodec, 0xff, 0x00, 0x13}}, "bad": {Value: []byte{99}}})})
	c := newClient(t)
	c.setToken(n, id+".n1")
	resp, body := c.get(n, "/?op=put&k=a&v=1")
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("user locked out: %d %q", resp.StatusCode, body)
	}
	if got := c.token(n); idOf(t, got) == id {
		t.Fatal("undecodable session kept")
	}
	if st.Get(id) != nil || n.m.Stats().Undecodable != 1 {
		t.Fatalf("not dropped: %+v", n.m.Stats())
	}
}

func TestDuplicateLoginPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy   DuplicateLoginPolicy
		status   int
		oldAlive bool
	}{{AllowDuplicates, 200, true}, {InvalidateOlder, 200, false}, {RefuseNewer, http.StatusConflict, true}} {
		cl := sessiontest.NewCluster("a", "b")
		var reasons []replicator.DestroyReason
		mod := func(c *Config) {
			c.DuplicateLogin = tc.policy
			c.OnEvent = func(e Event) {
				if e.Kind == EventDestroyed {
					reasons = append(reasons, e.Reason)
				}
			}
		}
		na, nb := startApp(t, cl.Node("a"), mod), startApp(t, cl.Node("b"), mod)
		c1, c2 := newClient(t), newClient(t)
		c1.get(na, "/?op=login&v=alice")
		first := idOf(t, c1.token(na))
		resp, _ := c2.get(nb, "/?op=login&v=alice") // the same user on another node
		if resp.StatusCode != tc.status {
			t.Fatalf("policy %d: status %d", tc.policy, resp.StatusCode)
		}
		if alive := cl.Node("a").Get(first) != nil; alive != tc.oldAlive {
			t.Fatalf("policy %d: old session alive=%v", tc.policy, alive)
		}
		if tc.policy == InvalidateOlder {
			if len(reasons) != 1 || reasons[0] != replicator.ReasonDisplaced || nb.m.Stats().Displaced != 1 {
				t.Fatalf("displacement not reported: %v", reasons)
			}
			if got := nb.m.SessionsOf("alice"); len(got) != 1 || got[0].Hash != ShortHash(c2.token(nb)) {
				t.Fatalf("SessionsOf %+v", got)
			}
		}
	}
}

func TestDestroyPrincipal(t *testing.T) {
	st := sessiontest.NewStore("n1")
	n := startApp(t, st, nil)
	for range 3 {
		newClient(t).get(n, "/?op=login&v=bob")
	}
	newClient(t).get(n, "/?op=login&v=carol")
	if k, err := n.m.DestroyPrincipal(context.Background(), "bob"); k != 3 || err != nil {
		t.Fatal(k, err)
	}
	if len(n.m.SessionsOf("bob")) != 0 || st.Len() != 1 {
		t.Fatal("left over")
	}
}

func TestMaxActive(t *testing.T) {
	st := sessiontest.NewStore("n1")
	n := startApp(t, st, func(c *Config) { c.MaxActive = 2 })
	newClient(t).get(n, "/?op=put&k=a&v=1")
	newClient(t).get(n, "/?op=put&k=a&v=1")
	resp, body := newClient(t).get(n, "/?op=put&k=a&v=1")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, ErrTooManySessions.Error()) || st.Len() != 2 {
		t.Fatalf("refuse: %d %q len=%d", resp.StatusCode, body, st.Len())
	}

	st2 := sessiontest.NewStore("n1")
	n2 := startApp(t, st2, func(c *Config) { c.MaxActive = 2; c.MaxActivePolicy = MaxActiveEvictOldest })
	c1 := newClient(t)
	c1.get(n2, "/?op=put&k=a&v=1")
	newClient(t).get(n2, "/?op=put&k=a&v=1")
	newClient(t).get(n2, "/?op=put&k=a&v=1")
	if st2.Len() != 2 || st2.Get(idOf(t, c1.token(n2))) != nil || n2.m.Stats().Evicted != 1 {
		t.Fatalf("evict: len=%d %+v", st2.Len(), n2.m.Stats())
	}
}

func TestConfigValidation(t *testing.T) {
	st := sessiontest.NewStore("n1")
	for _, mod := range []func(*Config){
		func(c *Config) { c.Cookie.SameSite = http.SameSiteNoneMode },
		func(c *Config) { c.Cookie.Partitioned = true },
		func(c *Config) { c.Cookie.Name = "bad name" },
		func(c *Config) { c.MaxActive = -1 },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if _, err := New(st, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("accepted %+v: %v", cfg.Cookie, err)
		}
	}
	if _, err := New(sessiontest.NewStore("bad.route"), DefaultConfig()); err == nil {
		t.Error("node name with a dot accepted")
	}
	cfg := Config{Cookie: CookieConfig{SameSite: http.SameSiteNoneMode, Secure: true, Partitioned: true}}
	if _, err := New(st, cfg); err != nil {
		t.Error(err)
	}
}

func TestCookieSettings(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), func(c *Config) {
		c.Cookie = CookieConfig{Name: "sid", Domain: "example.com", Path: "/app", Secure: true,
			SameSite: http.SameSiteStrictMode, Partitioned: true, BrowserSession: true, AllowScript: true}
	})
	c := newClient(t)
	resp, _ := c.get(n, "/?op=put&k=a&v=1")
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"sid=", "Domain=example.com", "Path=/app", "Secure", "SameSite=Strict", "Partitioned"} {
		if !strings.Contains(sc, want) {
			t.Errorf("%q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, "HttpOnly") || strings.Contains(sc, "Expires") {
		t.Errorf("%q: AllowScript/BrowserSession ignored", sc)
	}
	// RememberMe turns the browser-session cookie into a persistent one.
	r := newRequestWithCookie(t, n, sc)
	resp = do(t, n, r, "/?op=remember&v=true")
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "Expires=") {
		t.Errorf("RememberMe: %q", sc)
	}
}

func newRequestWithCookie(t *testing.T, n *node, setCookie string) string {
	v, _, _ := strings.Cut(setCookie, ";")
	return v
}

func do(t *testing.T, n *node, cookie, path string) *http.Response {
	req, _ := http.NewRequest("GET", n.srv.URL+path, nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestHeaderToken(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), func(c *Config) { c.HeaderName = "X-Session" })
	req, _ := http.NewRequest("GET", n.srv.URL+"/?op=put&k=a&v=1", nil)
	req.Header.Set("X-Session", "none")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok := resp.Header.Get("X-Session")
	if idOf(t, tok) == "" || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("header token %q, cookie %q", tok, resp.Header.Get("Set-Cookie"))
	}
	req, _ = http.NewRequest("GET", n.srv.URL+"/?op=get&k=a", nil)
	req.Header.Set("X-Session", tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 10)
	k, _ := resp.Body.Read(buf)
	if string(buf[:k]) != "1" {
		t.Fatalf("header session lost: %q", buf[:k])
	}
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	clk := newClock()
	st := sessiontest.NewStore("n1")
	var events []Event
	n := startApp(t, st, func(c *Config) {
		c.Clock = clk.Now
		c.IdleTimeout = 10 * time.Minute
		c.Lifetime = time.Hour
		c.OnEvent = func(e Event) { events = append(events, e) }
	})
	c := newClient(t)
	c.get(n, "/?op=put&k=a&v=1")
	for range 6 { // keeps it alive past the idle timeout, until the lifetime
		clk.Advance(9 * time.Minute)
		if _, body := c.get(n, "/?op=get&k=a"); body != "1" {
			t.Fatalf("expired early: %q", body)
		}
	}
	clk.Advance(9 * time.Minute) // 63 minutes: past the lifetime
	if _, body := c.get(n, "/?op=get&k=a"); body != "<nil>" {
		t.Fatal("lifetime ignored")
	}
	c.get(n, "/?op=put&k=a&v=1")
	clk.Advance(11 * time.Minute)
	if _, body := c.get(n, "/?op=get&k=a"); body != "<nil>" {
		t.Fatal("idle timeout ignored")
	}
	if s := n.m.Stats(); s.Expired != 2 {
		t.Fatalf("expired %d", s.Expired)
	}
	if last := events[len(events)-1]; last.Kind != EventDestroyed || last.Reason != replicator.ReasonExpired {
		t.Fatalf("event %+v", last)
	}
}

func TestDirtyPolicies(t *testing.T) {
	type prefs struct{ Tags map[string]bool }
	key := NewKey[*prefs]("prefs")
	for _, policy := range []DirtyPolicy{WrittenKeys, DetectMutations} {
		var m *Manager
		n := startNode(t, sessiontest.NewStore("n1"), func(c *Config) { c.Dirty = policy; c.Codec = JSONCodec{} },
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/init":
					key.Put(r.Context(), &prefs{Tags: map[string]bool{"a": true}})
				case "/mutate":
					p, ok := key.Get(r.Context())
					if !ok {
						t.Error("typed get with JSON codec")
						return
					}
					p.Tags["b"] = true // in place, no Put
				case "/count":
					p, _ := key.Get(r.Context())
					w.Write([]byte{byte('0' + len(p.Tags))})
				}
			}))
		m = n.m
		_ = m
		c := newClient(t)
		c.get(n, "/init")
		c.get(n, "/mutate")
		_, body := c.get(n, "/count")
		want := map[DirtyPolicy]string{WrittenKeys: "1", DetectMutations: "2"}[policy]
		if body != want {
			t.Errorf("policy %d: %s tags, want %s", policy, body, want)
		}
	}
}

func TestPutEncodeError(t *testing.T) {
	var m *Manager
	n := startNode(t, sessiontest.NewStore("n1"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Put(r.Context(), "ch", make(chan int)); err == nil {
			t.Error("unencodable value accepted")
		}
		if err := m.Put(r.Context(), reservedPrefix+"x", 1); err == nil {
			t.Error("reserved key accepted")
		}
	}))
	m = n.m
	newClient(t).get(n, "/")
	if m.Stats().EncodeErrors != 1 {
		t.Fatal("not counted")
	}
}

func TestNoSessionInContext(t *testing.T) {
	m := newManager(t, sessiontest.NewStore("n1"), nil)
	ctx := context.Background()
	if err := m.Put(ctx, "a", 1); !errors.Is(err, ErrNoSession) || m.Get(ctx, "a") != nil || m.Token(ctx) != "" {
		t.Fatal("no session")
	}
	if _, ok := FromContext(nil); ok { //nolint:staticcheck // nil context on purpose
		t.Fatal("nil ctx")
	}
	if err := NewKey[int]("x").Put(ctx, 1); !errors.Is(err, ErrNoSession) {
		t.Fatal(err)
	}
}

func TestCommitFailureAnswersError(t *testing.T) {
	st := sessiontest.NewStore("n1")
	n := startApp(t, st, nil)
	st.FailCommits(replicator.ErrTooLarge)
	resp, body := newClient(t).get(n, "/?op=put&k=a&v=1")
	if resp.StatusCode != 413 || strings.Contains(body, "<nil>") { // ErrorStatus: too large
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n.m.Stats().CommitErrors != 1 {
		t.Fatal("not counted")
	}
}

func TestConsistencyOverride(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	var seen []replicator.CommitResult
	var m *Manager
	n := startNode(t, cl.Node("a"), func(c *Config) {
		c.OnCommit = func(r *http.Request, res replicator.CommitResult, err error) { seen = append(seen, res) }
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.SetConsistency(r.Context(), replicator.SyncAll)
		s, _ := FromContext(r.Context())
		if s.consistency != replicator.SyncAll {
			t.Error("override ignored")
		}
		m.Put(r.Context(), "a", 1)
	}))
	m = n.m
	newClient(t).get(n, "/")
	if len(seen) != 1 || !seen[0].Replicated {
		t.Fatalf("OnCommit %+v", seen)
	}
	ctx := ConsistencyContext(context.Background(), replicator.Sync)
	r, _ := http.NewRequestWithContext(ctx, "GET", "/", nil)
	var s Session
	m.load(&s, r)
	if s.consistency != replicator.Sync {
		t.Fatal("ConsistencyContext ignored")
	}
}

func TestIterate(t *testing.T) {
	st := sessiontest.NewStore("n1")
	n := startApp(t, st, nil)
	for range 3 {
		newClient(t).get(n, "/?op=put&k=a&v=1")
	}
	count := 0
	err := n.m.Iterate(context.Background(), func(ctx context.Context) error {
		count++
		return n.m.Put(ctx, "migrated", true)
	})
	if err != nil || count != 3 {
		t.Fatal(err, count)
	}
	st.Range(func(id string) bool {
		if st.Get(id).Attrs.Value("migrated") == nil {
			t.Error("iterate change lost")
		}
		return true
	})
	// A store without Range cannot be iterated.
	m2 := newManager(t, struct{ replicator.Store }{replicator.NewLocal("n1", replicator.DefaultReplicaConfig())}, nil)
	if err := m2.Iterate(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}
}
