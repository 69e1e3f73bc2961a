package main

// Rolling upgrade from the latest recorded release (RELEASES) to this
// tree: real processes in network namespaces (scripts/netlab), under
// write load with sync consistency, following the README's procedure
// (drain, stop, install, start, wait for /readyz, next node). It runs
// under scripts/test.sh like the other end-to-end tests:
//
//	unshare -rn bash -c 'ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo;
//	  HANODE_NETLAB=1 GOFLAGS=-mod=mod GOPROXY=off go test -count=1 -v -run TestUpgradeRolling ./cmd/hanode/'
//
// The old side is built from the release's commit in a temporary git
// worktree of this clone (removed afterwards), so the clone needs its
// history (not a shallow clone) and the module cache the release's
// dependencies (bash scripts/release.sh --download-deps, which .ci/run
// calls).

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/scripts/netlab"
)

// upRelease is one line of RELEASES.
type upRelease struct {
	Version, Commit, Date string
}

var upReleaseRE = regexp.MustCompile(`^(v[0-9]+\.[0-9]+\.[0-9]+) ([0-9a-f]{40}) ([0-9]{4}-[0-9]{2}-[0-9]{2})$`)

// upRepoRoot is the root of the clone this test runs in.
func upRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// upLatestRelease reads the last release line of RELEASES; every line
// must be well formed.
func upLatestRelease(t *testing.T, root string) upRelease {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "RELEASES"))
	if err != nil {
		t.Fatalf("the releases file: %v", err)
	}
	defer f.Close()
	var last upRelease
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		m := upReleaseRE.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("RELEASES:%d: %q is not `vX.Y.Z <40-hex commit> <YYYY-MM-DD>`", line, s)
		}
		last = upRelease{m[1], m[2], m[3]}
	}
	if last.Version == "" {
		t.Fatal("RELEASES lists no release")
	}
	return last
}

// upBuildRelease builds the release's hanode from its commit in a
// temporary worktree of the clone.
func upBuildRelease(t *testing.T, root string, rel upRelease) (bin, src string) {
	t.Helper()
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := git("cat-file", "-e", rel.Commit+"^{commit}"); err != nil {
		t.Fatalf("%s's commit %s is not in this clone (%v %s): the upgrade test needs the history; in a shallow clone run git fetch --unshallow", rel.Version, rel.Commit, err, out)
	}
	dir, err := os.MkdirTemp("", "hanode-upgrade-")
	if err != nil {
		t.Fatal(err)
	}
	src = filepath.Join(dir, "src")
	t.Cleanup(func() {
		if out, err := git("worktree", "remove", "--force", src); err != nil {
			t.Logf("git worktree remove %s: %v %s", src, err, out)
		}
		os.RemoveAll(dir)
		_, _ = git("worktree", "prune")
	})
	if out, err := git("worktree", "add", "--detach", src, rel.Commit); err != nil {
		t.Fatalf("git worktree add %s %s: %v\n%s", src, rel.Commit, err, out)
	}
	bin = filepath.Join(dir, "hanode-"+rel.Version)
	const pkg = "github.com/hanode/hanode/internal/buildinfo"
	ldflags := fmt.Sprintf("-X %s.version=%s -X %s.commit=%s", pkg, rel.Version, pkg, rel.Commit)
	if _, err := os.Stat(filepath.Join(src, "internal", "buildinfo")); err != nil {
		ldflags += " -X main.version=" + rel.Version // a release before internal/buildinfo
	}
	cmd := exec.Command("go", "build", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, "./cmd/hanode")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		hint := ""
		if strings.Contains(string(out), "GOPROXY=off") || strings.Contains(string(out), "module lookup disabled") {
			hint = "\nthe module cache lacks the release's dependencies: run bash scripts/release.sh --download-deps (with network) first"
		}
		t.Fatalf("building %s from %s: %v\n%s%s", rel.Version, rel.Commit, err, out, hint)
	}
	return bin, src
}

// upVersions is what a binary says of the protocols it speaks.
type upVersions struct {
	Version        string `json:"version"`
	WireSent       int    `json:"wire_version"`
	Wire           []int  `json:"wire_versions"` // accepted
	MembershipSent int    `json:"membership_version"`
	Membership     []int  `json:"membership_versions"` // accepted
}

