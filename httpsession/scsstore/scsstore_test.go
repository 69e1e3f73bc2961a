package scsstore

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexedwards/scs/v2"

	"github.com/hanode/hanode/httpsession/sessiontest"
	"github.com/hanode/hanode/replicator"
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

// TestWholeSessionIsOneAttribute: scs stores the whole session as one
// attribute, so the replica's attribute limit (MaxAttrBytes) caps the
// whole scs session; scs's Commit then fails with replicator.ErrTooLarge.
func TestWholeSessionIsOneAttribute(t *testing.T) {
	local := replicator.NewLocal("n1", replicator.ReplicaConfig{MaxAttrBytes: 4 << 10})
	t.Cleanup(func() { local.Close() })
	sm := scs.New()
	sm.Store = New(local)
	var commitErr error
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		commitErr = err
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}
	h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 { // three values of 2 KB: each fits, together they do not
			sm.Put(r.Context(), fmt.Sprint("k", i), strings.Repeat("x", 2<<10))
		}
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", nil))
	if !errors.Is(commitErr, replicator.ErrTooLarge) || w.Code != http.StatusRequestEntityTooLarge || local.Len() != 0 {
		t.Fatalf("commit error %v, status %d, %d sessions", commitErr, w.Code, local.Len())
	}
}

// TestDependFromAnotherModule follows the README: an application module
// outside this repository requires scsstore and replaces both hanode
// modules with a local checkout; it builds.
func TestDependFromAnotherModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command in PATH: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/app\n\ngo 1.26.0\n",
		"main.go": `package main

import (
	"net/http"

	"github.com/alexedwards/scs/v2"
	"github.com/hanode/hanode/httpsession/scsstore"
	"github.com/hanode/hanode/replicator"
)

func main() {
	sm := scs.New()
	sm.Store = scsstore.New(replicator.NewLocal("n1", replicator.ReplicaConfig{}))
	_ = http.ListenAndServe("127.0.0.1:8080", sm.LoadAndSave(http.NotFoundHandler()))
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Offline: the module cache already holds scs (this module needs it);
	// no checksum database is reachable from the test namespace.
	env := append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod", "GOWORK=off")
	for _, args := range [][]string{
		{"mod", "edit",
			"-require=github.com/hanode/hanode/httpsession/scsstore@v0.0.0",
			"-replace=github.com/hanode/hanode/httpsession/scsstore=" + filepath.Join(root, "httpsession", "scsstore"),
			"-replace=github.com/hanode/hanode=" + root},
		{"mod", "tidy"},
		{"build", "-o", os.DevNull, "."},
	} {
		cmd := exec.Command(gobin, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
