package httpsession

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/httpsession/sessiontest"
	"github.com/hanode/hanode/replicator"
)

// appHandler implements a small app over the Manager API, driven by the
// query string: ?op=put&k=a&v=1, ?op=get&k=a, and so on.
func appHandler(m **Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		q := r.URL.Query()
		k, v := q.Get("k"), q.Get("v")
		var err error
		var out string
		switch q.Get("op") {
		case "put":
			err = (*m).Put(ctx, k, v)
		case "putint":
			n, _ := strconv.Atoi(v)
			err = (*m).Put(ctx, k, n)
		case "get":
			out = fmt.Sprint((*m).Get(ctx, k))
		case "getint":
			out = strconv.Itoa((*m).GetInt(ctx, k))
		case "incr":
			err = (*m).Put(ctx, k, (*m).GetInt(ctx, k)+1)
		case "pop":
			out = (*m).PopString(ctx, k)
		case "remove":
			err = (*m).Remove(ctx, k)
		case "exists":
			out = strconv.FormatBool((*m).Exists(ctx, k))
		case "keys":
			out = strings.Join((*m).Keys(ctx), ",")
		case "clear":
			err = (*m).Clear(ctx)
		case "destroy":
			err = (*m).Destroy(ctx)
		case "renew":
			err = (*m).RenewToken(ctx)
		case "login":
			if err = (*m).RenewToken(ctx); err == nil {
				err = (*m).SetPrincipal(ctx, v)
			}
		case "principal":
			out = (*m).Principal(ctx)
		case "remember":
			err = (*m).RememberMe(ctx, v == "true")
		case "status":
			out = (*m).Status(ctx).String()
		case "nothing":
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprint(w, out)
	})
}

func startApp(t testing.TB, st replicator.Store, mod func(*Config)) *node {
	var m *Manager
	n := startNode(t, st, mod, appHandler(&m))
	m = n.m
	return n
}

func TestPutGetAcrossRequests(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	resp, _ := c.get(n, "/?op=put&k=name&v=alice")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"hanode_session=", "Path=/", "HttpOnly", "SameSite=Lax", "Expires="} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if resp.Header.Get("Vary") != "Cookie" || resp.Header.Get("Cache-Control") != `no-cache="Set-Cookie"` {
		t.Errorf("cache headers: %v", resp.Header)
	}
	tok := c.token(n)
	if routeOf(tok) != "n1" {
		t.Fatalf("token %q has no route n1", tok)
	}
	if _, body := c.get(n, "/?op=get&k=name"); body != "alice" {
		t.Fatalf("get = %q", body)
	}
	resp, _ = c.get(n, "/?op=get&k=name")
	if resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("unchanged session rewrote its cookie")
	}
	if n.st.Len() != 1 {
		t.Fatalf("store has %d sessions", n.st.Len())
	}
}

func TestAnonymousRequestCreatesNothing(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	resp, body := c.get(n, "/?op=get&k=x")
	if body != "<nil>" || resp.Header.Get("Set-Cookie") != "" || n.st.Len() != 0 {
		t.Fatalf("anonymous read created a session: %q %v len=%d", body, resp.Header, n.st.Len())
	}
}

func TestUnknownTokenNeverAdopted(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	forged := newID() + ".n1"
	c.setToken(n, forged)
	c.get(n, "/?op=put&k=a&v=1")
	got := c.token(n)
	if got == forged || idOf(t, got) == idOf(t, forged) {
		t.Fatal("client-supplied unknown ID became a session")
	}
	if n.st.Get(idOf(t, forged)) != nil {
		t.Fatal("forged ID stored")
	}
	// Garbage of every shape is ignored too.
	for _, bad := range []string{"x", strings.Repeat("a", 500), forged + ".x.y", "../../etc"} {
		c.setToken(n, bad)
		if resp, _ := c.get(n, "/?op=put&k=a&v=1"); resp.StatusCode != 200 {
			t.Fatalf("bad token %q: status %d", bad, resp.StatusCode)
		}
	}
}