// upBinaryVersions asks the binary (`hanode version --json`); a release
// from before that command printed them is read from its source: the
// constants multicast.WireVersion and membership.[Min]ProtocolVersion.
func upBinaryVersions(t *testing.T, bin, src string) upVersions {
	t.Helper()
	var v upVersions
	if out, err := exec.Command(bin, "version", "--json").Output(); err == nil && json.Unmarshal(out, &v) == nil && v.WireSent > 0 && v.MembershipSent > 0 {
		return v
	}
	constant := func(file, name string) int {
		b, err := os.ReadFile(filepath.Join(src, file))
		if err != nil {
			t.Fatalf("reading the old release's %s: %v", file, err)
		}
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s*=\s*([0-9]+)\s*$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("the old release's %s has no %s constant", file, name)
		}
		var n int
		fmt.Sscan(string(m[1]), &n)
		return n
	}
	// Before `version --json`, multicast accepted only the version it sent.
	v.WireSent = constant("multicast/wire.go", "WireVersion")
	v.Wire = []int{v.WireSent}
	v.MembershipSent = constant("membership/wire.go", "ProtocolVersion")
	for k := constant("membership/wire.go", "MinProtocolVersion"); k <= v.MembershipSent; k++ {
		v.Membership = append(v.Membership, k)
	}
	return v
}

// upCompatible explains why a and b cannot run in one cluster: each must
// accept the versions the other sends.
func upCompatible(a, b upVersions, aName, bName string) error {
	var problems []string
	check := func(what string, sent int, to []int, fromName, toName string) {
		for _, v := range to {
			if v == sent {
				return
			}
		}
		problems = append(problems, fmt.Sprintf("%s sends %s version %d, which %s does not accept (it accepts %v)", fromName, what, sent, toName, to))
	}
	check("wire (multicast header)", a.WireSent, b.Wire, aName, bName)
	check("wire (multicast header)", b.WireSent, a.Wire, bName, aName)
	check("membership message", a.MembershipSent, b.Membership, aName, bName)
	check("membership message", b.MembershipSent, a.Membership, bName, aName)
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// The rule the upgrade test applies before it starts a cluster, on the
// steps of a wire change.
func TestUpgradeCompatibilityRule(t *testing.T) {
	v := func(sent int, accepts ...int) upVersions {
		return upVersions{WireSent: sent, Wire: accepts, MembershipSent: 1, Membership: []int{1}}
	}
	for _, c := range []struct {
		name     string
		old, new upVersions
		ok       bool
	}{
		{"same version", v(1, 1), v(1, 1), true},
		{"a new version, the old one dropped at once", v(1, 1), v(2, 2), false},
		{"sends the new version before the old release accepts it", v(1, 1), v(2, 1, 2), false},
		{"step 1: accepts the new version, still sends the old", v(1, 1), v(1, 1, 2), true},
		{"step 2: sends the new version", v(1, 1, 2), v(2, 1, 2), true},
		{"step 3: drops the old version", v(2, 1, 2), v(2, 2), true},
		{"step 3 too early", v(1, 1, 2), v(2, 2), false},
	} {
		err := upCompatible(c.old, c.new, "old", "new")
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want compatible %v", c.name, err, c.ok)
		}
	}
	err := upCompatible(v(1, 1), v(2, 2), "v0.1.0", "this tree")
	if err == nil || !strings.Contains(err.Error(), "this tree sends wire (multicast header) version 2, which v0.1.0 does not accept") {
		t.Errorf("the message: %v", err)
	}
	mem := upVersions{WireSent: 1, Wire: []int{1}, MembershipSent: 2, Membership: []int{2}}
	if err := upCompatible(v(1, 1), mem, "old", "new"); err == nil || !strings.Contains(err.Error(), "membership message version 2") {
		t.Errorf("a membership change: %v", err)
	}
}

// upStart starts a node of the upgrade cluster with bin.
func upStart(t *testing.T, bin string, h *netlab.Host, name, key string) *e2eNode {
	t.Helper()
	n := &e2eNode{name: name, host: h, app: "http://" + h.Addr(appPort), admin: "http://" + h.Addr(adminPort)}
	cmd := h.Command(bin, "run", "--node", name, "--listen", h.Addr(appPort), "--admin", h.Addr(adminPort),
		"--admin-token", e2eToken, "--ha", "--interface", "eth0", "--key-file", key,
		"--consistency", "sync", "--log-level", "info")
	cmd.Env = cleanEnv()
	n.proc = h.StartCmd(cmd)
	return n
}

