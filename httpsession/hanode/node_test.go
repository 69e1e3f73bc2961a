package hanode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
)

// syncBuffer is a log sink read while goroutines write (testutil).
type syncBuffer = testutil.SyncBuffer

// startLocal starts an HA-off node on loopback ports chosen by the kernel.
func startLocal(t *testing.T, flags map[string]string) (*Node, *syncBuffer) {
	t.Helper()
	all := map[string]string{"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "log-level": "debug"}
	for k, v := range flags {
		all[k] = v
	}
	cfg, err := Load(Sources{Flags: all, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg.LogOutput = logs
	cfg.Version = "v9.9.9-test"
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n, logs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond for up to 10 seconds (testutil.WaitFor).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, what, cond)
}

// TestNodeServeHAOff: an application wired through the package gets its
// sessions on a local store, the admin API (with its own HTTP metrics)
// and the ordered shutdown when its context ends.
func TestNodeServeHAOff(t *testing.T) {
	n, logs := startLocal(t, map[string]string{"node": "app1"})
	if n.Name() != "app1" || !n.Ready() || n.Cluster() != nil {
		t.Fatalf("name %q ready %v", n.Name(), n.Ready())
	}
	sessions := n.Sessions()
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		c := sessions.GetInt(r.Context(), "n") + 1
		if err := sessions.Put(r.Context(), "n", c); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintln(w, c)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprintln(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx, sessions.LoadAndSave(mux)) }()
	app, admin := "http://"+n.AppAddr().String(), "http://"+n.AdminAddr().String()

	// The application works and keeps its session.
	jar := &cookieJar{}
	for want := 1; want <= 3; want++ {
		code, body := jar.post(t, app+"/count")
		if code != 200 || strings.TrimSpace(body) != fmt.Sprint(want) {
			t.Fatalf("POST /count: %d %q, want %d", code, body, want)
		}
	}
	// The admin API.
	if code, body := get(t, admin+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("livez %d %q", code, body)
	}
	if code, body := get(t, admin+"/readyz"); code != 200 {
		t.Errorf("readyz %d %q", code, body)
	}
	code, body := get(t, admin+"/status")
	var st map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["node"] != "app1" || st["ha"] != false ||
		st["version"] != "v9.9.9-test" || st["sessions"] != 1.0 || st["ready"] != true {
		t.Errorf("status %d %s", code, body)
	}
	code, body = get(t, admin+"/members")
	if code != 200 || !strings.Contains(body, `"name": "app1"`) {
		t.Errorf("members %d %s", code, body)
	}
	code, body = get(t, admin+"/sessions")
	var list SessionList
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || list.Count != 1 || list.Sessions[0].Attrs != 1 {
		t.Errorf("sessions %d %s", code, body)
	}
	code, body = get(t, admin+"/metrics")
	for _, re := range []string{
		`(?m)^hanode_http_requests_total\{server="app",method="POST",code="200"\} 3$`,
		`(?m)^hanode_build_info\{version="v9\.9\.9-test",`,
		`(?m)^hanode_app_sessions 1$`,
		`(?m)^hanode_http_requests_total\{server="admin",method="GET",code="200"\} [1-9]`,
	} {
		if code != 200 || !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("metrics lack %s:\n%s", re, body)
		}
	}
	if code, _ := get(t, admin+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof without the setting: %d", code)
	}

	// A request in flight when the context ends finishes; readiness goes
	// 503 at once; Serve returns nil after the ordered shutdown.
	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get(app + "/slow")
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	waitFor(t, "the slow request in flight", func() bool {
		_, body := get(t, admin+"/status")
		return strings.Contains(body, `"in_flight": 1`)
	})
	cancel()
	waitFor(t, "readyz 503 while draining", func() bool {
		code, _ := get(t, admin+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if n.Ready() {
		t.Error("Ready() during the shutdown")
	}
	close(release)
	if c := <-slow; c != 200 {
		t.Errorf("in-flight request: %d", c)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	out := logs.String()
	steps := []string{"signal received: draining", "shutdown: /readyz answers 503", "shutdown: listener closed, in-flight requests finished", "shutdown: deltas flushed", "hanode stopped"}
	last := -1
	for _, s := range steps {
		i := strings.Index(out, s)
		if i < 0 || i < last {
			t.Errorf("log lacks %q in order:\n%s", s, out)
		}
		last = i
	}
	if !strings.Contains(out, "node=app1") {
		t.Errorf("log lines lack the node name:\n%s", out)
	}
	if _, err := http.Get(app + "/count"); err == nil {
		t.Error("the application still answers after Serve returned")
	}
	if err := n.Serve(context.Background(), mux); err == nil {
		t.Error("a second Serve was accepted")
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close after Serve: %v", err)
	}
}

// TestNodeSIGHUPHAOff: SIGHUP does not end an HA-off application; it is
// logged.
func TestNodeSIGHUPHAOff(t *testing.T) {
	n, logs := startLocal(t, nil)
	defer n.Close()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP log line", func() bool { return strings.Contains(logs.String(), "SIGHUP: nothing to reload") })
}

// TestNodeSessionsConfig: the settings fill the session manager's
// configuration; the application's own fields stay.
func TestNodeSessionsConfig(t *testing.T) {
	cfg, err := Load(Sources{Getenv: env(nil), Flags: map[string]string{
		"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "cookie-name": "shop", "idle-timeout": "0s", "lifetime": "1h",
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions.Cookie.Path = "/shop"
	cfg.Sessions.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {}
	cfg.LogOutput = io.Discard
	sc := sessionConfig(cfg, -1, slog.New(slog.DiscardHandler))
	if sc.Cookie.Name != "shop" || sc.Cookie.Path != "/shop" || sc.Lifetime != time.Hour || sc.IdleTimeout != -1 || sc.ErrorFunc == nil || sc.Logger == nil {
		t.Errorf("session config %+v", sc)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := n.Sessions().LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = n.Sessions().Put(r.Context(), "k", "v")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = n.Serve(ctx, srv) }()
	defer cancel()
	resp, err := http.Get("http://" + n.AppAddr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Name != "shop" || ck[0].Path != "/shop" {
		t.Errorf("cookies %v", ck)
	}
}

// TestStartErrors: Start refuses a bad configuration with ErrConfig and
// binds nothing.
func TestStartErrors(t *testing.T) {
	if _, err := Start(nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil config: %v", err)
	}
	if _, err := Start(&Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("zero config: %v", err)
	}
	cfg, err := Load(Sources{Getenv: env(nil), Flags: map[string]string{"ha": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "key-file is required") {
		t.Errorf("HA without its settings: %v", err)
	}
	cfg, err = Load(Sources{Getenv: env(nil), Flags: map[string]string{"ha": "true", "node": "n1", "interface": "lo", "key-file": "/nonexistent/key", "listen": "127.0.0.1:0", "admin": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogOutput = io.Discard
	if _, err := Start(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "key-file (--key-file)") {
		t.Errorf("missing key file: %v", err)
	}
	// A port in use fails before anything else starts.
	n, _ := startLocal(t, nil)
	defer n.Close()
	cfg, _ = Load(Sources{Getenv: env(nil), Flags: map[string]string{"listen": "127.0.0.1:0", "admin": n.AdminAddr().String()}})
	cfg.LogOutput = io.Discard
	if _, err := Start(cfg); err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Errorf("admin port in use: %v", err)
	}
}

// cookieJar keeps one session cookie.
type cookieJar struct{ cookies []*http.Cookie }

func (j *cookieJar) post(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	for _, c := range j.cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ck := resp.Cookies(); len(ck) > 0 {
		j.cookies = ck
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestNodeExpiresSessionsHAOff: with HA off, idle sessions end on their
// own (the local store's timer), with nothing for the application to run.
func TestNodeExpiresSessionsHAOff(t *testing.T) {
	n, _ := startLocal(t, map[string]string{"idle-timeout": "1s"})
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sessions := n.Sessions()
	go func() {
		_ = n.Serve(ctx, sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = sessions.Put(r.Context(), "k", 1)
		})))
	}()
	for range 20 {
		resp, err := http.Post("http://"+n.AppAddr().String()+"/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := n.store.Len(); got != 20 {
		t.Fatalf("%d sessions, want 20", got)
	}
	waitFor(t, "the idle sessions to expire", func() bool { return n.store.Len() == 0 })
}