func TestTypedGettersPopRemoveExistsKeysClear(t *testing.T) {
	st := sessiontest.NewStore("n1")
	var m *Manager
	now := time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)
	n := startNode(t, st, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/set":
			for k, v := range map[string]any{"s": "str", "i": 42, "i64": int64(-7), "i32": int32(9), "b": true,
				"f": 2.5, "by": []byte("raw"), "t": now, "flash": "hello"} {
				if err := m.Put(ctx, k, v); err != nil {
					t.Error(err)
				}
			}
		case "/check":
			if m.GetString(ctx, "s") != "str" || m.GetInt(ctx, "i") != 42 || m.GetInt64(ctx, "i64") != -7 ||
				m.GetInt32(ctx, "i32") != 9 || !m.GetBool(ctx, "b") || m.GetFloat(ctx, "f") != 2.5 ||
				string(m.GetBytes(ctx, "by")) != "raw" || !m.GetTime(ctx, "t").Equal(now) {
				t.Errorf("typed getters wrong: %v", m.Keys(ctx))
			}
			if got := m.Keys(ctx); !slices.Equal(got, []string{"b", "by", "f", "flash", "i", "i32", "i64", "s", "t"}) {
				t.Errorf("keys %v", got)
			}
			if m.PopString(ctx, "flash") != "hello" || m.Exists(ctx, "flash") {
				t.Error("pop")
			}
			if m.GetString(ctx, "i") != "" || m.GetInt(ctx, "missing") != 0 {
				t.Error("wrong-type or missing getter not zero")
			}
			if err := m.Remove(ctx, "s"); err != nil || m.Exists(ctx, "s") {
				t.Error("remove")
			}
			if m.Status(ctx) != Modified {
				t.Error("status")
			}
		case "/after":
			if m.Exists(ctx, "flash") || m.Exists(ctx, "s") || !m.Exists(ctx, "i") {
				t.Errorf("pop/remove not persisted: %v", m.Keys(ctx))
			}
			if m.PopInt(ctx, "i") != 42 || m.PopInt64(ctx, "i64") != -7 || !m.PopBool(ctx, "b") || m.PopFloat(ctx, "f") != 2.5 ||
				string(m.PopBytes(ctx, "by")) != "raw" || !m.PopTime(ctx, "t").Equal(now) {
				t.Error("typed pops")
			}
			if err := m.Clear(ctx); err != nil {
				t.Error(err)
			}
		case "/empty":
			if k := m.Keys(ctx); len(k) != 0 {
				t.Errorf("clear left %v", k)
			}
			if m.Token(ctx) == "" || m.Deadline(ctx).IsZero() {
				t.Error("token/deadline")
			}
		}
	}))
	m = n.m
	c := newClient(t)
	for _, p := range []string{"/set", "/check", "/after", "/empty"} {
		c.get(n, p)
	}
}

func TestDestroy(t *testing.T) {
	var events []Event
	var mu sync.Mutex
	n := startApp(t, sessiontest.NewStore("n1"), func(c *Config) {
		c.OnEvent = func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	})
	c := newClient(t)
	c.get(n, "/?op=put&k=a&v=1")
	old := c.token(n)
	resp, _ := c.get(n, "/?op=destroy")
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("destroy did not delete the cookie: %q", sc)
	}
	if c.token(n) != "" || n.st.Get(idOf(t, old)) != nil {
		t.Fatal("session survived destroy")
	}
	if ts := n.st.Tombstone(idOf(t, old)); ts == nil || !ts.Destroyed || ts.Reason != replicator.ReasonInvalidated {
		t.Fatalf("tombstone %+v", ts)
	}
	// Replaying the old cookie gets a fresh, empty session.
	c.setToken(n, old)
	if _, body := c.get(n, "/?op=get&k=a"); body != "<nil>" {
		t.Fatalf("old token still works: %q", body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Kind != EventCreated || events[1].Kind != EventDestroyed || events[1].Reason != replicator.ReasonInvalidated {
		t.Fatalf("events %+v", events)
	}
	if s := n.m.Stats(); s.Created != 1 || s.Invalidated != 1 || s.Destroyed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDestroyThenPutStartsNewSession(t *testing.T) {
	var m *Manager
	n := startNode(t, sessiontest.NewStore("n1"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/swap" {
			m.Destroy(r.Context())
			m.Put(r.Context(), "b", "2")
			return
		}
		m.Put(r.Context(), "a", "1")
	}))
	m = n.m
	c := newClient(t)
	c.get(n, "/")
	old := c.token(n)
	c.get(n, "/swap")
	nw := c.token(n)
	if nw == "" || nw == old || n.st.Get(idOf(t, old)) != nil {
		t.Fatalf("old %q new %q", old, nw)
	}
	s := n.st.Get(idOf(t, nw))
	if _, ok := s.Attrs.Get("a"); ok || s.Attrs.Value("b") == nil {
		t.Fatalf("new session attrs %v", s.Attrs)
	}
}