// upWaitReady waits for /readyz 200 and for the node to see want alive
// members; what describes the versions for the failure message.
func upWaitReady(t *testing.T, n *e2eNode, want int, what string) {
	t.Helper()
	err := testutil.Wait(90*time.Second, func() error {
		if n.proc.Exited() {
			t.Fatalf("%s (%s) exited:\n%s", n.name, what, n.proc.Logs())
		}
		code, body, err := n.adminGet("/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("/readyz %d %s %v", code, strings.TrimSpace(string(body)), err)
		}
		_, mb, err := n.adminGet("/members")
		var ms []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if err != nil || json.Unmarshal(mb, &ms) != nil {
			return fmt.Errorf("/members: %v %s", err, mb)
		}
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
		}
		if alive != want {
			return fmt.Errorf("ready, %d alive members of %d: %s", alive, want, mb)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s did not become ready in a cluster of %d (%s) within 90s (last: %v); a mixed cluster that never forms means the versions do not interoperate: see the README, \"Compatibility and upgrades\"\n%s",
			n.name, want, what, err, n.proc.Logs())
	}
}

// upSession is the admin API's view of one session on one node.
func upSession(n *e2eNode, id string) (owner string, epoch uint32, version uint64, ok bool) {
	code, body, err := n.adminGet("/sessions/" + id)
	if err != nil || code != 200 {
		return "", 0, 0, false
	}
	var s struct {
		Session struct {
			Owner   string `json:"owner"`
			Epoch   uint32 `json:"epoch"`
			Version uint64 `json:"version"`
		} `json:"session"`
	}
	if json.Unmarshal(body, &s) != nil {
		return "", 0, 0, false
	}
	return s.Session.Owner, s.Session.Epoch, s.Session.Version, true
}

// upCrossCheck writes new sessions on node a, reads (and increments) them
// on node b once b holds a's last write, and back on a: sessions written
// by one version are read by the other, both ways.
func upCrossCheck(t *testing.T, a, b *e2eNode, what string) {
	t.Helper()
	hc := relHTTP(2, true)
	synced := func(id string, from, to *e2eNode) {
		eventually(t, 15*time.Second, to.name+" holds "+from.name+"'s last write of "+relShort(id), func() (bool, string) {
			o1, e1, v1, ok1 := upSession(from, id)
			o2, e2, v2, ok2 := upSession(to, id)
			return ok1 && ok2 && o1 == o2 && e1 == e2 && v1 == v2,
				fmt.Sprintf("%s: %v %s/%d/%d, %s: %v %s/%d/%d", from.name, ok1, o1, e1, v1, to.name, ok2, o2, e2, v2)
		})
	}
	for i := range 5 {
		cj, tok, err := relCounter(hc, http.MethodPost, a.app, "")
		if err != nil || cj.N != 1 {
			t.Fatalf("%s: new session %d on %s: %+v %v", what, i, a.name, cj, err)
		}
		id := cj0(tok)
		synced(id, a, b)
		cj, tok, err = relCounter(hc, http.MethodPost, b.app, tok)
		if err != nil || cj.N != 2 || cj0(tok) != id {
			t.Fatalf("%s: session %s written on %s, incremented on %s: %+v %v (token id %s), want n 2 in the same session", what, relShort(id), a.name, b.name, cj, err, relShort(cj0(tok)))
		}
		synced(id, b, a)
		cj, tok, err = relCounter(hc, http.MethodPost, a.app, tok)
		if err != nil || cj.N != 3 || cj0(tok) != id {
			t.Fatalf("%s: session %s back on %s: %+v %v, want n 3 in the same session", what, relShort(id), a.name, cj, err)
		}
	}
	t.Logf("upgrade: %s: 5 sessions written on %s, read and written on %s, read back on %s", what, a.name, b.name, a.name)
}

// upUser is one user of the load: its cookie and the last acknowledged n.
type upUser struct {
	token, id string
	n         int // last acknowledged counter value
	pending   int // requests that failed and may have been applied since
}

