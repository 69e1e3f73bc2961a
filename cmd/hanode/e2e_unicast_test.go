package main

// End-to-end tests of the unicast transport (issue 14): real `hanode run`
// processes in network namespaces where nftables drops every multicast
// packet, configured with --peers or --discovery dns:NAME.

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/scripts/netlab"
)

// noMulticast makes h drop every multicast packet it would receive or
// send, so that only unicast can carry the cluster.
func noMulticast(t *testing.T, h *netlab.Host) {
	t.Helper()
	err := h.Nft(`table inet hanode_nomcast {
	chain in { type filter hook input priority -10; policy accept; ip daddr 224.0.0.0/4 counter drop; meta pkttype multicast counter drop; }
	chain out { type filter hook output priority -10; policy accept; ip daddr 224.0.0.0/4 counter drop; }
}
`)
	if err != nil {
		t.Fatalf("nft on %s: %v", h.Name(), err)
	}
}

// groupPort is the default group's port: the unicast port of every node.
const groupPort = 45588

func peerAddr(h *netlab.Host) string { return h.Addr(groupPort) }

var peerMetricRE = regexp.MustCompile(`(?m)^hanode_multicast_peer_datagrams_sent_total\{peer="([0-9.:]+)"\} ([0-9.e+]+)$`)

// unicastPeers returns the peers a node sends to, with the datagrams sent
// to each, from its /metrics.
func unicastPeers(n *e2eNode) (map[string]float64, error) {
	code, body, err := n.adminGet("/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET /metrics: %d", code)
	}
	if !strings.Contains(string(body), "hanode_multicast_unicast_peers ") {
		return nil, fmt.Errorf("%s does not run the unicast transport", n.name)
	}
	out := map[string]float64{}
	for _, m := range peerMetricRE.FindAllStringSubmatch(string(body), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out, nil
}

// waitMembers waits until n sees exactly the named members alive.
func waitMembers(t *testing.T, n *e2eNode, names ...string) {
	t.Helper()
	want := strings.Join(names, ",")
	eventually(t, 30*time.Second, n.name+" sees "+want+" alive", func() (bool, string) {
		a, detail := relAlive(n)
		var got []string
		for _, name := range names {
			if a[name] {
				got = append(got, name)
			}
		}
		return len(a) == len(names) && strings.Join(got, ",") == want, detail
	})
}