func TestRenewToken(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	c.get(n, "/?op=put&k=cart&v=3")
	old := c.token(n)
	c.get(n, "/?op=login&v=alice")
	nw := c.token(n)
	if nw == old || routeOf(nw) != "n1" {
		t.Fatalf("token not renewed: %q -> %q", old, nw)
	}
	if _, body := c.get(n, "/?op=get&k=cart"); body != "3" {
		t.Fatalf("data lost on renew: %q", body)
	}
	if _, body := c.get(n, "/?op=principal"); body != "alice" {
		t.Fatalf("principal %q", body)
	}
	ts := n.st.Tombstone(idOf(t, old))
	if ts == nil || ts.Reason != replicator.ReasonRenamed || ts.RenamedTo != idOf(t, nw) {
		t.Fatalf("old ID not a rename tombstone: %+v", ts)
	}
	// The rename is one ordered delta on the old ID, rename last.
	var found bool
	for _, d := range n.st.Commits() {
		if d.ID == idOf(t, old) && len(d.Ops) > 0 && d.Ops[len(d.Ops)-1].Kind == replicator.OpRename {
			found = d.Ops[len(d.Ops)-1].Key == idOf(t, nw)
		}
	}
	if !found {
		t.Fatal("no rename delta")
	}
	// Session fixation: the old token is dead.
	c2 := newClient(t)
	c2.setToken(n, old)
	if _, body := c2.get(n, "/?op=get&k=cart"); body != "<nil>" {
		t.Fatal("old token still reaches the session")
	}
}

func TestTouchNotCommitForReadOnlyRequest(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	c.get(n, "/?op=put&k=a&v=1")
	before := len(n.st.Commits())
	c.get(n, "/?op=get&k=a")
	c.get(n, "/?op=nothing")
	if got := len(n.st.Commits()); got != before {
		t.Fatalf("read-only requests committed %d deltas", got-before)
	}
	if n.st.Touches() != 2 || n.m.Stats().Touches != 2 {
		t.Fatalf("touches %d", n.st.Touches())
	}
}

func TestOnlyChangedKeysInDelta(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	c.get(n, "/?op=put&k=a&v=1")
	c.get(n, "/?op=put&k=b&v=2")
	c.get(n, "/?op=remove&k=a")
	cs := n.st.Commits()
	last2 := cs[len(cs)-2:]
	if len(last2[0].Ops) != 1 || last2[0].Ops[0].Key != "b" || last2[0].Ops[0].Kind != replicator.OpSet {
		t.Fatalf("delta %+v", last2[0].Ops)
	}
	if len(last2[1].Ops) != 1 || last2[1].Ops[0].Kind != replicator.OpDel {
		t.Fatalf("delta %+v", last2[1].Ops)
	}
	d := last2[1]
	if d.Created == 0 || d.LastAccess == 0 || d.Deadline == 0 || d.IdleTimeout != int64(30*time.Minute) || d.Owner != "n1" || d.Epoch != 1 {
		t.Fatalf("metadata %+v", d)
	}
}

func TestFailoverTakeover(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	na := startApp(t, cl.Node("a"), nil)
	nb := startApp(t, cl.Node("b"), nil)
	c := newClient(t)
	c.get(na, "/?op=put&k=cart&v=3")
	tok := c.token(na)
	if routeOf(tok) != "a" {
		t.Fatal(tok)
	}
	// Node a dies; the balancer sends the request to b. The handler
	// changes nothing, but b must take over and rewrite the route.
	na.srv.Close()
	resp, body := c.get(nb, "/?op=get&k=cart")
	if body != "3" {
		t.Fatalf("session lost on failover: %q", body)
	}
	nt := c.token(nb)
	if routeOf(nt) != "b" || idOf(t, nt) != idOf(t, tok) {
		t.Fatalf("cookie after takeover %q (was %q), Set-Cookie %q", nt, tok, resp.Header.Get("Set-Cookie"))
	}
	cs := cl.Node("b").Commits()
	d := cs[len(cs)-1]
	if d.Ops[0].Kind != replicator.OpTakeover || d.Epoch != 2 || d.Owner != "b" {
		t.Fatalf("takeover delta %+v", d)
	}
	if s := cl.Node("b").Get(idOf(t, tok)); s.Owner != "b" || s.Epoch != 2 {
		t.Fatalf("replica after takeover %+v", s)
	}
	if nb.m.Stats().Takeovers != 1 {
		t.Fatal("takeover not counted")
	}
	// Next request: no new takeover, no cookie rewrite.
	resp, _ = c.get(nb, "/?op=get&k=cart")
	if resp.Header.Get("Set-Cookie") != "" || nb.m.Stats().Takeovers != 1 {
		t.Fatal("second request took over again")
	}
}

