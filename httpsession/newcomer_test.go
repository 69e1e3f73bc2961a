package httpsession

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/replicator"
)

// recBrowser drives a handler through httptest.ResponseRecorder, keeping
// the session cookie like a browser would.
type recBrowser struct {
	h      http.Handler
	cookie *http.Cookie
}

func (b *recBrowser) do(method, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			b.cookie = nil
		} else {
			b.cookie = c
		}
	}
	return w
}

// logBuffer returns a logger writing text lines into the returned buffer.
func logBuffer() (*slog.Logger, *syncBuffer) {
	var b syncBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// syncBuffer is a log sink read while goroutines write (testutil).
type syncBuffer = testutil.SyncBuffer

// TestQuickStartExpiresSessions follows the README's quick start
// (replicator.NewLocal, then New, nothing else): sessions with a 1 s idle
// timeout are gone 2 s later, reported as expired, without anyone calling
// Run.
func TestQuickStartExpiresSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := replicator.NewLocal("local", replicator.ReplicaConfig{})
		defer store.Close()
		var expired int
		mgr, err := New(store, Config{
			IdleTimeout: time.Second,
			Logger:      slog.New(slog.DiscardHandler),
			OnEvent: func(e Event) {
				if e.Kind == EventDestroyed && e.Reason == replicator.ReasonExpired {
					expired++
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		h := mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := mgr.GetInt(r.Context(), "n") + 1
			if err := mgr.Put(r.Context(), "n", n); err != nil {
				t.Error(err)
			}
			fmt.Fprintln(w, n)
		}))
		for range 100 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/counter", nil))
		}
		if store.Len() != 100 {
			t.Fatalf("%d sessions, want 100", store.Len())
		}
		time.Sleep(2 * time.Second) // virtual (synctest): past the 1 s idle timeout
		synctest.Wait()
		if n := store.Len(); n != 0 {
			t.Fatalf("%d sessions still held 2 s after a 1 s idle timeout", n)
		}
		if expired != 100 || mgr.Stats().Expired != 100 {
			t.Fatalf("expired events %d, Stats.Expired %d, want 100", expired, mgr.Stats().Expired)
		}
	})
}

// TestPutTooLarge: a value over the attribute limit, or one that would take
// the session over the session limit, fails at Put with ErrTooLarge naming
// the limit; nothing is stored, the rest of the session is kept, the
// warning is logged and the response is the handler's own (200, not 500).
func TestPutTooLarge(t *testing.T) {
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{MaxAttrBytes: 600, MaxSessionBytes: 1000})
	t.Cleanup(func() { store.Close() })
	logger, logs := logBuffer()
	mgr, err := New(store, Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var putErr error
	b := &recBrowser{h: mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.URL.Query().Get("k")
		n := len(r.URL.Query().Get("n"))
		putErr = mgr.Put(r.Context(), k, strings.Repeat("x", n))
		fmt.Fprint(w, "ok")
	}))}
	n := func(size int) string { return strings.Repeat("1", size) }

	w := b.do("POST", "/?k=a&n="+n(500))
	if putErr != nil || w.Code != 200 {
		t.Fatalf("first put: %v, status %d", putErr, w.Code)
	}
	w = b.do("POST", "/?k=big&n="+n(700))
	if !errors.Is(putErr, ErrTooLarge) || !errors.Is(putErr, replicator.ErrTooLarge) ||
		!strings.Contains(putErr.Error(), "limit 600 (replicator.ReplicaConfig.MaxAttrBytes)") || !strings.Contains(putErr.Error(), "MaxAttrBytes") {
		t.Fatalf("attribute over the limit: %v", putErr)
	}
	if w.Code != 200 {
		t.Fatalf("status %d after a refused Put, want the handler's 200", w.Code)
	}
	w = b.do("POST", "/?k=b&n="+n(500))
	if !errors.Is(putErr, ErrTooLarge) || !strings.Contains(putErr.Error(), "limit 1000 (replicator.ReplicaConfig.MaxSessionBytes)") ||
		!strings.Contains(putErr.Error(), "MaxSessionBytes") {
		t.Fatalf("session over the limit: %v", putErr)
	}
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	id := idOf(t, b.cookie.Value)
	s := store.Get(id)
	if s == nil || s.Attrs.Len() != 1 || len(s.Attrs.Value("a")) != 501 {
		t.Fatalf("stored session: %+v", s)
	}
	// Replacing a value counts its new size only.
	b.do("POST", "/?k=a&n="+n(590))
	if putErr != nil {
		t.Fatalf("replacing a value within the limit: %v", putErr)
	}
	// A new visitor whose first Put is refused gets no session and no cookie.
	fresh := &recBrowser{h: b.h}
	w = fresh.do("POST", "/?k=big&n="+n(700))
	if !errors.Is(putErr, ErrTooLarge) || fresh.cookie != nil || w.Header().Get("Set-Cookie") != "" || store.Len() != 1 {
		t.Fatalf("refused first Put: %v, cookie %v, %d sessions", putErr, fresh.cookie, store.Len())
	}
	if got := strings.Count(logs.String(), "value not stored"); got != 3 {
		t.Fatalf("%d warnings logged, want 3:\n%s", got, logs)
	}
	if mgr.Stats().CommitErrors != 0 {
		t.Fatal("a refused Put reached the commit")
	}
}

