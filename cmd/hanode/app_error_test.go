package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// failingStore is a local store whose commits fail with err when set.
type failingStore struct {
	*replicator.Local
	err atomic.Pointer[error]
}

func (f *failingStore) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	if p := f.err.Load(); p != nil {
		return replicator.CommitResult{TimedOut: true}, *p
	}
	return f.Local.Commit(ctx, d, c)
}

func (f *failingStore) Members() []cluster.MemberInfo { return nil }
func (f *failingStore) Ready() bool                   { return true }

func demoServer(t *testing.T, store *failingStore) *httptest.Server {
	t.Helper()
	mgr, err := httpsession.New(store, httpsession.Config{Logger: slog.New(slog.DiscardHandler), Consistency: replicator.Sync})
	if err != nil {
		t.Fatal(err)
	}
	app := &demoApp{node: "n1", mgr: mgr, store: store, cookie: "hanode_session"}
	srv := httptest.NewServer(app.handler())
	t.Cleanup(srv.Close)
	return srv
}

// The demo app commits before it answers and maps commit errors to
// status codes: 503 (with Retry-After) for a write no peer acknowledged,
// 413 for an oversized session, 500 otherwise.
func TestDemoAppAnswersCommitErrors(t *testing.T) {
	store := &failingStore{Local: replicator.NewLocal("n1", replicator.ReplicaConfig{})}
	srv := demoServer(t, store)
	for _, tc := range []struct {
		err  error
		code int
		text string
	}{
		{nil, 204, ""},
		{fmt.Errorf("%w: 0 of 1 acknowledgements within 100ms", replicator.ErrNotReplicated), 503, "not replicated"},
		{fmt.Errorf("%w: session would be 2000000 bytes", replicator.ErrTooLarge), 413, "too large"},
		{errors.New("store broke"), 500, "store broke"},
	} {
		if tc.err != nil {
			store.err.Store(&tc.err)
		} else {
			store.err.Store(nil)
		}
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/attrs/k", strings.NewReader("v"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.text) {
			t.Errorf("PUT with %v: %d %q, want %d containing %q", tc.err, resp.StatusCode, body, tc.code, tc.text)
		}
		if tc.code == 503 && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		resp, err = http.Post(srv.URL+"/counter", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := tc.code
		if want == 204 {
			want = 200
		}
		if resp.StatusCode != want {
			t.Errorf("POST /counter with %v: %d, want %d", tc.err, resp.StatusCode, want)
		}
	}
}

// `hanode status --wait` names why a joined sync node is not ready yet.
func TestStatusWaitShowsReplicationReason(t *testing.T) {
	t.Setenv("HANODE_ADMIN", "")
	addr, _ := fakeAdmin(t, []nodeStatus{
		{Node: "n1", Phase: "ready", NotReadyReason: "no live peer can acknowledge sync commits"},
		{Node: "n1", Phase: "ready", Ready: true, Sessions: 3},
	})
	var out, errb strings.Builder
	if code := runMain([]string{"hanode", "status", "--wait", "--poll", "1ms", "--admin", addr}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"n1: not ready: no live peer can acknowledge sync commits", "ready, holding 3 sessions"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