func TestUnknownRouteIsFailover(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	na := startApp(t, cl.Node("a"), nil)
	nb := startApp(t, cl.Node("b"), nil)
	c := newClient(t)
	c.get(na, "/?op=put&k=x&v=1")
	id := idOf(t, c.token(na))
	for _, tok := range []string{id + ".gone", id} {
		c.setToken(nb, tok)
		if _, body := c.get(nb, "/?op=get&k=x"); body != "1" {
			t.Fatalf("%q: %q", tok, body)
		}
		if got := c.token(nb); got != id+".b" {
			t.Fatalf("route not rewritten: %q", got)
		}
	}
}

func TestRenewDuringFailover(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	na := startApp(t, cl.Node("a"), nil)
	nb := startApp(t, cl.Node("b"), nil)
	c := newClient(t)
	c.get(na, "/?op=put&k=cart&v=3")
	old := c.token(na)
	na.srv.Close()
	c.get(nb, "/?op=login&v=bob")
	nt := c.token(nb)
	if routeOf(nt) != "b" || idOf(t, nt) == idOf(t, old) {
		t.Fatalf("token %q", nt)
	}
	for _, name := range []string{"a", "b"} {
		st := cl.Node(name)
		s := st.Get(idOf(t, nt))
		if s == nil || string(s.Attrs.Value("cart")[1:]) != "3" || s.Principal != "bob" || s.Owner != "b" || s.Epoch != 2 {
			t.Fatalf("node %s: renamed session %+v", name, s)
		}
		if st.Get(idOf(t, old)) != nil {
			t.Fatalf("node %s: old ID alive", name)
		}
	}
	cs := cl.Node("b").Commits()
	d := cs[len(cs)-1]
	if d.ID != idOf(t, old) || d.Ops[0].Kind != replicator.OpTakeover || d.Ops[len(d.Ops)-1].Kind != replicator.OpRename {
		t.Fatalf("delta %+v", d)
	}
}

// TestConcurrentRequestsOneNode: requests of one session writing different
// keys at the same time all survive.
func TestConcurrentRequestsOneNode(t *testing.T) {
	n := startApp(t, sessiontest.NewStore("n1"), nil)
	c := newClient(t)
	c.get(n, "/?op=put&k=base&v=0")
	const N = 20
	var wg sync.WaitGroup
	for i := range N {
		wg.Go(func() { c.get(n, fmt.Sprintf("/?op=put&k=k%d&v=%d", i, i)) })
	}
	wg.Wait()
	_, body := c.get(n, "/?op=keys")
	if got := strings.Split(body, ","); len(got) != N+1 {
		t.Fatalf("lost keys: %d of %d: %v", len(got), N+1, got)
	}
}

func TestConcurrentRequestsTwoNodes(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	na := startApp(t, cl.Node("a"), nil)
	nb := startApp(t, cl.Node("b"), nil)
	c := newClient(t)
	c.get(na, "/?op=put&k=base&v=0")
	tok := c.token(na)
	// Both nodes serve the session at once (a flapping balancer), with
	// replication in flight: neither sees the other's writes until Deliver.
	cl.Hold()
	var wg sync.WaitGroup
	for i := range 10 {
		n := na
		if i%2 == 1 {
			n = nb
		}
		wg.Go(func() {
			cc := newClient(t)
			cc.setToken(n, tok)
			cc.get(n, fmt.Sprintf("/?op=put&k=k%d&v=%d", i, i))
		})
	}
	wg.Wait()
	cl.Deliver()
	for _, name := range []string{"a", "b"} {
		s := cl.Node(name).Get(idOf(t, tok))
		live := 0
		for _, a := range s.Attrs.All() {
			if !a.Deleted {
				live++
			}
		}
		if live != 11 {
			t.Fatalf("node %s has %d keys: %v", name, live, s.Attrs)
		}
	}
}