type withUnexported struct {
	Name  string
	items []string
}

type withFunc struct {
	Name string
	Done func()
}

// selfEncoded has unexported fields but encodes itself.
type selfEncoded struct{ n int }

func (s selfEncoded) MarshalBinary() ([]byte, error) { return []byte{byte(s.n)}, nil }
func (s *selfEncoded) UnmarshalBinary(b []byte) error {
	if len(b) != 1 {
		return errors.New("bad")
	}
	s.n = int(b[0])
	return nil
}

type fine struct {
	Name  string
	When  time.Time
	Inner selfEncoded
	Tags  map[string][]int
}

// TestPutUnencodable: what gob can never encode (chan, func, also inside an
// untyped map) and what it would silently lose (unexported fields, func
// fields) is refused at Put with ErrUnencodable and a message saying why,
// and logged; self-encoding types and time.Time are accepted.
func TestPutUnencodable(t *testing.T) {
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{})
	t.Cleanup(func() { store.Close() })
	logger, logs := logBuffer()
	mgr, err := New(store, Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	registerGob(map[string]any{})
	registerGob(withUnexported{})
	registerGob(fine{})
	cases := []struct {
		v    any
		want []string // substrings of the error; nil: accepted
	}{
		{make(chan int), []string{"chan int is a chan, which can never be encoded"}},
		{func() {}, []string{"func() is a func, which can never be encoded"}},
		{map[string]any{"c": make(chan string)}, []string{"chan string is a chan, which can never be encoded"}},
		{withUnexported{Name: "x", items: []string{"a"}}, []string{"unexported field items", "silently drop"}},
		{withFunc{Name: "x"}, []string{"can never be encoded", "at Done"}},
		{[]*withUnexported{{Name: "x"}}, []string{"unexported field items"}},
		{fine{Name: "x", When: time.Unix(1, 0), Inner: selfEncoded{n: 3}, Tags: map[string][]int{"a": {1}}}, nil},
	}
	for _, c := range cases {
		var putErr error
		h := mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			putErr = mgr.Put(r.Context(), "v", c.v)
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))
		if c.want == nil {
			if putErr != nil {
				t.Errorf("%T refused: %v", c.v, putErr)
			}
			continue
		}
		if !errors.Is(putErr, ErrUnencodable) {
			t.Errorf("%T: %v, want ErrUnencodable", c.v, putErr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(putErr.Error(), w) {
				t.Errorf("%T: %q lacks %q", c.v, putErr, w)
			}
		}
		if strings.Contains(putErr.Error(), "gob.Register") {
			t.Errorf("%T: %q suggests registering", c.v, putErr)
		}
	}
	if got := strings.Count(logs.String(), "value not stored"); got != len(cases)-1 {
		t.Fatalf("%d warnings logged, want %d:\n%s", got, len(cases)-1, logs)
	}
	if store.Len() != 1 {
		t.Fatalf("%d sessions stored, want only the accepted value's", store.Len())
	}
}

