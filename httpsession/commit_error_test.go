package httpsession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hanode/hanode/httpsession/sessiontest"
	"github.com/hanode/hanode/replicator"
)

// failingStore wraps a store: while fail is set, every commit is handed to
// the inner store when apply is set (applied locally, like a sync commit
// whose acknowledgements did not come), then fails with fail.
type failingStore struct {
	replicator.Store
	fail    atomic.Pointer[error]
	apply   bool
	commits atomic.Int32
}

func (f *failingStore) setFail(err error) {
	if err == nil {
		f.fail.Store(nil)
		return
	}
	f.fail.Store(&err)
}

func (f *failingStore) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	f.commits.Add(1)
	p := f.fail.Load()
	if p == nil {
		return f.Store.Commit(ctx, d, c)
	}
	if f.apply {
		res, err := f.Store.Commit(ctx, d, c)
		if err != nil {
			return res, err
		}
	}
	return replicator.CommitResult{TimedOut: true}, *p
}

var errNotRepl = fmt.Errorf("%w: 0 of 1 acknowledgements within 100ms", replicator.ErrNotReplicated)

func doReq(t *testing.T, c *client, n *node, method, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, n.srv.URL+path, nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errNotRepl, 503},
		{fmt.Errorf("wrapped: %w", errNotRepl), 503},
		{ErrTooManySessions, 503},
		{replicator.ErrClosed, 503},
		{fmt.Errorf("%w: session would be 2000000 bytes", replicator.ErrTooLarge), 413},
		{replicator.ErrDestroyed, 500},
		{errors.New("disk on fire"), 500},
	} {
		if got := ErrorStatus(tc.err); got != tc.want {
			t.Errorf("ErrorStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// Without Flush, a failed commit at the response start is answered by the
// default ErrorFunc with the status of ErrorStatus; the handler's writes
// are discarded.
func TestDefaultErrorFuncStatuses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errNotRepl, 503},
		{fmt.Errorf("%w: session would be 2000000 bytes", replicator.ErrTooLarge), 413},
		{errors.New("store broke"), 500},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			fs := &failingStore{Store: sessiontest.NewStore("n1")}
			var m *Manager
			n := startNode(t, fs, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := m.Put(r.Context(), "k", "v"); err != nil {
					t.Error(err)
				}
				w.Write([]byte("handler body"))
			}))
			m = n.m
			fs.setFail(tc.err)
			resp, body := doReq(t, newClient(t), n, "GET", "/")
			if resp.StatusCode != tc.code || strings.Contains(body, "handler body") {
				t.Fatalf("status %d body %q, want %d without the handler's body", resp.StatusCode, body, tc.code)
			}
			if tc.code == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// A handler that calls Flush gets the commit error and answers itself:
// ErrorFunc is not called and the changes are not committed again.
func TestFlushErrorHandlerAnswers(t *testing.T) {
	fs := &failingStore{Store: sessiontest.NewStore("n1")}
	var m *Manager
	var errorFuncCalls atomic.Int32
	var logBuf syncBuffer
	n := startNode(t, fs, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
		c.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			errorFuncCalls.Add(1)
			http.Error(w, "from ErrorFunc", 599)
		}
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		m.Put(ctx, "k", "v")
		_, err := m.Flush(ctx)
		if !errors.Is(err, replicator.ErrNotReplicated) {
			t.Errorf("Flush: %v, want ErrNotReplicated", err)
		}
		if _, ok := m.LastCommit(ctx); ok {
			t.Error("LastCommit ok after a failed Flush")
		}
		w.WriteHeader(ErrorStatus(err))
		w.Write([]byte("handler answered"))
	}))
	m = n.m
	fs.setFail(errNotRepl)
	resp, body := doReq(t, newClient(t), n, "PUT", "/")
	if resp.StatusCode != 503 || body != "handler answered" {
		t.Fatalf("status %d body %q, want the handler's 503", resp.StatusCode, body)
	}
	if errorFuncCalls.Load() != 0 {
		t.Fatal("ErrorFunc answered although the handler did")
	}
	if got := fs.commits.Load(); got != 1 {
		t.Fatalf("%d commits, want 1 (the failed changes are not committed again)", got)
	}
	if l := logBuf.String(); strings.Count(l, "commit failed") != 1 || !strings.Contains(l, "not replicated") {
		t.Fatalf("the failure is not logged once: %q", l)
	}
}

// A handler that ignores a failed Flush and returns without writing did
// not answer: ErrorFunc does, with the Flush error.
func TestFlushErrorHandlerSilentGetsErrorFunc(t *testing.T) {
	fs := &failingStore{Store: sessiontest.NewStore("n1")}
	var m *Manager
	var got error
	n := startNode(t, fs, func(c *Config) {
		c.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			http.Error(w, "unavailable", ErrorStatus(err))
		}
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "k", "v")
		m.Flush(r.Context())
	}))
	m = n.m
	fs.setFail(errNotRepl)
	resp, _ := doReq(t, newClient(t), n, "PUT", "/")
	if resp.StatusCode != 503 || !errors.Is(got, replicator.ErrNotReplicated) {
		t.Fatalf("status %d, ErrorFunc got %v", resp.StatusCode, got)
	}
	if c := fs.commits.Load(); c != 1 {
		t.Fatalf("%d commits, want 1", c)
	}
}

