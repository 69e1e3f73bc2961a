package main

// End-to-end test: three real shop processes in network namespaces on a
// bridge (scripts/netlab), HA turned on by the config file. It runs under
// scripts/test.sh, which puts the test run inside a private network
// namespace.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/httpsession/hanode"
	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator/cluster"
	"github.com/hanode/hanode/scripts/netlab"
)

const (
	e2eToken  = "shop-e2e-token"
	appPort   = 8080
	adminPort = 9090
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// shopBinary builds cmd/shop once per test run.
func shopBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shop-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "shop")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type shopNode struct {
	name  string
	proc  *netlab.Process
	app   string // http://IP:8080
	admin string // http://IP:9090
}

// cleanEnv drops the HANODE_ settings of the test environment, so that
// only the test configures the nodes.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANODE_") {
			env = append(env, kv)
		}
	}
	return env
}

func (n *shopNode) adminGet(path string) (int, []byte, error) {
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

// sessionVersion returns the version of a session as a node's admin API
// shows it (0 when the node does not hold it).
func (n *shopNode) sessionVersion(token string) (uint64, string) {
	id := token
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		id = id[:i]
	}
	code, body, err := n.adminGet("/sessions/" + id)
	if err != nil || code != 200 {
		return 0, fmt.Sprintf("%d %v %s", code, err, body)
	}
	var s struct {
		Session hanode.SessionJSON `json:"session"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return 0, err.Error()
	}
	return s.Session.Version, string(body)
}

// TestShopFailoverSIGKILL: three shop processes with HA on (from their
// config file); users log in and fill carts on n1; n1 is killed with
// SIGKILL; every user is still logged in with the same cart on n2 and n3,
// and keeps shopping there.
func TestShopFailoverSIGKILL(t *testing.T) {
	lab := netlab.New(t, "shop")
	bin := shopBinary(t)
	dir := t.TempDir()
	keys, err := multicast.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyPath, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	// The HA toggle and the cluster settings come from the config file,
	// the per-node settings from flags, the admin token from HANODE_*.
	conf := filepath.Join(dir, "shop.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`# shop cluster
ha = true
cluster = "shop"
interface = "eth0"
key-file = %q
log-level = "debug"
`, keyPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	var nodes []*shopNode
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		h := lab.AddHost(name)
		cmd := h.Command(bin, "--config", conf, "--node", name,
			"--listen", h.Addr(appPort), "--admin", h.Addr(adminPort))
		cmd.Env = append(cleanEnv(), "HANODE_ADMIN_TOKEN="+e2eToken)
		nodes = append(nodes, &shopNode{name: name, proc: h.StartCmd(cmd),
			app: "http://" + h.Addr(appPort), admin: "http://" + h.Addr(adminPort)})
	}
	for _, n := range nodes {
		eventually(t, 60*time.Second, n.name+" ready with 3 members", func() (bool, string) {
			if n.proc.Exited() {
				t.Fatalf("%s exited: %s", n.name, n.proc.Logs())
			}
			code, body, err := n.adminGet("/readyz")
			if err != nil || code != 200 {
				return false, fmt.Sprintf("readyz %d %v %s", code, err, body)
			}
			_, body, err = n.adminGet("/members")
			var ms []cluster.MemberInfo
			if err != nil || json.Unmarshal(body, &ms) != nil {
				return false, fmt.Sprint(err)
			}
			alive := 0
			for _, m := range ms {
				if m.State == "alive" {
					alive++
				}
			}
			return alive == 3, string(body)
		})
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// The admin API is hanode run's: status, metrics with the app's requests.
	code, body, err := n1.adminGet("/status")
	var st map[string]any
	if err != nil || code != 200 || json.Unmarshal(body, &st) != nil || st["node"] != "n1" || st["ha"] != true || st["cluster"] != "shop" {
		t.Fatalf("GET /status: %d %v %s", code, err, body)
	}

	type user struct {
		c     *shopClient
		name  string
		items []string
	}
	users := make([]*user, 12)
	for i := range users {
		u := &user{c: &shopClient{t: t}, name: fmt.Sprintf("user%02d", i)}
		if l := u.c.login(n1.app, u.name); l.User != u.name || l.Node != "n1" {
			t.Fatalf("login on n1: %+v", l)
		}
		for k := 0; k <= i%4; k++ {
			item := fmt.Sprintf("item-%d-%d", i, k)
			u.items = append(u.items, item)
			if cj := u.c.add(n1.app, item); len(cj.Items) != len(u.items) || cj.Node != "n1" {
				t.Fatalf("POST /cart on n1: %+v", cj)
			}
		}
		users[i] = u
	}
	code, body, _ = n1.adminGet("/metrics")
	if code != 200 || !regexp.MustCompile(`hanode_http_requests_total\{server="app",method="POST",code="200"\} [1-9]`).Match(body) {
		t.Errorf("GET /metrics lacks the app's requests: %d\n%s", code, body)
	}
	// Wait until n2 and n3 hold the last version of every session (async
	// replication), then kill n1 without warning.
	for _, u := range users {
		want, detail := n1.sessionVersion(u.c.token)
		if want == 0 {
			t.Fatalf("n1 does not hold %s's session: %s", u.name, detail)
		}
		for _, n := range []*shopNode{n2, n3} {
			eventually(t, 30*time.Second, n.name+" holds "+u.name+"'s session", func() (bool, string) {
				v, d := n.sessionVersion(u.c.token)
				return v >= want, fmt.Sprintf("version %d, want %d: %s", v, want, d)
			})
		}
	}
	n1.proc.Kill()

	for i, u := range users {
		target := []*shopNode{n2, n3}[i%2]
		code, cj, body := u.c.cart(target.app)
		if code != 200 || cj.User != u.name || cj.Node != target.name || !equalCart(cj, cartJSON{User: u.name, Items: u.items, Node: target.name}) {
			t.Errorf("%s on %s after n1's death: %d %s, want items %v", u.name, target.name, code, body, u.items)
			continue
		}
		// Shopping goes on, and the other survivor sees it.
		u.items = append(u.items, "after-failover")
		u.c.add(target.app, "after-failover")
		other := []*shopNode{n3, n2}[i%2]
		eventually(t, 10*time.Second, u.name+"'s new item on "+other.name, func() (bool, string) {
			code, cj, body := u.c.cart(other.app)
			return code == 200 && equalCart(cj, cartJSON{User: u.name, Items: u.items, Node: other.name}), body
		})
	}

	// The hanode commands work against the shop's admin API.
	hanodeBin := filepath.Join(filepath.Dir(bin), "hanode")
	if out, err := exec.Command("go", "build", "-o", hanodeBin, "../hanode").CombinedOutput(); err != nil {
		t.Fatalf("go build hanode: %v\n%s", err, out)
	}
	cmd := exec.Command(hanodeBin, "status", "--admin", strings.TrimPrefix(n2.admin, "http://"))
	cmd.Env = append(cleanEnv(), "HANODE_ADMIN_TOKEN="+e2eToken)
	out, err := cmd.CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^node:\s+n2$`).Match(out) || !regexp.MustCompile(`(?m)^ready:\s+true$`).Match(out) {
		t.Errorf("hanode status against the shop: %v\n%s", err, out)
	}
	cmd = exec.Command(hanodeBin, "sessions", "list", "--admin", strings.TrimPrefix(n3.admin, "http://"))
	cmd.Env = append(cleanEnv(), "HANODE_ADMIN_TOKEN="+e2eToken)
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d sessions", len(users))) {
		t.Errorf("hanode sessions list against the shop: %v\n%s", err, out)
	}

	// Logging out on one survivor ends the session on the other.
	u := users[0]
	token := u.c.token
	if code, body := u.c.do(http.MethodPost, n3.app+"/logout", nil); code != 200 {
		t.Fatalf("POST /logout: %d %s", code, body)
	}
	eventually(t, 10*time.Second, "the logout seen by n2", func() (bool, string) {
		probe := &shopClient{t: t, token: token}
		code, _, body := probe.cart(n2.app)
		return code == http.StatusUnauthorized, fmt.Sprintf("%d %s", code, body)
	})

	// Drain and SIGTERM, as hanode run does them.
	req, _ := http.NewRequest(http.MethodPost, n2.admin+"/drain", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := httpClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /drain: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, body, _ := n2.adminGet("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz after drain: %d %s", code, body)
	}
	if err := n3.proc.Stop(30 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, n3.proc.Logs())
	}
	if logs := n3.proc.Logs(); !strings.Contains(logs, "shutdown: deltas flushed, leave announced") || !strings.Contains(logs, "hanode stopped") {
		t.Errorf("n3's shutdown log:\n%s", logs)
	}
}
