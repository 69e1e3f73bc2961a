package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/packet"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/scripts/netlab"
)

// metricSum adds up the samples of a metric whose labels match the regexp
// (e.g. `reason="stale"`) in a node's /metrics.
func metricSum(t *testing.T, n *e2eNode, name, labels string) float64 {
	t.Helper()
	code, body, err := n.adminGet("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("%s /metrics: %d %v", n.name, code, err)
	}
	return sumSamples(body, name, regexp.MustCompile(labels))
}

// refusals sums what a node counts as refused replays: stale first
// contacts, duplicates and replays of known senders, packets of
// forgotten members, refused heartbeats and delta batches.
func refusals(t *testing.T, n *e2eNode) map[string]float64 {
	r := map[string]float64{}
	for reason, v := range rejections(t, n) {
		r["packet "+reason] = v
	}
	for _, reason := range []string{"older_incarnation", "retired", "stale"} {
		r["membership "+reason] = metricSum(t, n, "hanode_membership_refused_total", `reason="`+reason+`"`)
	}
	r["batch not_member"] = metricSum(t, n, "hanode_replication_batches_refused_total", `reason="not_member"`)
	return r
}

func statusID(t *testing.T, n *e2eNode) string {
	t.Helper()
	_, body, err := n.adminGet("/status")
	var st struct {
		ID string `json:"id"`
	}
	if err != nil || json.Unmarshal(body, &st) != nil || st.ID == "" {
		t.Fatalf("%s /status: %v %s", n.name, err, body)
	}
	return st.ID
}

// ghostWatch samples /members on nodes until stopped and records every
// sighting of a member that must not be there: the killed incarnation
// listed alive or suspect anywhere, or listed at all on a node that never
// knew it, or two alive members of one name.
type ghostWatch struct {
	mu       sync.Mutex
	seen     []string
	samples  int
	stop     chan struct{}
	done     chan struct{}
	oldID    string
	nodes    func() []*e2eNode
	neverSaw map[string]bool // node names that must never list oldID
}

func watchGhosts(oldID string, nodes func() []*e2eNode, neverSaw map[string]bool) *ghostWatch {
	g := &ghostWatch{stop: make(chan struct{}), done: make(chan struct{}), oldID: oldID, nodes: nodes, neverSaw: neverSaw}
	go func() {
		defer close(g.done)
		for {
			select {
			case <-g.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, n := range g.nodes() {
				_, body, err := n.adminGet("/members")
				var ms []memberJSON
				if err != nil || json.Unmarshal(body, &ms) != nil {
					continue
				}
				alive := map[string]int{}
				for _, m := range ms {
					live := m.State == "alive" || m.State == "suspect"
					if live {
						alive[m.Name]++
					}
					if m.ID == g.oldID && (live || g.neverSaw[n.name]) {
						g.note("%s lists the killed incarnation %s as %s", n.name, m.ID[:8], m.State)
					}
				}
				for name, c := range alive {
					if c > 1 {
						g.note("%s lists %d live members named %s: %s", n.name, c, name, body)
					}
				}
				g.mu.Lock()
				g.samples++
				g.mu.Unlock()
			}
		}
	}()
	return g
}

func (g *ghostWatch) note(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) < 10 {
		g.seen = append(g.seen, fmt.Sprintf(format, args...))
	}
}

// waitRounds waits until the watch has sampled every node k more times.
func (g *ghostWatch) waitRounds(t *testing.T, k int) {
	t.Helper()
	g.mu.Lock()
	want := g.samples + (k+1)*len(g.nodes())
	g.mu.Unlock()
	eventually(t, 20*time.Second, fmt.Sprintf("%d rounds of /members samples", k), func() (bool, string) {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.samples >= want, fmt.Sprintf("%d of %d samples", g.samples, want)
	})
}

func (g *ghostWatch) finish(t *testing.T) {
	close(g.stop)
	<-g.done
	for _, s := range g.seen {
		t.Error("ghost: " + s)
	}
	t.Logf("/members sampled %d times", g.samples)
}

