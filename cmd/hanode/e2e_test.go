package main

// End-to-end tests: real hanode processes in network namespaces on a
// bridge (scripts/netlab). They run under scripts/test.sh, which puts the
// whole test run inside a private network namespace.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/scripts/netlab"
)

const (
	e2eToken   = "e2e-admin-token"
	cookieName = "hanode_session"
	appPort    = 8080
	adminPort  = 9090
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// hanodeBinary builds cmd/hanode once per test run.
func hanodeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "hanode-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "hanode")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// keyFile writes a new key (hanode keygen) with mode 600.
func keyFile(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "keygen").Output()
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	p := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type e2eNode struct {
	name  string
	host  *netlab.Host
	proc  *netlab.Process
	app   string // http://IP:8080
	admin string // http://IP:9090
}

func startNode(t *testing.T, bin string, h *netlab.Host, name string, args ...string) *e2eNode {
	t.Helper()
	n := &e2eNode{
		name: name, host: h,
		app:   "http://" + h.Addr(appPort),
		admin: "http://" + h.Addr(adminPort),
	}
	base := []string{"run", "--node", name,
		"--listen", h.Addr(appPort), "--admin", h.Addr(adminPort), "--admin-token", e2eToken,
		"--log-level", "debug"}
	cmd := h.Command(bin, append(base, args...)...)
	cmd.Env = cleanEnv()
	n.proc = h.StartCmd(cmd)
	return n
}

func startHA(t *testing.T, bin string, h *netlab.Host, name, key string) *e2eNode {
	return startNode(t, bin, h, name, "--ha", "--interface", "eth0", "--key-file", key)
}

// cleanEnv drops HANODE_ settings of the test environment, so that only
// the flags configure the nodes.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANODE_") {
			env = append(env, kv)
		}
	}
	return env
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func (n *e2eNode) adminGet(path string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodGet, n.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// eventually polls cond until it reports true (testutil.Until).
var eventually = testutil.Until

func waitReady(t *testing.T, timeout time.Duration, nodes ...*e2eNode) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, timeout, n.name+" /readyz = 200", func() (bool, string) {
			if n.proc.Exited() {
				t.Fatalf("%s exited: %s", n.name, n.proc.Logs())
			}
			code, body, err := n.adminGet("/readyz")
			return err == nil && code == 200, fmt.Sprintf("%d %s %v", code, strings.TrimSpace(string(body)), err)
		})
	}
}

// statusOf reads a node's GET /status (the fields progress reports use).
func statusOf(n *e2eNode) (nodeStatus, error) {
	var st nodeStatus
	code, body, err := n.adminGet("/status")
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("%s GET /status: %d %s", n.name, code, body)
	}
	err = json.Unmarshal(body, &st)
	return st, err
}

func sessionCount(n *e2eNode) (int, error) {
	code, body, err := n.adminGet("/sessions")
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("GET /sessions: %d %s", code, body)
	}
	var l sessionList
	if err := json.Unmarshal(body, &l); err != nil {
		return 0, err
	}
	return l.Count, nil
}

func sessionIDs(t *testing.T, n *e2eNode) map[string]bool {
	t.Helper()
	code, body, err := n.adminGet("/sessions")
	if err != nil || code != 200 {
		t.Fatalf("%s GET /sessions: %d %v %s", n.name, code, err, body)
	}
	var l sessionList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range l.Sessions {
		ids[s.ID] = true
	}
	return ids
}

// client is one user: it keeps its session cookie by hand, so that the
// same cookie can go to any node (a jar is per host).
type client struct {
	token string // cookie value "<id>.<route>"
}

func (c *client) do(t *testing.T, method, url, body string) (int, string, *http.Response) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: c.token})
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName && ck.Value != "" {
			c.token = ck.Value
		}
	}
	return resp.StatusCode, string(b), resp
}

func (c *client) counter(t *testing.T, method, base string) counterJSON {
	t.Helper()
	code, body, _ := c.do(t, method, base+"/counter", "")
	if code != 200 {
		t.Fatalf("%s %s/counter: %d %s", method, base, code, body)
	}
	var cj counterJSON
	if err := json.Unmarshal([]byte(body), &cj); err != nil {
		t.Fatalf("counter answer %q: %v", body, err)
	}
	return cj
}

func routeOf(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[i+1:]
	}
	return ""
}