// TestUnicastPeers: three nodes with --peers and no multicast at all; a
// session survives kill -9 of its node; NAK repair works under loss; a
// fourth node that lists one seed joins, receives every session by state
// transfer and appears in every node's /members.
func TestUnicastPeers(t *testing.T) {
	lab := netlab.New(t, "unicast")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	var hosts []*netlab.Host
	for i := 1; i <= 4; i++ {
		h := lab.AddHost("n" + strconv.Itoa(i))
		noMulticast(t, h)
		hosts = append(hosts, h)
	}
	// Every node gets the same list, itself included (skipped), in both
	// accepted forms.
	peers := hosts[0].IP().String() + "," + peerAddr(hosts[1]) + "," + hosts[2].IP().String()
	var nodes []*e2eNode
	for i := range 3 {
		name := hosts[i].Name()
		// Sync commits: a write waits for a peer's ack, which comes back
		// over unicast.
		nodes = append(nodes, relStart(t, bin, hosts[i], name, key, "--peers", peers, "--consistency", "sync", "--sync-timeout", "2s"))
	}
	waitReady(t, 60*time.Second, nodes...)
	for _, n := range nodes {
		waitMembers(t, n, "n1", "n2", "n3")
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		ps, err := unicastPeers(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range nodes {
			if o != n && ps[peerAddr(o.host)] == 0 {
				t.Errorf("%s sent nothing to %s: %v", n.name, o.name, ps)
			}
		}
		if _, self := ps[peerAddr(n.host)]; self {
			t.Errorf("%s sends to itself", n.name)
		}
	}

	// Sessions on n1, replicated, then n1 is killed.
	users := make([]*client, 40)
	counts := make([]int, len(users))
	for i := range users {
		users[i] = &client{}
		for k := 0; k <= i%3; k++ {
			counts[i] = users[i].counter(t, http.MethodPost, n1.app).N
		}
	}
	for _, n := range []*e2eNode{n2, n3} {
		eventually(t, 30*time.Second, n.name+" holds the sessions", func() (bool, string) {
			c, err := sessionCount(n)
			return err == nil && c >= len(users), fmt.Sprintf("%d %v", c, err)
		})
	}
	if got := relMetric(n1, "hanode_sync_timeouts_total"); got != 0 {
		t.Errorf("n1: %v sync commits timed out waiting for an ack", got)
	}
	n1.proc.Kill()
	for i, u := range users {
		target := []*e2eNode{n2, n3}[i%2]
		cj := u.counter(t, http.MethodGet, target.app)
		if cj.N != counts[i] || cj.Node != target.name {
			t.Errorf("user %d on %s after kill -9 of n1: %+v, want n=%d", i, target.name, cj, counts[i])
		}
	}
	for _, n := range []*e2eNode{n2, n3} {
		waitMembers(t, n, "n2", "n3")
	}

	// Loss: n3 drops 20% of the UDP it receives while n2 writes; NAKs
	// and repairs (unicast and "anyone") bring n3 to the same versions.
	if err := hosts[2].DropUDP(20); err != nil {
		t.Fatal(err)
	}
	for i := range users {
		for range 3 {
			counts[i] = users[i].counter(t, http.MethodPost, n2.app).N
		}
	}
	ref, err := relSessions(n2)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(ref))
	for id := range ref {
		ids = append(ids, id)
	}
	eventually(t, 30*time.Second, "n3 at n2's versions under 20% loss", func() (bool, string) {
		bad, ex := relSameVersions(ref, n3, ids)
		return bad == 0, ex
	})
	if naks := relMetric(n3, "hanode_multicast_naks_sent_total"); naks == 0 {
		t.Errorf("n3 sent no NAK under 20%% loss:%s", relRepairMetrics(n3))
	}
	if err := hosts[2].DropUDP(0); err != nil {
		t.Fatal(err)
	}

	// n4 lists only n2 as a seed.
	n4 := relStart(t, bin, hosts[3], "n4", key, "--peers", hosts[1].IP().String())
	waitReady(t, 60*time.Second, n4)
	for _, n := range []*e2eNode{n2, n3, n4} {
		waitMembers(t, n, "n2", "n3", "n4")
	}
	if got := relMetric(n4, "hanode_state_transfers_total"); got < 1 {
		t.Errorf("n4 state transfers = %v", got)
	}
	eventually(t, 30*time.Second, "n4 holds every session at n2's version", func() (bool, string) {
		bad, ex := relSameVersions(ref, n4, ids)
		return bad == 0, ex
	})
	// n3 never listed n4 and n4 never listed n3: they learned each other.
	eventually(t, 30*time.Second, "n3 and n4 sending to each other", func() (bool, string) {
		p3, err3 := unicastPeers(n3)
		p4, err4 := unicastPeers(n4)
		return err3 == nil && err4 == nil && p3[peerAddr(hosts[3])] > 0 && p4[peerAddr(hosts[2])] > 0,
			fmt.Sprintf("n3 %v %v; n4 %v %v", p3, err3, p4, err4)
	})
	// No node ever sent a multicast packet (not even an IGMP report).
	for _, h := range hosts {
		out, err := h.Run("nft", "list", "chain", "inet", "hanode_nomcast", "out")
		if err != nil || !strings.Contains(out, "counter packets 0 ") {
			t.Errorf("%s sent multicast: %v\n%s", h.Name(), err, out)
		}
	}
	// A write on n4 reaches n3 directly.
	u := &client{}
	u.counter(t, http.MethodPost, n4.app)
	eventually(t, 30*time.Second, "n4's new session on n3", func() (bool, string) {
		ids := sessionIDs(t, n3)
		return ids[cj0(u.token)], fmt.Sprint(len(ids))
	})

	// n4 is cut off from n2 and n3: each side declares the other dead.
	// n3 stops sending to n4 and n4 to n3 (learned addresses); n4 keeps
	// its seed n2. When the network heals, n4's packets reach n2, n2
	// holds n4 alive again and its announcements bring n3 and n4 together.
	if err := hosts[3].Partition(hosts[1], hosts[2]); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*e2eNode{{n3, n4}, {n4, n3}, {n2, n4}} {
		a, b := pair[0], pair[1]
		eventually(t, 30*time.Second, a.name+" dropping "+b.name+" once dead", func() (bool, string) {
			alive, detail := relAlive(a)
			ps, err := unicastPeers(a)
			_, has := ps[peerAddr(b.host)]
			return err == nil && !alive[b.name] && !has, fmt.Sprintf("peers %v %v; members %s", ps, err, detail)
		})
	}
	if ps, err := unicastPeers(n4); err != nil || ps[peerAddr(hosts[1])] == 0 {
		t.Errorf("n4 dropped its seed n2: %v %v", ps, err)
	}
	if err := hosts[3].Heal(hosts[1], hosts[2]); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*e2eNode{n2, n3, n4} {
		waitMembers(t, n, "n2", "n3", "n4")
	}
	u.counter(t, http.MethodPost, n4.app)
	want := u.counter(t, http.MethodGet, n4.app).N
	eventually(t, 30*time.Second, "n4's write on n3 after the heal", func() (bool, string) {
		s, err := relShowSession(n3, cj0(u.token))
		if err != nil || s == nil {
			return false, fmt.Sprint(err)
		}
		ref, err := relShowSession(n4, cj0(u.token))
		if err != nil || ref == nil {
			return false, fmt.Sprint(err)
		}
		return s.Session.Version == ref.Session.Version, fmt.Sprintf("n3 version %d, n4 version %d (n=%d)", s.Session.Version, ref.Session.Version, want)
	})
}

