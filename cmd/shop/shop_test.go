package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
)

const cookieName = "hanode_session"

// shopClient is one user of a shop: it keeps its session cookie by hand,
// so that the same cookie can go to any node.
type shopClient struct {
	t     *testing.T
	token string
}

func (c *shopClient) do(method, url string, form url.Values) (int, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.token != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: c.token})
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			c.token = ck.Value
		}
	}
	return resp.StatusCode, string(b)
}

func (c *shopClient) login(base, user string) loginJSON {
	c.t.Helper()
	code, body := c.do(http.MethodPost, base+"/login", url.Values{"user": {user}})
	var l loginJSON
	if code != 200 || json.Unmarshal([]byte(body), &l) != nil {
		c.t.Fatalf("POST /login: %d %s", code, body)
	}
	return l
}

func (c *shopClient) add(base, item string) cartJSON {
	c.t.Helper()
	code, body := c.do(http.MethodPost, base+"/cart", url.Values{"item": {item}})
	var cj cartJSON
	if code != 200 || json.Unmarshal([]byte(body), &cj) != nil {
		c.t.Fatalf("POST /cart: %d %s", code, body)
	}
	return cj
}

// cart returns GET /cart's status and answer.
func (c *shopClient) cart(base string) (int, cartJSON, string) {
	c.t.Helper()
	code, body := c.do(http.MethodGet, base+"/cart", nil)
	var cj cartJSON
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &cj); err != nil {
			c.t.Fatalf("GET /cart answer %q: %v", body, err)
		}
	}
	return code, cj, body
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func newTestShop(t *testing.T) *httptest.Server {
	t.Helper()
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{})
	mgr, err := httpsession.New(store, httpsession.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Shop{Sessions: mgr, Node: "n1"}).Handler())
	t.Cleanup(srv.Close)
	return srv
}

// TestShopContract checks the shop's HTTP API as other tools drive it.
func TestShopContract(t *testing.T) {
	srv := newTestShop(t)
	c := &shopClient{t: t}

	// Not logged in: /cart answers 401, the page offers the login form.
	if code, _, body := c.cart(srv.URL); code != http.StatusUnauthorized {
		t.Fatalf("GET /cart before login: %d %s", code, body)
	}
	if code, body := c.do(http.MethodPost, srv.URL+"/cart", url.Values{"item": {"x"}}); code != http.StatusUnauthorized {
		t.Fatalf("POST /cart before login: %d %s", code, body)
	}
	if code, body := c.do(http.MethodGet, srv.URL+"/", nil); code != 200 || !strings.Contains(body, `action="/login"`) {
		t.Fatalf("GET / before login: %d %s", code, body)
	}

	// Log in: the answer names the user and the node; the session ID
	// changes at login even when the client came with one.
	l := c.login(srv.URL, "alice")
	if l != (loginJSON{User: "alice", Node: "n1"}) {
		t.Fatalf("login answer %+v", l)
	}
	first := c.token
	if first == "" {
		t.Fatal("no session cookie after login")
	}
	c.login(srv.URL, "alice")
	if c.token == first || c.token == "" {
		t.Fatalf("the session ID did not change at login: %q -> %q", first, c.token)
	}
	old := &shopClient{t: t, token: first}
	if code, _, body := old.cart(srv.URL); code != http.StatusUnauthorized {
		t.Fatalf("the session ID from before the login still works: %d %s", code, body)
	}

	// Fill the cart.
	c.add(srv.URL, "apples")
	cj := c.add(srv.URL, "pears <b>")
	want := cartJSON{User: "alice", Items: []string{"apples", "pears <b>"}, Node: "n1"}
	if !equalCart(cj, want) {
		t.Fatalf("POST /cart answer %+v, want %+v", cj, want)
	}
	if code, got, body := c.cart(srv.URL); code != 200 || !equalCart(got, want) {
		t.Fatalf("GET /cart: %d %s", code, body)
	}
	code, page := c.do(http.MethodGet, srv.URL+"/", nil)
	for _, w := range []string{"alice", "<li>apples</li>", "pears &lt;b&gt;", `action="/cart"`, `action="/logout"`} {
		if code != 200 || !strings.Contains(page, w) {
			t.Errorf("GET / lacks %q: %d\n%s", w, code, page)
		}
	}

	// Bad input is refused and loses nothing.
	for _, item := range []string{"", strings.Repeat("x", 101), "a\x00b"} {
		if code, body := c.do(http.MethodPost, srv.URL+"/cart", url.Values{"item": {item}}); code != http.StatusBadRequest {
			t.Errorf("item %q: %d %s", item, code, body)
		}
	}
	if code, body := c.do(http.MethodPost, srv.URL+"/login", url.Values{"user": {""}}); code != http.StatusBadRequest {
		t.Errorf("empty user: %d %s", code, body)
	}
	if _, got, _ := c.cart(srv.URL); !equalCart(got, want) {
		t.Fatalf("cart after refused input: %+v", got)
	}

	// Log out: the session is gone.
	token := c.token
	if code, body := c.do(http.MethodPost, srv.URL+"/logout", nil); code != 200 {
		t.Fatalf("POST /logout: %d %s", code, body)
	}
	again := &shopClient{t: t, token: token}
	if code, _, body := again.cart(srv.URL); code != http.StatusUnauthorized {
		t.Fatalf("GET /cart after logout with the old cookie: %d %s", code, body)
	}
	// A new login starts with an empty cart.
	c.login(srv.URL, "bob")
	if _, got, _ := c.cart(srv.URL); got.User != "bob" || len(got.Items) != 0 || got.Items == nil {
		t.Fatalf("cart of a new login: %+v", got)
	}
}