// TestPutUnregisteredHint: a type gob needs registered gets gob's error
// plus what to do about it.
func TestPutUnregisteredHint(t *testing.T) {
	type local struct{ A int }
	_, err := GobCodec{}.Encode(local{A: 1})
	if err == nil || !strings.Contains(err.Error(), "gob.Register") || !strings.Contains(err.Error(), "NewKey") {
		t.Fatalf("%v", err)
	}
}

// TestGetMutateWithoutPut documents what happens to a value read with Get
// and changed in place: with the default WrittenKeys policy the change is
// lost unless the value is Put back; Put back (or DetectMutations) keeps
// it; a value changed after its Put in the same request is kept.
func TestGetMutateWithoutPut(t *testing.T) {
	cartKey := NewKey[map[string]int]("cart")
	for _, tc := range []struct {
		name   string
		dirty  DirtyPolicy
		op     string
		remain int // the cart's "apple" count on the next request
	}{
		{"written-keys/mutate", WrittenKeys, "mutate", 1},
		{"written-keys/mutate-typed", WrittenKeys, "mutate-typed", 1},
		{"written-keys/mutate-and-put", WrittenKeys, "mutate-put", 2},
		{"written-keys/put-then-mutate", WrittenKeys, "put-mutate", 3},
		{"detect-mutations/mutate", DetectMutations, "mutate", 2},
		{"detect-mutations/mutate-typed", DetectMutations, "mutate-typed", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := replicator.NewLocal("n1", replicator.ReplicaConfig{})
			t.Cleanup(func() { store.Close() })
			mgr, err := New(store, Config{Dirty: tc.dirty, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			b := &recBrowser{h: mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				var err error
				switch r.URL.Query().Get("op") {
				case "init":
					err = cartKey.Put(ctx, map[string]int{"apple": 1})
				case "mutate":
					mgr.Get(ctx, "cart").(map[string]int)["apple"]++
				case "mutate-typed":
					cart, _ := cartKey.Get(ctx)
					cart["apple"]++
				case "mutate-put":
					cart, _ := cartKey.Get(ctx)
					cart["apple"]++
					err = cartKey.Put(ctx, cart)
				case "put-mutate":
					cart := map[string]int{"apple": 2}
					err = cartKey.Put(ctx, cart)
					cart["apple"]++ // before the response starts: kept
				case "get":
					cart, _ := cartKey.Get(ctx)
					fmt.Fprint(w, cart["apple"])
				}
				if err != nil {
					t.Error(err)
				}
			}))}
			b.do("POST", "/?op=init")
			b.do("POST", "/?op="+tc.op)
			if got := b.do("GET", "/?op=get").Body.String(); got != fmt.Sprint(tc.remain) {
				t.Fatalf("apple = %s on the next request, want %d", got, tc.remain)
			}
		})
	}
}