func TestStreamingCommitsBeforeFirstByte(t *testing.T) {
	st := sessiontest.NewStore("n1")
	var m *Manager
	n := startNode(t, st, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		m.Put(ctx, "step", "1")
		if _, ok := w.(http.Flusher); !ok {
			t.Error("wrapper lost http.Flusher")
		}
		w.Write([]byte("first "))
		w.(http.Flusher).Flush()
		// Committed before the first byte: the store has it now.
		if s := st.Get(idOf(t, m.Token(ctx))); s == nil || s.Attrs.Value("step") == nil {
			t.Error("not committed at first byte")
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
		if err := m.Put(ctx, "late", "x"); !errors.Is(err, ErrResponseStarted) {
			t.Errorf("late put: %v", err)
		}
		w.Write([]byte("second"))
	}))
	m = n.m
	c := newClient(t)
	resp, body := c.get(n, "/")
	if body != "first second" || resp.Header.Get("Set-Cookie") == "" {
		t.Fatalf("body %q cookie %q", body, resp.Header.Get("Set-Cookie"))
	}
	if m.Stats().LateWrites != 1 {
		t.Fatal("late write not counted")
	}
	if s := st.Get(idOf(t, c.token(n))); s.Attrs.Value("late") != nil {
		t.Fatal("late write stored")
	}
}

func TestFlushCtxCommitsEarly(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	var m *Manager
	n := startNode(t, cl.Node("a"), func(c *Config) { c.Consistency = replicator.Sync }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		m.Put(ctx, "k", "v")
		if _, ok := m.LastCommit(ctx); ok {
			t.Error("LastCommit before commit")
		}
		res, err := m.Flush(ctx)
		if err != nil || !res.Replicated {
			t.Errorf("flush %+v %v", res, err)
		}
		if res2, ok := m.LastCommit(ctx); !ok || res2 != res {
			t.Error("LastCommit after flush")
		}
		m.Put(ctx, "k2", "v2") // still before the response: committed again
	}))
	m = n.m
	c := newClient(t)
	c.get(n, "/")
	s := cl.Node("b").Get(idOf(t, c.token(n)))
	if s == nil || s.Attrs.Value("k") == nil || s.Attrs.Value("k2") == nil {
		t.Fatalf("flush lost data: %+v", s)
	}
}

func TestLateWriteAfterHandlerReturns(t *testing.T) {
	var m *Manager
	done := make(chan error)
	n := startNode(t, sessiontest.NewStore("n1"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		m.Put(ctx, "a", "1")
		sess, _ := FromContext(ctx)
		go func() {
			<-done
			done <- sess.Put("b", "2")
		}()
	}))
	m = n.m
	c := newClient(t)
	c.get(n, "/")
	done <- nil
	if err := <-done; !errors.Is(err, ErrResponseStarted) {
		t.Fatalf("late put after return: %v", err)
	}
	if m.Stats().LateWrites != 1 {
		t.Fatal("not counted")
	}
}

func TestHijack(t *testing.T) {
	st := sessiontest.NewStore("n1")
	var m *Manager
	n := startNode(t, st, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "ws", "yes")
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		tok := m.Token(r.Context())
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nSet-Cookie: hanode_session=" + tok + "\r\n\r\nok")
		buf.Flush()
	}))
	m = n.m
	c := newClient(t)
	_, body := c.get(n, "/")
	if body != "ok" {
		t.Fatalf("body %q", body)
	}
	if s := st.Get(idOf(t, c.token(n))); s == nil || s.Attrs.Value("ws") == nil {
		t.Fatal("not committed before hijack")
	}
}

func TestUnwrapAndReadFrom(t *testing.T) {
	var m *Manager
	n := startNode(t, sessiontest.NewStore("n1"), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "a", "1")
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok || u.Unwrap() == nil {
			t.Error("no Unwrap")
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("ResponseController through Unwrap: %v", err)
		}
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("no ReadFrom")
		}
		io.Copy(w, strings.NewReader("copied"))
	}))
	m = n.m
	c := newClient(t)
	resp, body := c.get(n, "/")
	if body != "copied" || resp.Header.Get("Set-Cookie") == "" {
		t.Fatalf("%q %v", body, resp.Header)
	}
}