func TestFailoverSIGKILL(t *testing.T) {
	lab := netlab.New(t, "failover")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	var nodes []*e2eNode
	for i := 1; i <= 3; i++ {
		name := "n" + strconv.Itoa(i)
		nodes = append(nodes, startHA(t, bin, lab.AddHost(name), name, key))
	}
	waitReady(t, 60*time.Second, nodes...)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	relWaitAlive(t, n1, 3)

	type user struct {
		c    *client
		id   string
		n    int
		name string
	}
	users := make([]*user, 50)
	for i := range users {
		u := &user{c: &client{}, name: fmt.Sprintf("user-%02d", i)}
		for k := 0; k <= i%3; k++ {
			cj := u.c.counter(t, http.MethodPost, n1.app)
			u.id, u.n = cj.Session, cj.N
		}
		if u.n != i%3+1 || replicator.ShortHash(cj0(u.c.token)) != u.id || routeOf(u.c.token) != "n1" {
			t.Fatalf("user %d: n=%d id=%s token route %q", i, u.n, u.id, routeOf(u.c.token))
		}
		if code, body, _ := u.c.do(t, http.MethodPut, n1.app+"/attrs/user", u.name); code/100 != 2 {
			t.Fatalf("PUT /attrs/user: %d %s", code, body)
		}
		users[i] = u
	}
	for _, n := range []*e2eNode{n2, n3} {
		eventually(t, 30*time.Second, n.name+" holds the 50 sessions", func() (bool, string) {
			c, err := sessionCount(n)
			return err == nil && c >= 50, fmt.Sprintf("%d %v", c, err)
		})
	}

	n1.proc.Kill()

	for i, u := range users {
		target := n2
		if i%2 == 1 {
			target = n3
		}
		cj := u.c.counter(t, http.MethodGet, target.app)
		if cj.Session != u.id || cj.N != u.n || cj.Node != target.name {
			t.Errorf("user %d on %s: got %+v, want session %s n %d", i, target.name, cj, u.id, u.n)
			continue
		}
		if r := routeOf(u.c.token); r != target.name {
			t.Errorf("user %d: cookie route after failover = %q, want %q", i, r, target.name)
		}
		code, body, _ := u.c.do(t, http.MethodGet, target.app+"/attrs/user", "")
		if code != 200 || body != u.name {
			t.Errorf("user %d: attrs/user on %s = %d %q, want %q", i, target.name, code, body, u.name)
		}
	}
	noFalseSuspicions(t, n2, n3)
}

// cj0 returns the ID part of a token.
func cj0(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[:i]
	}
	return token
}

var rejectedRE = regexp.MustCompile(`(?m)^hanode_multicast_rejected_packets_total(\{[^}]*\})? ([0-9.e+]+)$`)

func rejectedPackets(n *e2eNode) (float64, string) {
	code, body, err := n.adminGet("/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Sprintf("%d %v", code, err)
	}
	var sum float64
	for _, m := range rejectedRE.FindAllStringSubmatch(string(body), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
	}
	return sum, fmt.Sprintf("sum %g", sum)
}

func TestWrongKeyNode(t *testing.T) {
	lab := netlab.New(t, "wrongkey")
	bin := hanodeBinary(t)
	key, other := keyFile(t, bin), keyFile(t, bin)
	a1 := startHA(t, bin, lab.AddHost("a1"), "a1", key)
	a2 := startHA(t, bin, lab.AddHost("a2"), "a2", key)
	b := startHA(t, bin, lab.AddHost("b"), "b", other)
	waitReady(t, 60*time.Second, a1, a2, b)

	ca, cb := &client{}, &client{}
	ca.counter(t, http.MethodPost, a1.app)
	cb.counter(t, http.MethodPost, b.app)
	idA, idB := cj0(ca.token), cj0(cb.token)
	eventually(t, 30*time.Second, "a2 holds a1's session", func() (bool, string) {
		ids := sessionIDs(t, a2)
		return ids[idA], fmt.Sprint(len(ids))
	})
	for _, n := range []*e2eNode{a1, a2} {
		eventually(t, 30*time.Second, n.name+" counts rejected packets", func() (bool, string) {
			v, detail := rejectedPackets(n)
			return v > 0, detail
		})
	}
	if ids := sessionIDs(t, a1); ids[idB] {
		t.Error("a1 holds the wrong-key node's session")
	}
	if ids := sessionIDs(t, a2); ids[idB] {
		t.Error("a2 holds the wrong-key node's session")
	}
	if ids := sessionIDs(t, b); ids[idA] {
		t.Error("the wrong-key node holds a1's session")
	}
	_, body, err := b.adminGet("/members")
	var ms []memberJSON
	if err != nil || json.Unmarshal(body, &ms) != nil {
		t.Fatalf("b /members: %v %s", err, body)
	}
	if len(ms) != 1 || ms[0].Name != "b" {
		t.Errorf("wrong-key node sees members %s", body)
	}
	_, body, _ = a1.adminGet("/members")
	if strings.Contains(string(body), `"name": "b"`) {
		t.Errorf("a1 lists the wrong-key node: %s", body)
	}
	// The cookie of one cluster is unknown to the other: a fresh session.
	if cj := cb.counter(t, http.MethodGet, a1.app); cj.Session == replicator.ShortHash(idB) {
		t.Error("a1 served the wrong-key node's session")
	}
}

