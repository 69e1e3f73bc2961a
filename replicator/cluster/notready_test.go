package cluster

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

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
)

// A node that is still joining does not hold the cluster's sessions yet:
// a request whose cookie names a session it was not sent gets 503 (retry
// elsewhere), with the cookie left as it is, instead of a new, empty
// session in place of the user's. Once the node is ready it serves the
// session it received by state transfer.
func TestNotReadyRefusesUnknownSessionCookie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 12)
		n1 := l.start("n1", nil)
		n2 := l.start("n2", nil)
		waitReady(t, n1, n2)

		h1 := sessionHandler(t, n1, replicator.Async)
		w := serve(h1, http.MethodPut, "/?v=user", nil)
		cks := w.Result().Cookies()
		if w.Code != 200 || len(cks) != 1 {
			t.Fatalf("n1 PUT: %d %v", w.Code, cks)
		}
		user := cks[0]
		id, _, _ := httpsession.ParseID(user.Value)

		n3 := l.start("n3", nil) // joining: no time passes before the requests below
		if n3.Ready() {
			t.Fatal("n3 ready at once")
		}
		if s, err := n3.Load(t.Context(), id); s != nil || !errors.Is(err, replicator.ErrNotReady) {
			t.Fatalf("n3.Load while joining = %v, %v; want replicator.ErrNotReady", s, err)
		}
		h3 := sessionHandler(t, n3, replicator.Async)
		for _, method := range []string{http.MethodGet, http.MethodPut} {
			w := serve(h3, method, "/?v=other", user)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("n3 %s with the user's cookie while joining: %d %q (Retry-After %q), want 503", method, w.Code, w.Body, w.Header().Get("Retry-After"))
			}
			if c := w.Result().Cookies(); len(c) != 0 {
				t.Errorf("n3 %s while joining replaced the user's cookie: %v", method, c)
			}
		}
		if n := n3.Len(); n != 0 {
			t.Errorf("n3 stored %d sessions while joining", n)
		}
		// A request without a cookie has no session to lose: served.
		if w := serve(h3, http.MethodGet, "/", nil); w.Code != 200 {
			t.Errorf("n3 GET without a cookie while joining: %d %q", w.Code, w.Body)
		}

		waitReady(t, n3)
		if w := serve(h3, http.MethodGet, "/", user); w.Code != 200 || w.Body.String() != "user" {
			t.Fatalf("n3 GET with the user's cookie once ready: %d %q, want 200 \"user\"", w.Code, w.Body)
		}
		if s, err := n3.Load(t.Context(), "unknownsessionaaaaaaaaaaaaaaaaa"); s != nil || err != nil {
			t.Fatalf("n3.Load of an unknown ID once ready = %v, %v; want nil, nil", s, err)
		}
	})
}

// sessionHandler is an httpsession middleware over node n with commits
// of consistency c, around a handler that sets "k" to the query's v on
// PUT and answers "k".
func sessionHandler(t *testing.T, n *Node, c replicator.Consistency) http.Handler {
	cfg := httpsession.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Consistency = c
	m, err := httpsession.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			if err := m.Put(r.Context(), "k", r.URL.Query().Get("v")); err != nil {
				t.Error(err)
			}
		}
		_, _ = w.Write([]byte(m.GetString(r.Context(), "k")))
	}))
}

// serve runs one request through h, with cookie ck when not nil.
func serve(h http.Handler, method, url string, ck *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, url, nil)
	if ck != nil {
		req.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// The lone survivor of a Sync cluster refuses writes but serves reads
// (README, "The lone survivor"), including reads of a session that the
// dead node owned: the takeover of a request that changes nothing does
// not wait for an acknowledgement. A write of that session is refused.
func TestSyncLoneSurvivorServesReadOfDeadOwnersSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 13)
		n1 := l.start("n1", syncMode(200*time.Millisecond, LoneRefuse))
		n2 := l.start("n2", syncMode(200*time.Millisecond, LoneRefuse))
		waitReady(t, n1, n2)
		waitPeers(t, n1, 1)
		w := serve(sessionHandler(t, n1, replicator.Sync), http.MethodPut, "/?v=user", nil)
		cks := w.Result().Cookies()
		if w.Code != 200 || len(cks) != 1 {
			t.Fatalf("n1 PUT: %d %q %v", w.Code, w.Body, cks)
		}
		user := cks[0]
		id, _, _ := httpsession.ParseID(user.Value)
		eventually(t, 5*time.Second, "n2 holds n1's session", func() error {
			if s := n2.Get(id); s == nil || s.Owner != "n1" {
				return fmt.Errorf("n2: %+v", s)
			}
			return nil
		})

		n1.crash()
		waitPeers(t, n2, 0)
		h2 := sessionHandler(t, n2, replicator.Sync)
		if w := serve(h2, http.MethodGet, "/", user); w.Code != 200 || w.Body.String() != "user" {
			t.Fatalf("lone n2 GET of n1's session: %d %q, want 200 \"user\"", w.Code, w.Body)
		}
		if w := serve(h2, http.MethodPut, "/?v=alone", user); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("lone n2 PUT: %d %q, want 503", w.Code, w.Body)
		}
		if v, _ := attr(n2, id, "k"); strings.Contains(v, "alone") || !strings.Contains(v, "user") {
			t.Fatalf("n2 applied the refused write: k = %q", v)
		}
	})
}