// TestMergeSession: scs's MergeSession. The values of a lost session are
// copied into the current one (overwriting shared keys), the other session
// is destroyed once the request commits, and merging oneself or an unknown
// token changes nothing.
func TestMergeSession(t *testing.T) {
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{MaxSessionBytes: 2000})
	t.Cleanup(func() { store.Close() })
	mgr, err := New(store, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mergeErr error
	h := mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		q := r.URL.Query()
		switch q.Get("op") {
		case "put":
			if err := mgr.Put(ctx, q.Get("k"), q.Get("v")); err != nil {
				t.Error(err)
			}
		case "merge":
			mergeErr = mgr.MergeSession(ctx, q.Get("tok"))
		case "dump":
			for _, k := range mgr.Keys(ctx) {
				fmt.Fprintf(w, "%s=%s;", k, mgr.GetString(ctx, k))
			}
		}
	}))
	lost := &recBrowser{h: h}
	lost.do("POST", "/?op=put&k=cart&v=apple")
	lost.do("POST", "/?op=put&k=theme&v=dark")
	lostTok := lost.cookie.Value

	b := &recBrowser{h: h}
	b.do("POST", "/?op=put&k=theme&v=light")
	b.do("POST", "/?op=put&k=user&v=alice")
	b.do("POST", "/?op=merge&tok="+lostTok)
	if mergeErr != nil {
		t.Fatal(mergeErr)
	}
	if got := b.do("GET", "/?op=dump").Body.String(); got != "cart=apple;theme=dark;user=alice;" {
		t.Fatalf("after merge: %q", got)
	}
	if store.Get(idOf(t, lostTok)) != nil || store.Len() != 1 {
		t.Fatalf("merged session not destroyed (%d sessions)", store.Len())
	}
	// No-ops: itself, an unknown token, a malformed one, the destroyed one.
	for _, tok := range []string{b.cookie.Value, newID() + ".n1", "junk", lostTok} {
		b.do("POST", "/?op=merge&tok="+tok)
		if mergeErr != nil {
			t.Fatalf("merge %q: %v", tok, mergeErr)
		}
	}
	if got := b.do("GET", "/?op=dump").Body.String(); got != "cart=apple;theme=dark;user=alice;" || store.Len() != 1 {
		t.Fatalf("after no-op merges: %q, %d sessions", got, store.Len())
	}

	// A merge that would not fit changes nothing and keeps the other session.
	big := &recBrowser{h: h}
	big.do("POST", "/?op=put&k=blob&v="+strings.Repeat("x", 1500))
	b.do("POST", "/?op=put&k=more&v="+strings.Repeat("y", 600))
	b.do("POST", "/?op=merge&tok="+big.cookie.Value)
	if !errors.Is(mergeErr, ErrTooLarge) {
		t.Fatalf("oversize merge: %v", mergeErr)
	}
	if store.Get(idOf(t, big.cookie.Value)) == nil || strings.Contains(b.do("GET", "/?op=dump").Body.String(), "blob") {
		t.Fatal("a refused merge changed something")
	}
}

// TestLoadCommit: scs's Load and Commit, for sessions outside LoadAndSave.
func TestLoadCommit(t *testing.T) {
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{})
	t.Cleanup(func() { store.Close() })
	clk := newClock()
	mgr, err := New(store, Config{Clock: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := mgr.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := mgr.Load(ctx, "other"); again != ctx {
		t.Fatal("Load replaced the session of a context that has one")
	}
	if tok, exp, err := mgr.Commit(ctx); tok != "" || !exp.IsZero() || err != nil || store.Len() != 0 {
		t.Fatalf("empty session committed: %q %v %v", tok, exp, err)
	}
	if err := mgr.Put(ctx, "user", "alice"); err != nil {
		t.Fatal(err)
	}
	tok, exp, err := mgr.Commit(ctx)
	if err != nil || routeOf(tok) != "n1" || store.Get(idOf(t, tok)) == nil {
		t.Fatalf("Commit: %q %v", tok, err)
	}
	if want := clk.Now().Add(30 * time.Minute); !exp.Equal(want) {
		t.Fatalf("expiry %v, want the idle timeout's end %v", exp, want)
	}
	// Still usable: a second change and Commit keep the token.
	if err := mgr.Put(ctx, "n", 2); err != nil {
		t.Fatal(err)
	}
	if tok2, _, err := mgr.Commit(ctx); tok2 != tok || err != nil {
		t.Fatalf("second Commit: %q %v", tok2, err)
	}
	// Load by token (elsewhere, later) finds both values, and so does a
	// browser request carrying the token.
	ctx2, _ := mgr.Load(t.Context(), tok)
	if mgr.GetString(ctx2, "user") != "alice" || mgr.GetInt(ctx2, "n") != 2 {
		t.Fatal("Load by token lost values")
	}
	b := &recBrowser{h: mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, mgr.GetString(r.Context(), "user"))
	})), cookie: &http.Cookie{Name: "hanode_session", Value: tok}}
	if got := b.do("GET", "/").Body.String(); got != "alice" {
		t.Fatalf("browser with the token sees %q", got)
	}
	// IdleTimeout < 0 (none): the expiry is the absolute deadline.
	m2, _ := New(store, Config{IdleTimeout: -1, Clock: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	ctx3, _ := m2.Load(t.Context(), "")
	m2.Put(ctx3, "k", "v")
	if _, exp, _ := m2.Commit(ctx3); !exp.Equal(clk.Now().Add(24 * time.Hour)) {
		t.Fatalf("expiry without idle timeout %v", exp)
	}
	if _, _, err := mgr.Commit(t.Context()); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Commit without a session: %v", err)
	}
}