func TestHAOff(t *testing.T) {
	lab := netlab.New(t, "haoff")
	bin := hanodeBinary(t)
	h := lab.AddHost("solo")
	// No multicast route and no interface or key given: HA off needs no
	// network beyond the HTTP listeners.
	if _, err := h.Run("ip", "route", "del", "224.0.0.0/4"); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, bin, h, "solo", "--ha=false")
	waitReady(t, 20*time.Second, n)

	c := &client{}
	for want := 1; want <= 3; want++ {
		if cj := c.counter(t, http.MethodPost, n.app); cj.N != want || cj.Node != "solo" {
			t.Fatalf("POST /counter = %+v, want n %d", cj, want)
		}
	}
	if r := routeOf(c.token); r != "solo" {
		t.Errorf("cookie route %q", r)
	}
	// SIGHUP has nothing to reload with HA off: it is logged and the node
	// goes on serving the same session.
	if err := n.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "SIGHUP logged", func() (bool, string) {
		return strings.Contains(n.proc.Logs(), "nothing to reload"), "no log line"
	})
	if n.proc.Exited() {
		t.Fatal("SIGHUP ended the process")
	}
	if cj := c.counter(t, http.MethodGet, n.app); cj.N != 3 {
		t.Fatalf("after SIGHUP: %+v, want n 3", cj)
	}
	id := cj0(c.token)
	if code, body, _ := c.do(t, http.MethodPut, n.app+"/attrs/color", "blue\nand green"); code/100 != 2 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body, _ := c.do(t, http.MethodGet, n.app+"/attrs/color", ""); code != 200 || body != "blue\nand green" {
		t.Fatalf("GET attr = %d %q", code, body)
	}
	if code, _, _ := c.do(t, http.MethodDelete, n.app+"/attrs/color", ""); code/100 != 2 {
		t.Fatalf("DELETE attr = %d", code)
	}
	if code, _, _ := c.do(t, http.MethodGet, n.app+"/attrs/color", ""); code != 404 {
		t.Fatalf("GET deleted attr = %d", code)
	}
	if code, body, _ := c.do(t, http.MethodGet, n.app+"/", ""); code != 200 || !strings.Contains(body, "solo") || strings.Contains(body, "http://") && strings.Contains(body, "<script src") {
		t.Errorf("GET / = %d", code)
	}
	if code, body, _ := c.do(t, http.MethodGet, n.app+"/api/cluster", ""); code != 200 || !strings.Contains(body, replicator.ShortHash(id)) || strings.Contains(body, id) {
		t.Errorf("GET /api/cluster = %d %s", code, body)
	}
	if ids := sessionIDs(t, n); !ids[id] {
		t.Errorf("/sessions lacks the session")
	}
	// Kill it from the admin API: the next request gets a new session.
	req, _ := http.NewRequest(http.MethodDelete, n.admin+"/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := httpClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE /sessions: %v %v", err, resp)
	}
	resp.Body.Close()
	if cj := c.counter(t, http.MethodGet, n.app); cj.Session == replicator.ShortHash(id) || cj.N != 0 {
		t.Errorf("after kill: %+v", cj)
	}
	// Without the token the listing is refused (the admin address is not loopback).
	resp, err = httpClient.Get(n.admin + "/sessions")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /sessions without token: %v %v", err, resp)
	}
	if resp != nil {
		resp.Body.Close()
	}
	// SIGTERM: exit 0.
	if err := n.proc.Stop(20 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, n.proc.Logs())
	}
}
