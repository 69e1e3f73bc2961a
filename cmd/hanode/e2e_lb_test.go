package main

// End-to-end tests of the sticky load-balancer recipes in scripts/lb:
// a real HAProxy and a real nginx (Debian packages), run as child
// processes in the test's own namespace on the lab's bridge, in front of
// three hanode nodes in network namespaces. A user sticks to its node,
// survives its graceful stop (SIGTERM) and its SIGKILL, and the cookie's
// route follows the node that took the session over.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/scripts/netlab"
)

const lbPort = 8000

// lbNode is one server line of a recipe.
type lbNode struct {
	Name      string
	App       string // IP:port of the application
	AdminPort int    // /readyz
}

type lbData struct {
	Listen string
	Cookie string
	Nodes  []lbNode
}

// renderRecipe renders scripts/lb/<name> into dir.
func renderRecipe(t *testing.T, name, dir string, data lbData) string {
	t.Helper()
	src := filepath.Join("..", "..", "scripts", "lb", name)
	tmpl, err := template.ParseFiles(src)
	if err != nil {
		t.Fatalf("recipe: %v", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		t.Fatalf("recipe %s: %v", name, err)
	}
	out := filepath.Join(dir, strings.TrimSuffix(name, ".tmpl"))
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// lbBinary finds a load balancer's binary, failing (not skipping) with
// the package to install: CI installs it (.ci/run).
func lbBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/local/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s not found: apt-get install -y %s (CI installs it in .ci/run)", name, pkg)
	return ""
}

// startHAProxy runs scripts/lb/haproxy.cfg.tmpl, with a minimal global
// and defaults section, and returns the front end's base URL.
func startHAProxy(t *testing.T, lab *netlab.Lab, nodes []*e2eNode) string {
	t.Helper()
	bin := lbBinary(t, "haproxy", "haproxy")
	dir := t.TempDir()
	listen := fmt.Sprintf("%s:%d", lab.BridgeIP(), lbPort)
	recipe := renderRecipe(t, "haproxy.cfg.tmpl", dir, lbDataFor(listen, nodes))
	global := filepath.Join(dir, "global.cfg")
	if err := os.WriteFile(global, []byte("global\n    maxconn 512\n\ndefaults\n    mode http\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", global, "-f", recipe).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	p := netlab.StartProcess(t, dir, "haproxy", exec.Command(bin, "-db", "-f", global, "-f", recipe))
	base := "http://" + listen
	waitLB(t, p, base)
	return base
}

// startNginx runs scripts/lb/nginx-hanode.conf.tmpl inside a minimal
// nginx.conf whose pid, logs and temporary files are in a temporary
// directory. `user root;`: under `unshare -rn` the test is uid 0 mapped
// to the calling user, and nginx's default user (nobody) is not mapped.
func startNginx(t *testing.T, lab *netlab.Lab, nodes []*e2eNode) string {
	t.Helper()
	bin := lbBinary(t, "nginx", "nginx-light")
	dir := t.TempDir()
	listen := fmt.Sprintf("%s:%d", lab.BridgeIP(), lbPort)
	recipe := renderRecipe(t, "nginx-hanode.conf.tmpl", dir, lbDataFor(listen, nodes))
	conf := filepath.Join(dir, "nginx.conf")
	main := fmt.Sprintf(`user root;
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, recipe)
	if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	p := netlab.StartProcess(t, dir, "nginx", exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("---- nginx error.log ----\n%s", b)
		}
	})
	base := "http://" + listen
	waitLB(t, p, base)
	return base
}

func lbDataFor(listen string, nodes []*e2eNode) lbData {
	d := lbData{Listen: listen, Cookie: cookieName}
	for _, n := range nodes {
		d.Nodes = append(d.Nodes, lbNode{Name: n.name, App: n.host.Addr(appPort), AdminPort: adminPort})
	}
	return d
}

// waitLB waits until the load balancer answers GET /counter with 200.
func waitLB(t *testing.T, p *netlab.Process, base string) {
	t.Helper()
	eventually(t, 20*time.Second, "the load balancer answers", func() (bool, string) {
		if p.Exited() {
			t.Fatalf("the load balancer exited: %v\n%s", p.Wait(time.Second), p.Logs())
		}
		resp, err := httpClient.Get(base + "/counter")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// startLBCluster starts three HA nodes (with the slow demo endpoint and
// a drain delay) and waits until each sees the three alive.
func startLBCluster(t *testing.T, name string) (*netlab.Lab, []*e2eNode) {
	t.Helper()
	lab := netlab.New(t, name)
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	var nodes []*e2eNode
	for i := 1; i <= 3; i++ {
		n := "n" + strconv.Itoa(i)
		nodes = append(nodes, startNode(t, bin, lab.AddHost(n), n, "--ha", "--interface", "eth0", "--key-file", key,
			"--demo-debug", "--drain-delay", "1s", "--shutdown-timeout", "10s"))
	}
	waitReady(t, 60*time.Second, nodes...)
	for _, n := range nodes {
		relWaitAlive(t, n, 3)
	}
	return lab, nodes
}

func nodeNamed(nodes []*e2eNode, name string) *e2eNode {
	for _, n := range nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// lbUser is one browser-like user behind the load balancer.
type lbUser struct {
	c    *client
	id   string // session ID without route
	n    int    // counter
	node string // node that served the last request
}

// post increments the counter through the load balancer and checks the
// session and the counter carried on.
func (u *lbUser) post(t *testing.T, base string) counterJSON {
	t.Helper()
	cj := u.c.counter(t, http.MethodPost, base)
	if u.id != "" && cj.Session != replicator.ShortHash(u.id) {
		t.Fatalf("session changed: %s -> %s (served by %s)", u.id, cj.Session, cj.Node)
	}
	if cj.N != u.n+1 {
		t.Fatalf("counter = %d on %s, want %d", cj.N, cj.Node, u.n+1)
	}
	if r := routeOf(u.c.token); r != cj.Node {
		t.Fatalf("cookie route %q, but served by %s", r, cj.Node)
	}
	u.id, u.n, u.node = cj0(u.c.token), cj.N, cj.Node
	return cj
}

// stick makes k requests and checks that all land on one node.
func (u *lbUser) stick(t *testing.T, base string, k int) string {
	t.Helper()
	first := ""
	for i := 0; i < k; i++ {
		cj := u.post(t, base)
		if first == "" {
			first = cj.Node
		} else if cj.Node != first {
			t.Fatalf("request %d of the user went to %s, earlier ones to %s: not sticky", i+1, cj.Node, first)
		}
	}
	return first
}

func holdsSession(t *testing.T, n *e2eNode, id string) bool {
	return sessionIDs(t, n)[id]
}

func expiredTotal(n *e2eNode) (float64, error) {
	code, body, err := n.adminGet("/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Errorf("metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "hanode_sessions_expired_total "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, errors.New("no hanode_sessions_expired_total")
}

// background is a second user making requests through the load balancer
// every 50ms while a node stops: none may fail or lose the session.
type background struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	errs   []string
	nodes  map[string]int
	served int
}

func startBackground(base, token string) *background {
	b := &background{stop: make(chan struct{}), done: make(chan struct{}), nodes: map[string]int{}}
	go func() {
		defer close(b.done)
		id := replicator.ShortHash(cj0(token))
		for {
			select {
			case <-b.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			req, _ := http.NewRequest(http.MethodGet, base+"/counter", nil)
			req.AddCookie(&http.Cookie{Name: cookieName, Value: token})
			resp, err := httpClient.Do(req)
			b.mu.Lock()
			if err != nil {
				b.errs = append(b.errs, err.Error())
				b.mu.Unlock()
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var cj counterJSON
			switch {
			case resp.StatusCode != 200:
				b.errs = append(b.errs, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body)))
			case json.Unmarshal(body, &cj) != nil || cj.Session != id:
				b.errs = append(b.errs, fmt.Sprintf("session lost: %s", body))
			default:
				b.served++
				b.nodes[cj.Node]++
			}
			for _, ck := range resp.Cookies() {
				if ck.Name == cookieName && ck.Value != "" {
					token = ck.Value
				}
			}
			b.mu.Unlock()
		}
	}()
	return b
}

// waitServed waits until the background user got n answers.
func (b *background) waitServed(t *testing.T, n int) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d background requests served", n), func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.served >= n, fmt.Sprintf("%d served, errors %v", b.served, b.errs)
	})
}

func (b *background) finish(t *testing.T) {
	t.Helper()
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		t.Errorf("%d of %d background requests failed during the stop: %v", len(b.errs), len(b.errs)+b.served, b.errs)
	}
	t.Logf("background user: %d requests served by %v", b.served, b.nodes)
}

// lbScenario is the test of one load balancer: stickiness, graceful stop
// of the user's node, then SIGKILL of its next node.
func lbScenario(t *testing.T, startLB func(*testing.T, *netlab.Lab, []*e2eNode) string) {
	lab, nodes := startLBCluster(t, "lb")
	base := startLB(t, lab, nodes)

	// Stickiness: several users, each sticks to its node for 10 requests.
	users := make([]*lbUser, 6)
	perNode := map[string]int{}
	for i := range users {
		users[i] = &lbUser{c: &client{}}
		perNode[users[i].stick(t, base, 10)]++
	}
	t.Logf("users per node: %v", perNode)
	u := users[0]
	for _, n := range nodes {
		eventually(t, 20*time.Second, n.name+" holds every user's session", func() (bool, string) {
			ids := sessionIDs(t, n)
			for _, x := range users {
				if !ids[x.id] {
					return false, "missing " + replicator.ShortHash(x.id)
				}
			}
			return true, ""
		})
	}

	// Graceful stop of the user's node, with a slow request in flight and
	// another user hammering the load balancer.
	victim := nodeNamed(nodes, u.node)
	// The background user is another user of the same node.
	var other *lbUser
	for _, x := range users[1:] {
		if x.node == victim.name {
			other = x
		}
	}
	if other == nil {
		t.Fatalf("no second user on %s", victim.name)
	}
	slow := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+"/debug/sleep?ms=2500", nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: u.c.token})
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
	}()
	// The slow request reaches the node: the only app request in flight
	// there (the background user starts after it).
	eventually(t, 10*time.Second, "the slow request in flight on "+victim.name, func() (bool, string) {
		st, err := statusOf(victim)
		return err == nil && st.InFlight >= 1, fmt.Sprintf("%+v %v", st, err)
	})
	bg := startBackground(base, other.c.token)
	bg.waitServed(t, 1)
	stopped := time.Now()
	if err := victim.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, victim.name+" /readyz = 503 after SIGTERM", func() (bool, string) {
		code, body, err := victim.adminGet("/readyz")
		return err == nil && code == 503, fmt.Sprintf("%d %s %v", code, bytes.TrimSpace(body), err)
	})
	if err := victim.proc.Wait(20 * time.Second); err != nil {
		t.Fatalf("%s after SIGTERM: %v (want exit status 0 within 20s)", victim.name, err)
	}
	t.Logf("%s exited 0, %s after SIGTERM", victim.name, time.Since(stopped).Round(time.Millisecond))
	if got := <-slow; got != "200 slept 2500ms" {
		t.Errorf("in-flight request during SIGTERM: %q, want 200", got)
	}
	for _, want := range []string{"/readyz answers 503", "in-flight requests finished", "deltas flushed, leave announced", "hanode stopped"} {
		if !strings.Contains(victim.proc.Logs(), want) {
			t.Errorf("%s's log lacks %q", victim.name, want)
		}
	}
	var rest []*e2eNode
	for _, n := range nodes {
		if n != victim {
			rest = append(rest, n)
		}
	}
	// The user's next request: another node, same session and counter,
	// route rebound; then it sticks there.
	cj := u.post(t, base)
	if cj.Node == victim.name {
		t.Fatalf("served by the stopped node %s", victim.name)
	}
	t.Logf("after the graceful stop of %s: user served by %s, counter %d", victim.name, cj.Node, cj.N)
	if again := u.stick(t, base, 10); again != cj.Node {
		t.Fatalf("after failover the user went to %s, not %s", again, cj.Node)
	}
	bg.finish(t)
	// Nothing was expired by the shutdown: every session is still on
	// the survivors.
	for _, n := range rest {
		for _, x := range users {
			if !holdsSession(t, n, x.id) {
				t.Errorf("%s lost session %s after the graceful stop of %s", n.name, replicator.ShortHash(x.id), victim.name)
			}
		}
		if v, err := expiredTotal(n); err != nil || v != 0 {
			t.Errorf("%s: hanode_sessions_expired_total = %v %v, want 0", n.name, v, err)
		}
	}
	// The other users move too (the background user's counter was only read).
	for _, x := range users[1:] {
		if cj := x.post(t, base); cj.Node == victim.name {
			t.Errorf("user served by the stopped node")
		}
	}

	// SIGKILL of the node the user now sticks to.
	victim2 := nodeNamed(rest, u.node)
	last := rest[0]
	if last == victim2 {
		last = rest[1]
	}
	// Replication is async: wait until the last survivor holds every
	// user's latest version (a SIGKILL may lose a delta still in flight).
	for _, x := range users {
		owner := nodeNamed(rest, x.node)
		eventually(t, 20*time.Second, last.name+" holds the users' latest versions", func() (bool, string) {
			want, got := owner.sessionVersion(x.id), last.sessionVersion(x.id)
			return want > 0 && got == want, fmt.Sprintf("%s has %d, %s %d", owner.name, want, last.name, got)
		})
	}
	victim2.proc.Kill()
	cj = u.post(t, base)
	if cj.Node != last.name {
		t.Fatalf("after SIGKILL of %s: served by %s, want %s", victim2.name, cj.Node, last.name)
	}
	t.Logf("after SIGKILL of %s: user served by %s, counter %d", victim2.name, cj.Node, cj.N)
	if again := u.stick(t, base, 10); again != last.name {
		t.Fatalf("after SIGKILL the user went to %s", again)
	}
	for _, x := range users[1:] {
		if cj := x.post(t, base); cj.Node != last.name {
			t.Errorf("user served by %s after two nodes went down", cj.Node)
		}
	}
}

// sessionVersion returns the version of a session on one node (-1 if
// absent), read on the admin API: a request with the session's cookie
// would take the session over.
func (n *e2eNode) sessionVersion(id string) int64 {
	code, body, err := n.adminGet("/sessions/" + id)
	if err != nil || code != 200 {
		return -1
	}
	var s struct {
		Session sessionJSON `json:"session"`
	}
	if json.Unmarshal(body, &s) != nil {
		return -1
	}
	return int64(s.Session.Version)
}

func TestLBHAProxy(t *testing.T) { lbScenario(t, startHAProxy) }

func TestLBNginx(t *testing.T) { lbScenario(t, startNginx) }
