package main

// End-to-end tests of store = redis: real hanode processes and a real
// Redis Cluster (3 masters, 3 replicas) on loopback, in the test's
// network namespace. No multicast is involved: the nodes share their
// sessions through Redis.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator/redisstore/redistest"
)

// procNode is a hanode process on loopback.
type procNode struct {
	name, app, admin string
	cmd              *exec.Cmd
	done             chan struct{}
	mu               sync.Mutex
	logs             bytes.Buffer
}

func (n *procNode) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.Write(p)
}

func (n *procNode) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

// loopbackAddrs returns n distinct free loopback addresses.
func loopbackAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

// startLocalNode runs `hanode run` on loopback ports with args.
func startLocalNode(t *testing.T, bin, name string, args ...string) *procNode {
	t.Helper()
	n := &procNode{name: name, done: make(chan struct{})}
	a := loopbackAddrs(t, 2)
	appAddr, adminAddr := a[0], a[1]
	n.app, n.admin = "http://"+appAddr, "http://"+adminAddr
	base := []string{"run", "--listen", appAddr, "--admin", adminAddr, "--admin-token", e2eToken}
	if name != "" {
		base = append(base, "--node", name)
	}
	n.cmd = exec.Command(bin, append(base, args...)...)
	n.cmd.Env = cleanEnv()
	n.cmd.Stdout, n.cmd.Stderr = n, n
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s logs:\n%s", n.name, n.Logs())
		}
	})
	return n
}

func (n *procNode) kill() {
	select {
	case <-n.done:
	default:
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

func (n *procNode) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (n *procNode) adminGet(path string) (int, []byte, error) {
	e := &e2eNode{admin: n.admin}
	return e.adminGet(path)
}

func waitProcReady(t *testing.T, timeout time.Duration, nodes ...*procNode) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, timeout, n.name+" /readyz = 200", func() (bool, string) {
			if n.exited() {
				t.Fatalf("%s exited: %s", n.name, n.Logs())
			}
			code, body, err := n.adminGet("/readyz")
			return err == nil && code == 200, fmt.Sprintf("%d %s %v", code, strings.TrimSpace(string(body)), err)
		})
	}
}

