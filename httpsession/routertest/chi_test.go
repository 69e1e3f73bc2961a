package routertest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
)

// LoadAndSave is ordinary func(http.Handler) http.Handler middleware: chi
// takes it with Use, next to its own middleware, and URL parameters,
// sub-routers and the session all work together.
func TestChiRouter(t *testing.T) {
	store := replicator.NewLocal("n1", replicator.DefaultReplicaConfig())
	m, err := httpsession.New(store, httpsession.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(m.LoadAndSave)
	r.Route("/items", func(r chi.Router) {
		r.Put("/{name}", func(w http.ResponseWriter, req *http.Request) {
			if err := m.Put(req.Context(), "item", chi.URLParam(req, "name")); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		r.Get("/", func(w http.ResponseWriter, req *http.Request) {
			s, ok := httpsession.FromContext(req.Context())
			if !ok {
				http.Error(w, "no session in context", 500)
				return
			}
			item, _ := s.Get("item").(string)
			fmt.Fprint(w, item)
		})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/items/teapot", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if v := resp.Header.Get("Vary"); !strings.Contains(v, "Cookie") {
		t.Errorf("Vary = %q, want Cookie", v)
	}
	resp, err = c.Get(srv.URL + "/items/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(body); got != "teapot" {
		t.Fatalf("GET through chi = %q, want teapot", got)
	}
	if store.Len() != 1 {
		t.Fatalf("store holds %d sessions, want 1", store.Len())
	}
}
