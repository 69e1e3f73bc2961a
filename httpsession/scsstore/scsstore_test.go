package scsstore

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/scs/v2"

	"github.com/hanode/hanode/httpsession/sessiontest"
)

var (
	_ scs.Store         = (*Store)(nil)
	_ scs.CtxStore      = (*Store)(nil)
	_ scs.IterableStore = (*Store)(nil)
)

// TestSCSAppFailsOver runs an unchanged scs application on two nodes that
// share a replicated store: a session written on a is read on b.
func TestSCSAppFailsOver(t *testing.T) {
	cl := sessiontest.NewCluster("a", "b")
	app := func(name string) *httptest.Server {
		sm := scs.New()
		sm.Store = New(cl.Node(name)) // the only line an scs app changes
		mux := http.NewServeMux()
		mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "user", "alice") })
		mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, sm.GetString(r.Context(), "user")) })
		mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) { sm.Destroy(r.Context()) })
		srv := httptest.NewServer(sm.LoadAndSave(mux))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := app("a"), app("b")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(url string) string {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	get(a.URL + "/put")
	a.Close()
	if got := get(b.URL + "/get"); got != "alice" {
		t.Fatalf("after failover: %q", got)
	}
	all, _ := New(cl.Node("b")).All()
	if len(all) != 1 {
		t.Fatalf("All: %d", len(all))
	}
	get(b.URL + "/logout")
	if cl.Node("a").Len() != 0 || cl.Node("b").Len() != 0 {
		t.Fatal("logout not replicated")
	}
	if got := get(b.URL + "/get"); got != "" {
		t.Fatalf("after logout: %q", got)
	}
}