func equalCart(a, b cartJSON) bool {
	if a.User != b.User || a.Node != b.Node || len(a.Items) != len(b.Items) {
		return false
	}
	for i := range a.Items {
		if a.Items[i] != b.Items[i] {
			return false
		}
	}
	return true
}

// failingStore is a local store whose commits fail with err when set.
type failingStore struct {
	*replicator.Local
	err atomic.Pointer[error]
}

func (f *failingStore) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	if p := f.err.Load(); p != nil {
		return replicator.CommitResult{}, *p
	}
	return f.Local.Commit(ctx, d, c)
}

// TestShopAnswersCommitErrors: the shop commits before it answers, so a
// change that is not kept is never answered 200: 503 with Retry-After for
// a change the peers did not acknowledge, 413 for a session over the size
// limit, and the cart stays as it was.
func TestShopAnswersCommitErrors(t *testing.T) {
	store := &failingStore{Local: replicator.NewLocal("n1", replicator.ReplicaConfig{})}
	t.Cleanup(func() { store.Close() })
	mgr, err := httpsession.New(store, httpsession.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Shop{Sessions: mgr, Node: "n1"}).Handler())
	t.Cleanup(srv.Close)
	c := &shopClient{t: t}
	c.login(srv.URL, "alice")
	c.add(srv.URL, "apples")
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: 0 of 1 acknowledgements", replicator.ErrNotReplicated), http.StatusServiceUnavailable},
		{fmt.Errorf("%w: session would be 2000000 bytes", replicator.ErrTooLarge), http.StatusRequestEntityTooLarge},
	} {
		store.err.Store(&tc.err)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/cart", strings.NewReader("item=pears"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: cookieName, Value: c.token})
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e errorJSON
		decErr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.code || decErr != nil || !strings.Contains(e.Error, tc.err.Error()) {
			t.Errorf("%v: %d %+v %v, want %d", tc.err, resp.StatusCode, e, decErr, tc.code)
		}
		if tc.code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		other := &shopClient{t: t, token: c.token} // a failed answer's cookie is not followed
		if code, body := other.do(http.MethodPost, srv.URL+"/login", url.Values{"user": {"bob"}}); code != tc.code {
			t.Errorf("login with %v: %d %s", tc.err, code, body)
		}
		store.err.Store(nil)
		if _, got, body := c.cart(srv.URL); !equalCart(got, cartJSON{User: "alice", Items: []string{"apples"}, Node: "n1"}) {
			t.Errorf("cart after a refused change: %s", body)
		}
	}
}