func TestUpgradeRolling(t *testing.T) {
	lab := netlab.New(t, "upgrade")
	root := upRepoRoot(t)
	rel := upLatestRelease(t, root)
	oldBin, oldSrc := upBuildRelease(t, root, rel)
	newBin := hanodeBinary(t)
	oldV := upBinaryVersions(t, oldBin, oldSrc)
	newV := upBinaryVersions(t, newBin, "")
	oldName := fmt.Sprintf("%s (commit %.12s, sends wire %d and membership %d, accepts %v and %v)", rel.Version, rel.Commit, oldV.WireSent, oldV.MembershipSent, oldV.Wire, oldV.Membership)
	newName := fmt.Sprintf("this tree (%s, sends wire %d and membership %d, accepts %v and %v)", newV.Version, newV.WireSent, newV.MembershipSent, newV.Wire, newV.Membership)
	t.Logf("upgrade: from %s to %s", oldName, newName)
	if err := upCompatible(oldV, newV, rel.Version, "this tree"); err != nil {
		t.Fatalf("%s and this tree cannot run in one cluster, so a rolling upgrade from it would break: %v.\n"+
			"The compatibility policy (README, \"Compatibility and upgrades\"): a release that changes the wire keeps speaking the previous version "+
			"until a later release drops it: make this tree accept what %s sends and send what it accepts. Only if %s was recorded but never shipped to anyone, "+
			"re-point its line in RELEASES at a commit that speaks this protocol instead.", oldName, err, rel.Version, rel.Version)
	}

	// The old cluster.
	out, err := exec.Command(oldBin, "keygen").Output()
	if err != nil {
		t.Fatalf("%s keygen: %v", rel.Version, err)
	}
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, out, 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*e2eNode, 3)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		nodes[i] = upStart(t, oldBin, lab.AddHost(name), name, key)
	}
	for _, n := range nodes {
		upWaitReady(t, n, 3, "all "+rel.Version)
	}
	lb := newRelLB(nodes)
	defer lb.close()

	// Write load: counters through a sticky LB, sync consistency. A 200
	// is an acknowledged write; a later answer below it is a lost one.
	const workers, usersPerWorker = 6, 8
	var requests, acked, ambiguous atomic.Int64
	var lost, sessionLost, stale errs
	stop := make(chan struct{})
	var wg sync.WaitGroup
	users := make([][]*upUser, workers)
	for w := range workers {
		users[w] = make([]*upUser, usersPerWorker)
		for k := range users[w] {
			users[w][k] = &upUser{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := relHTTP(2, false) // a new connection per request: a refused one is unambiguous
			// A request every 5ms at most per worker: the pace of the
			// load (a rate), not a wait for an outcome.
			pace := time.NewTicker(5 * time.Millisecond)
			defer pace.Stop()
			for it := 0; ; it++ {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				u := users[w][it%usersPerWorker]
				avoid := map[string]bool{}
				for try := 0; try < 3; try++ {
					node := lb.pick(routeOf(u.token), avoid)
					if node == nil {
						lb.awaitCheck()
						continue
					}
					requests.Add(1)
					cj, tok, err := relCounter(hc, http.MethodPost, node.app, u.token)
					if err != nil {
						avoid[node.name] = true
						if !errors.Is(err, syscall.ECONNREFUSED) {
							u.pending++ // a 503 (not replicated) or a cut connection may have been applied
							ambiguous.Add(1)
						}
						continue
					}
					acked.Add(1)
					switch {
					case u.id != "" && cj0(tok) != u.id:
						sessionLost.add("user %s: a new session %s on %s (n %d) after n %d", relShort(u.id), relShort(cj0(tok)), node.name, cj.N, u.n)
					case cj.N <= u.n:
						lost.add("user %s: POST on %s returned n %d after the acknowledged n %d", relShort(u.id), node.name, cj.N, u.n)
					case cj.N > u.n+1+u.pending:
						lost.add("user %s: POST on %s returned n %d after n %d with %d unacknowledged", relShort(u.id), node.name, cj.N, u.n, u.pending)
					}
					u.token, u.id, u.n, u.pending = tok, cj0(tok), cj.N, 0
					if it%4 == 0 {
						// A read through the node that acknowledged it.
						if cj, _, err := relCounter(hc, http.MethodGet, node.app, u.token); err == nil && cj.N != u.n {
							stale.add("user %s: GET on %s returned n %d after the acknowledged n %d", relShort(u.id), node.name, cj.N, u.n)
						}
					}
					break
				}
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
			return
		default:
		}
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("load workers did not stop")
		}
	}
	defer stopLoad()
	eventually(t, 30*time.Second, "write load on the old cluster", func() (bool, string) {
		return acked.Load() >= 200, fmt.Sprintf("%d acknowledged", acked.Load())
	})

	// The README's procedure, node by node.
	for i, n := range nodes {
		t0 := time.Now()
		r0 := acked.Load()
		// 1. drain: /readyz 503, the LB moves the users; wait until no
		// request is in flight and every delta is sent.
		drain := n.host.Command(oldBin, "drain", "--admin", n.host.Addr(adminPort), "--admin-token", e2eToken, "--wait", "--timeout", "60s")
		drain.Env = cleanEnv()
		if out, err := drain.CombinedOutput(); err != nil {
			t.Fatalf("%s: hanode drain --wait: %v\n%s", n.name, err, out)
		}
		// 2. stop (systemctl stop: SIGTERM), a clean exit.
		if err := n.proc.Stop(45 * time.Second); err != nil {
			t.Fatalf("%s: stop: %v\n%s", n.name, err, n.proc.Logs())
		}
		// 3. install, 4. start: this tree's binary, the same settings.
		nodes[i].proc = upStart(t, newBin, n.host, n.name, key).proc
		// 5. wait for /readyz (and the full membership), then the next.
		upWaitReady(t, n, 3, fmt.Sprintf("%d of 3 nodes on this tree, the others on %s", i+1, rel.Version))
		code, body, err := n.adminGet("/status")
		var st struct {
			Version string `json:"version"`
			Wire    []int  `json:"wire_versions"`
		}
		if err != nil || code != 200 || json.Unmarshal(body, &st) != nil || st.Version != newV.Version || len(st.Wire) == 0 {
			t.Errorf("%s after the upgrade: /status %d %v %s, want version %s and wire_versions", n.name, code, err, body, newV.Version)
		}
		t.Logf("upgrade: %s on this tree, ready %s after the drain began; %d acknowledged writes meanwhile", n.name, time.Since(t0).Round(time.Millisecond), acked.Load()-r0)
		if i < len(nodes)-1 {
			// Mixed versions: sessions cross from the new node to an old one and back.
			upCrossCheck(t, n, nodes[len(nodes)-1], fmt.Sprintf("after upgrading %s (new) with %s (old)", n.name, nodes[len(nodes)-1].name))
			upCrossCheck(t, nodes[len(nodes)-1], n, fmt.Sprintf("after upgrading %s (old %s first)", n.name, nodes[len(nodes)-1].name))
		}
		eventually(t, 30*time.Second, "writes continue after "+n.name+"'s upgrade", func() (bool, string) {
			return acked.Load() >= r0+100, fmt.Sprintf("%d acknowledged since the drain", acked.Load()-r0)
		})
	}
	stopLoad()
	t.Logf("upgrade: %d requests, %d acknowledged, %d failed ambiguously (503 or a cut connection)", requests.Load(), acked.Load(), ambiguous.Load())
	sessionLost.report(t, "lost sessions")
	lost.report(t, "lost acknowledged writes")
	stale.report(t, "stale reads")

	// Every session on every node, and its owner serves the last value.
	var all []*upUser
	for _, us := range users {
		for _, u := range us {
			if u.id != "" {
				all = append(all, u)
			}
		}
	}
	if len(all) != workers*usersPerWorker {
		t.Errorf("only %d of %d users got a session", len(all), workers*usersPerWorker)
	}
	for _, n := range nodes {
		eventually(t, 20*time.Second, n.name+" holds every user's session", func() (bool, string) {
			miss := 0
			for _, u := range all {
				if _, _, _, ok := upSession(n, u.id); !ok {
					miss++
				}
			}
			return miss == 0, fmt.Sprintf("%d of %d missing", miss, len(all))
		})
	}
	hc := relHTTP(2, true)
	for _, u := range all {
		node := lb.pick(routeOf(u.token), nil)
		cj, tok, err := relCounter(hc, http.MethodGet, node.app, u.token)
		if err != nil || cj0(tok) != u.id || cj.N < u.n || cj.N > u.n+u.pending {
			t.Errorf("user %s on %s after the upgrade: n %d %v, acknowledged n %d (%d unacknowledged after it)", relShort(u.id), node.name, cj.N, err, u.n, u.pending)
		}
	}
}