// TestUnicastDiscoveryDNS: three nodes find each other with
// --discovery dns:NAME through a DNS server the test runs; a node removed
// from DNS stays a peer while it is alive and is dropped once dead.
func TestUnicastDiscoveryDNS(t *testing.T) {
	lab := netlab.New(t, "unidns")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	dns := netlab.StartDNS(t, lab.BridgeIP().String()+":53")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+lab.BridgeIP().String()+"\noptions timeout:1 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "hanode.lab.test"
	var hosts []*netlab.Host
	var ips []netip.Addr
	for i := 1; i <= 3; i++ {
		h := lab.AddHost("n" + strconv.Itoa(i))
		noMulticast(t, h)
		hosts = append(hosts, h)
		ips = append(ips, h.IP())
	}
	dns.Set(name, ips...)
	var nodes []*e2eNode
	for _, h := range hosts {
		nodes = append(nodes, startWithResolver(t, bin, h, resolv, key, "--discovery", "dns:"+name))
	}
	waitReady(t, 60*time.Second, nodes...)
	for _, n := range nodes {
		waitMembers(t, n, "n1", "n2", "n3")
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// n3 leaves DNS while alive: after every node resolved again, it is
	// still a peer of n1 and n2 (learned from its traffic).
	before := dns.Queries(name)
	dns.Set(name, ips[0], ips[1])
	eventually(t, 30*time.Second, "every node resolving the name again", func() (bool, string) {
		q := dns.Queries(name)
		return q >= before+2*len(nodes), fmt.Sprintf("%d queries, %d before", q, before)
	})
	for _, n := range []*e2eNode{n1, n2} {
		ps, err := unicastPeers(n)
		if err != nil || ps[peerAddr(hosts[2])] == 0 {
			t.Fatalf("%s dropped n3 while alive: %v %v", n.name, ps, err)
		}
	}
	// n3 dies: dropped by both.
	n3.proc.Kill()
	for _, n := range []*e2eNode{n1, n2} {
		waitMembers(t, n, "n1", "n2")
		eventually(t, 30*time.Second, n.name+" dropping n3", func() (bool, string) {
			ps, err := unicastPeers(n)
			_, has := ps[peerAddr(hosts[2])]
			return err == nil && !has, fmt.Sprintf("%v %v", ps, err)
		})
	}
	// n1 and n2 still replicate to each other.
	u := &client{}
	u.counter(t, http.MethodPost, n1.app)
	eventually(t, 30*time.Second, "n1's session on n2", func() (bool, string) {
		ids := sessionIDs(t, n2)
		return ids[cj0(u.token)], fmt.Sprint(len(ids))
	})
}

// startWithResolver starts an HA node whose /etc/resolv.conf is resolv
// (a private mount namespace), so that it asks the test's DNS server.
func startWithResolver(t *testing.T, bin string, h *netlab.Host, resolv, key string, extra ...string) *e2eNode {
	t.Helper()
	n := &e2eNode{name: h.Name(), host: h, app: "http://" + h.Addr(appPort), admin: "http://" + h.Addr(adminPort)}
	args := []string{"-m", "sh", "-c", `mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`, "sh", resolv,
		bin, "run", "--node", n.name,
		"--listen", h.Addr(appPort), "--admin", h.Addr(adminPort), "--admin-token", e2eToken, "--log-level", "debug",
		"--ha", "--interface", "eth0", "--key-file", key}
	cmd := h.Command("unshare", append(args, extra...)...)
	cmd.Env = cleanEnv()
	n.proc = h.StartCmd(cmd)
	return n
}