// TestSecurityReplayAcrossRestarts: packets captured from the group while
// sessions are written and heartbeats flow are replayed, after a node is
// SIGKILLed and restarted, to the restarted node (at once) and to a node
// that joined since (after the tolerated clock skew). No node ever lists
// a ghost member, no session value goes back, a destroyed session stays
// destroyed, and the refusals are counted. (Before, a restarted or new
// node accepted the replayed packets of senders it had no state for:
// old heartbeats made ghost members and old deltas were applied.)
func TestSecurityReplayAcrossRestarts(t *testing.T) {
	lab := netlab.New(t, "secreplay")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	nodes := startCluster(t, lab, bin, key)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	ifi := bridgeInterface(t, lab)

	valueUser, doomedUser, n3User := &client{}, &client{}, &client{}
	put := func(c *client, n *e2eNode, k, v string) {
		t.Helper()
		if code, body, _ := c.do(t, http.MethodPut, n.app+"/attrs/"+k, v); code/100 != 2 {
			t.Fatalf("PUT %s on %s: %d %s", k, n.name, code, body)
		}
	}
	// Sessions exist before the capture; during it, each is written on
	// its node (n3's too, so that the capture holds n3's deltas).
	put(valueUser, n1, "v", "v0")
	put(doomedUser, n2, "d", "alive")
	put(n3User, n3, "x", "0")
	// The capture ends once it holds deltas and heartbeats of every node.
	caps := capture(t, ifi, func() {
		for i := 1; i <= 5; i++ {
			put(valueUser, n1, "v", "v"+strconv.Itoa(i))
			put(doomedUser, n2, "d", "alive-"+strconv.Itoa(i))
			put(n3User, n3, "x", strconv.Itoa(i))
		}
	}, fromEach(nodes, 15, map[packet.Type]int{packet.TypeData: 1, packet.TypeControl: 1}))
	captureEnd := time.Now()
	if len(caps) < 15 {
		t.Fatalf("captured only %d packets", len(caps))
	}
	oldID := statusID(t, n3)
	fromN3 := 0
	for _, c := range caps {
		if c.from == n3.host.IP() {
			fromN3++
		}
	}
	t.Logf("captured %d packets, %d of them from n3 (%s)", len(caps), fromN3, oldID[:8])
	if fromN3 == 0 {
		t.Fatal("no packet of n3 captured")
	}

	// After the capture: a newer value, and the doomed session destroyed.
	put(valueUser, n1, "v", "final")
	doomedID := cj0(doomedUser.token)
	req, _ := http.NewRequest(http.MethodDelete, n1.admin+"/sessions/"+replicator.ShortHash(doomedID), nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE /sessions: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	for _, n := range nodes {
		eventually(t, 20*time.Second, n.name+" dropped the destroyed session and holds the final value", func() (bool, string) {
			ids := sessionIDs(t, n)
			return !ids[doomedID] && ids[cj0(valueUser.token)], fmt.Sprint(len(ids))
		})
	}

	// n3 is SIGKILLed and restarted on its host: a new process.
	n3.proc.Kill()
	n3b := startHA(t, bin, n3.host, "n3", key)
	waitReady(t, 60*time.Second, n3b)
	if id := statusID(t, n3b); id == oldID {
		t.Fatal("the restarted n3 kept its member id")
	}
	var mu sync.Mutex
	live := []*e2eNode{n1, n2, n3b}
	current := func() []*e2eNode { mu.Lock(); defer mu.Unlock(); return append([]*e2eNode(nil), live...) }
	watch := watchGhosts(oldID, current, map[string]bool{"n3": true, "n4": true})

	atk := newAttacker(t, lab)
	replay := func(phase string) {
		for range 3 {
			for _, c := range caps {
				atk.send(t, c.b)
			}
		}
		t.Logf("%s: replayed %d packets 3 times, %.1fs after the capture", phase, len(caps), time.Since(captureEnd).Seconds())
	}
	before3 := refusals(t, n3b)
	replay("to the restarted n3")

	// A new node joins; the replay comes after the tolerated skew (10s).
	n4 := startHA(t, bin, lab.AddHost("n4"), "n4", key)
	waitReady(t, 60*time.Second, n4)
	mu.Lock()
	live = append(live, n4)
	mu.Unlock()
	// Kept sleep: the replay must come after the skew, a span of the
	// clocks that nothing in the cluster reports; not a wait for a result.
	time.Sleep(time.Until(captureEnd.Add(11 * time.Second)))
	before4 := refusals(t, n4)
	replay("to the new n4")

	// Every node has read the replayed datagrams, then heard each of its
	// live peers again (a heartbeat round: a ghost would be gossiped by
	// now), and the watch sampled every node after that; then check.
	atk.fence(t, current())
	heard := time.Now()
	for _, n := range current() {
		eventually(t, 20*time.Second, n.name+" hears its peers after the replay", func() (bool, string) {
			_, body, err := n.adminGet("/members")
			var ms []memberJSON
			if err != nil || json.Unmarshal(body, &ms) != nil {
				return false, fmt.Sprint(err)
			}
			for _, m := range ms {
				if m.State == "alive" && !m.Self && !m.LastSeen.After(heard) {
					return false, string(body)
				}
			}
			return true, ""
		})
	}
	watch.waitRounds(t, 2)
	watch.finish(t)

	// No value went back and the destroyed session stayed destroyed, on
	// every node (the doomed one is checked first: reading a session on a
	// node takes it over).
	for _, n := range []*e2eNode{n1, n2, n3b, n4} {
		if ids := sessionIDs(t, n); ids[doomedID] {
			t.Errorf("%s: the destroyed session is back", n.name)
		}
	}
	for _, n := range []*e2eNode{n1, n2, n3b, n4} {
		if code, body, _ := valueUser.do(t, http.MethodGet, n.app+"/attrs/v", ""); code != 200 || body != "final" {
			t.Errorf("%s: value %d %q, want \"final\"", n.name, code, body)
		}
		probe := &client{token: doomedUser.token}
		if code, body, _ := probe.do(t, http.MethodGet, n.app+"/attrs/d", ""); code != http.StatusNotFound {
			t.Errorf("%s: the destroyed session answers %d %q", n.name, code, body)
		}
	}

	// Refusals are counted: n3 refused its previous incarnation (stale
	// packets, refused heartbeats or batches), n4 the stale first contacts.
	eventually(t, 20*time.Second, "refusals counted on n3 and n4", func() (bool, string) {
		a3, a4 := refusals(t, n3b), refusals(t, n4)
		d3 := a3["packet stale"] - before3["packet stale"] + a3["membership older_incarnation"] - before3["membership older_incarnation"] +
			a3["batch not_member"] - before3["batch not_member"]
		d4 := a4["packet stale"] - before4["packet stale"]
		return d3 > 0 && d4 > 0, fmt.Sprintf("n3 %v / n4 %v", a3, a4)
	})
	for _, n := range []*e2eNode{n1, n2, n3b, n4} {
		t.Logf("%s refusals: %v", n.name, refusals(t, n))
	}
	if !strings.Contains(n4.proc.Logs(), "refused a packet of a sender not heard before") {
		t.Error("n4 did not log the stale first contact")
	}
}

// holdsSessionHash reports whether a node's admin listing holds the
// session with this short hash (what the demo's page and JSON show).
func holdsSessionHash(t *testing.T, n *e2eNode, hash string) bool {
	t.Helper()
	code, body, err := n.adminGet("/sessions")
	if err != nil || code != 200 {
		t.Fatalf("%s GET /sessions: %d %v", n.name, code, err)
	}
	var l sessionList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Sessions {
		if s.Hash == hash {
			return true
		}
	}
	return false
}