// A change after a failed Flush is committed at the response start as
// usual; when that commit fails too, ErrorFunc answers (the handler never
// saw that failure).
func TestChangeAfterFailedFlushIsCommitted(t *testing.T) {
	fs := &failingStore{Store: sessiontest.NewStore("n1")}
	var m *Manager
	var fail atomic.Bool
	n := startNode(t, fs, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		m.Put(ctx, "k", "v")
		if _, err := m.Flush(ctx); err == nil {
			t.Error("Flush succeeded")
		}
		if !fail.Load() {
			fs.setFail(nil) // the store recovers before the next change
		}
		m.Put(ctx, "k2", "v2")
		w.Write([]byte("ok"))
	}))
	m = n.m

	fs.setFail(errNotRepl)
	fail.Store(true)
	resp, body := doReq(t, newClient(t), n, "PUT", "/")
	if resp.StatusCode != 503 || body == "ok" {
		t.Fatalf("still failing: status %d body %q, want ErrorFunc's 503", resp.StatusCode, body)
	}

	fs.setFail(errNotRepl)
	fail.Store(false)
	c := newClient(t)
	resp, body = doReq(t, c, n, "PUT", "/")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("recovered: status %d body %q", resp.StatusCode, body)
	}
	s := fs.Store.Get(idOf(t, c.token(n)))
	if s == nil || s.Attrs.Value("k") == nil || s.Attrs.Value("k2") == nil {
		t.Fatalf("the retried commit lost data: %+v", s)
	}
}

// A retried write on another node wins over a write that failed as not
// replicated but stayed applied where it failed, even when that failed
// write was a takeover (a higher epoch): the failed node rebinds the
// cookie to itself, and the retry, seeing a third node in the route,
// commits two epochs above the session's.
func TestRetryElsewhereWinsOverFailedWrite(t *testing.T) {
	for _, retryOn := range []string{"r", "p"} {
		t.Run("retry-on-"+retryOn, func(t *testing.T) {
			cl := sessiontest.NewCluster("r", "f", "p")
			fStore := &failingStore{Store: cl.Node("f"), apply: true}
			h := func(m **Manager) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if err := (*m).Put(r.Context(), "k", r.URL.Query().Get("v")); err != nil {
						t.Error(err)
					}
					w.WriteHeader(http.StatusNoContent)
				})
			}
			var mr, mf, mp *Manager
			nr := startNode(t, cl.Node("r"), nil, h(&mr))
			nf := startNode(t, fStore, nil, h(&mf))
			np := startNode(t, cl.Node("p"), nil, h(&mp))
			mr, mf, mp = nr.m, nf.m, np.m
			retry := map[string]*node{"r": nr, "p": np}[retryOn]

			c := newClient(t)
			if resp, _ := doReq(t, c, nr, "PUT", "/?v=v0"); resp.StatusCode != 204 {
				t.Fatalf("first write: %d", resp.StatusCode)
			}
			id := idOf(t, c.token(nr))

			// f takes the session over, but its commit is not
			// replicated: applied on f only (held), 503 to the client.
			cl.Hold()
			fStore.setFail(errNotRepl)
			resp, _ := doReq(t, c, nf, "PUT", "/?v=failed-on-f")
			if resp.StatusCode != 503 {
				t.Fatalf("failed write: %d", resp.StatusCode)
			}
			if got := routeOf(c.token(nf)); got != "f" {
				t.Fatalf("the failed write left the route %q, want f", got)
			}
			if s := cl.Node("f").Get(id); s == nil || s.Epoch != 2 || s.Owner != "f" {
				t.Fatalf("the failed takeover is not applied on f: %+v", s)
			}

			// The client retries on another node, which succeeds.
			if resp, _ := doReq(t, c, retry, "PUT", "/?v=retried"); resp.StatusCode != 204 {
				t.Fatalf("retry: %d", resp.StatusCode)
			}
			cl.Deliver() // f's failed write surfaces everywhere

			for _, name := range []string{"r", "f", "p"} {
				s := cl.Node(name).Get(id)
				if s == nil {
					t.Fatalf("%s lost the session", name)
				}
				if v, _ := decodeValue(GobCodec{}, s.Attrs.Value("k")); v != "retried" {
					t.Errorf("%s serves k = %v, want the retried write", name, v)
				}
			}
			// Later writes on the retry node keep winning.
			if resp, _ := doReq(t, c, retry, "PUT", "/?v=later"); resp.StatusCode != 204 {
				t.Fatalf("later write: %d", resp.StatusCode)
			}
			for _, name := range []string{"r", "f", "p"} {
				s := cl.Node(name).Get(id)
				if v, _ := decodeValue(GobCodec{}, s.Attrs.Value("k")); v != "later" {
					t.Errorf("%s serves k = %v after a later write", name, v)
				}
			}
		})
	}
}