// Three nodes with --store redis on a Redis Cluster: sessions made on n1
// survive kill -9 of n1 on n2 and n3 (the cookie is rebound to the node
// that serves it), the admin API and `hanode sessions list|show|kill` work
// on the Redis store, and a killed session is gone on every node.
func TestRedisStoreFailoverSIGKILL(t *testing.T) {
	rc := redistest.StartCluster(t, 3, 1, time.Second)
	bin := hanodeBinary(t)
	addrs := strings.Join(rc.Addrs()[:3], ",")
	var nodes []*procNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, startLocalNode(t, bin, "n"+strconv.Itoa(i), "--store", "redis", "--store-addrs", addrs))
	}
	waitProcReady(t, 30*time.Second, nodes...)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	type user struct {
		c    *client
		id   string
		n    int
		name string
	}
	users := make([]*user, 30)
	for i := range users {
		u := &user{c: &client{}, name: fmt.Sprintf("user-%02d", i)}
		for k := 0; k <= i%3; k++ {
			cj := u.c.counter(t, http.MethodPost, n1.app)
			u.id, u.n = cj.Session, cj.N
		}
		if u.n != i%3+1 || routeOf(u.c.token) != "n1" {
			t.Fatalf("user %d: n=%d token route %q", i, u.n, routeOf(u.c.token))
		}
		if code, body, _ := u.c.do(t, http.MethodPut, n1.app+"/attrs/user", u.name); code/100 != 2 {
			t.Fatalf("PUT /attrs/user: %d %s", code, body)
		}
		users[i] = u
	}
	// Every node lists every session: they are in Redis, not in a node.
	for _, n := range nodes {
		eventually(t, 10*time.Second, n.name+" lists the 30 sessions", func() (bool, string) {
			code, body, err := n.adminGet("/sessions")
			var l sessionList
			if err != nil || code != 200 || json.Unmarshal(body, &l) != nil {
				return false, fmt.Sprint(code, err)
			}
			return l.Count >= 30, fmt.Sprint(l.Count)
		})
	}

	n1.kill()

	for i, u := range users {
		target := n2
		if i%2 == 1 {
			target = n3
		}
		cj := u.c.counter(t, http.MethodGet, target.app)
		if cj.Session != u.id || cj.N != u.n || cj.Node != target.name {
			t.Errorf("user %d on %s after kill -9 of n1: got %+v, want session %s n %d", i, target.name, cj, u.id, u.n)
			continue
		}
		if r := routeOf(u.c.token); r != target.name {
			t.Errorf("user %d: cookie route after failover = %q, want %q", i, r, target.name)
		}
		code, body, _ := u.c.do(t, http.MethodGet, target.app+"/attrs/user", "")
		if code != 200 || body != u.name {
			t.Errorf("user %d: attrs/user on %s = %d %q, want %q", i, target.name, code, body, u.name)
		}
		// Writes go on after the failover, and the other node reads them.
		cj = u.c.counter(t, http.MethodPost, target.app)
		other := n3
		if target == n3 {
			other = n2
		}
		// The other node's near cache is invalidated by Redis within
		// moments (asynchronously, like replication lag).
		saved := *u.c
		eventually(t, 2*time.Second, fmt.Sprintf("user %d: %s reads %s's write", i, other.name, target.name), func() (bool, string) {
			probe := saved
			got := probe.counter(t, http.MethodGet, other.app)
			return got.N == cj.N && got.Session == u.id, fmt.Sprintf("%+v", got)
		})
	}

	// hanode sessions list / show / kill against n2's admin API.
	cli := func(sub, verb string, args ...string) string {
		t.Helper()
		all := append([]string{sub, verb, "--admin", strings.TrimPrefix(n2.admin, "http://"), "--admin-token", e2eToken}, args...)
		cmd := exec.Command(bin, all...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hanode %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	victim := users[0]
	if out := cli("sessions", "list"); !strings.Contains(out, victim.id) {
		t.Fatalf("hanode sessions list does not show the session:\n%s", out)
	}
	if out := cli("sessions", "show", victim.id); !strings.Contains(out, "\"n\"") {
		t.Fatalf("hanode sessions show lacks the attribute n:\n%s", out)
	}
	if out := cli("sessions", "kill", victim.id); !strings.Contains(out, "killed") {
		t.Fatalf("hanode sessions kill: %s", out)
	}
	cj := victim.c.counter(t, http.MethodGet, n3.app)
	if cj.Session == victim.id || cj.N != 0 {
		t.Fatalf("a killed session still serves on n3: %+v", cj)
	}
}

// A node started on an unreachable Redis fails at once with a clear
// error; an outage later makes /readyz 503 with the reason, requests
// that need the store get an error (not a silent new session), and the
// metrics count it.
func TestRedisStoreOutage(t *testing.T) {
	bin := hanodeBinary(t)
	dead := loopbackAddrs(t, 1)[0]
	n0 := startLocalNode(t, bin, "", "--store", "redis", "--store-addrs", dead)
	select {
	case <-n0.done:
	case <-time.After(30 * time.Second):
		t.Fatal("hanode run with an unreachable store did not exit")
	}
	if code := n0.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(n0.Logs(), dead) {
		t.Fatalf("exit %d; the error does not name the store address %s:\n%s", code, dead, n0.Logs())
	}

	srv := redistest.Start(t)
	// Nothing but the store settings: no node name, no ha, no key file.
	n := startLocalNode(t, bin, "", "--store", "redis", "--store-addrs", srv.Addr, "--ha", "--interface", "eth9")
	waitProcReady(t, 20*time.Second, n)
	if !strings.Contains(n.Logs(), "ignored") {
		t.Errorf("no info line about the ignored HA settings:\n%s", n.Logs())
	}
	c := &client{}
	if cj := c.counter(t, http.MethodPost, n.app); cj.N != 1 {
		t.Fatalf("first request: %+v", cj)
	}
	srv.Kill()
	code, body, _ := c.do(t, http.MethodPost, n.app+"/counter", "")
	if code < 500 {
		t.Fatalf("a write during the outage answered %d %s, want a 5xx error", code, body)
	}
	eventually(t, 10*time.Second, "/readyz 503 naming the store", func() (bool, string) {
		code, body, err := n.adminGet("/readyz")
		return err == nil && code == 503 && strings.Contains(string(body), "store"), fmt.Sprintf("%d %s", code, body)
	})
	_, metrics, _ := n.adminGet("/metrics")
	if !strings.Contains(string(metrics), "hanode_store_redis_up 0") || !strings.Contains(string(metrics), `hanode_store_redis_errors_total{op="commit"}`) {
		t.Fatalf("metrics do not report the outage:\n%s", metrics)
	}
	for _, line := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(line, "hanode_store_redis_errors_total") {
			t.Log(line)
		}
	}
}

// --store-tls connects over TLS, trusting the system roots (here the
// test's CA through SSL_CERT_FILE); without it, a TLS-only Redis is an
// error at start.
func TestRedisStoreTLS(t *testing.T) {
	bin := hanodeBinary(t)
	srv, ca := redistest.StartTLS(t)
	plain := startLocalNode(t, bin, "", "--store", "redis", "--store-addrs", srv.Addr)
	select {
	case <-plain.done:
	case <-time.After(30 * time.Second):
		t.Fatal("hanode run without --store-tls on a TLS-only Redis did not exit")
	}
	if plain.cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("plain connection to a TLS-only Redis accepted:\n%s", plain.Logs())
	}
	n := &procNode{name: "tls", done: make(chan struct{})}
	a := loopbackAddrs(t, 2)
	n.app, n.admin = "http://"+a[0], "http://"+a[1]
	n.cmd = exec.Command(bin, "run", "--listen", a[0], "--admin", a[1], "--store", "redis", "--store-addrs", srv.Addr, "--store-tls")
	n.cmd.Env = append(cleanEnv(), "SSL_CERT_FILE="+ca)
	n.cmd.Stdout, n.cmd.Stderr = n, n
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("logs:\n%s", n.Logs())
		}
	})
	waitProcReady(t, 20*time.Second, n)
	c := &client{}
	c.counter(t, http.MethodPost, n.app)
	if cj := c.counter(t, http.MethodPost, n.app); cj.N != 2 {
		t.Fatalf("over TLS: %+v", cj)
	}
}
