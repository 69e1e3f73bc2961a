package main

// Security end-to-end tests (run under scripts/test.sh, in namespaces):
// an attacker on the cluster's LAN injects hostile datagrams into a
// running 3-node cluster; the cluster key is rotated under load with
// SIGHUP.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/scripts/netlab"
)

var defaultGroup = netip.MustParseAddrPort("239.255.42.99:45588")

// startCluster starts n HA nodes named n1.. with the given key files
// (one per node, or one for all) and waits until each sees all alive.
func startCluster(t *testing.T, lab *netlab.Lab, bin string, keys ...string) []*e2eNode {
	t.Helper()
	var nodes []*e2eNode
	for i := 1; i <= 3; i++ {
		name := "n" + strconv.Itoa(i)
		nodes = append(nodes, startHA(t, bin, lab.AddHost(name), name, keys[(i-1)%len(keys)]))
	}
	waitReady(t, 60*time.Second, nodes...)
	for _, n := range nodes {
		relWaitAlive(t, n, 3)
	}
	return nodes
}

var rejectedByReasonRE = regexp.MustCompile(`(?m)^hanode_multicast_rejected_packets_total\{reason="([a-z_]+)"\} ([0-9.e+]+)$`)

// rejections returns a node's rejected-packet counters by reason.
func rejections(t *testing.T, n *e2eNode) map[string]float64 {
	t.Helper()
	code, body, err := n.adminGet("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("%s /metrics: %d %v", n.name, code, err)
	}
	out := map[string]float64{}
	for _, m := range rejectedByReasonRE.FindAllStringSubmatch(string(body), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

func rssKiB(t *testing.T, n *e2eNode) int {
	t.Helper()
	pid := n.proc.PID()
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if strings.TrimSpace(string(comm)) != "hanode" {
		t.Fatalf("pid %d is %q, not hanode", pid, comm)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(st)
	if m == nil {
		t.Fatalf("no VmRSS in %s", st)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// load is a background writer: one user per node, sticky to it, posting
// /counter and checking that every answer is the previous value + 1.
type load struct {
	stop   atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []string
	tokens []string
	counts []int
	writes atomic.Int64
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

func postCounter(base, token string) (counterJSON, string, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/counter", nil)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: token})
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return counterJSON{}, token, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return counterJSON{}, token, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName && ck.Value != "" {
			token = ck.Value
		}
	}
	var cj counterJSON
	err = json.Unmarshal(b, &cj)
	return cj, token, err
}

// waitWrites waits until the load has made n more successful writes.
func (l *load) waitWrites(t *testing.T, n int64) {
	t.Helper()
	want := l.writes.Load() + n
	eventually(t, 30*time.Second, fmt.Sprintf("%d more writes", n), func() (bool, string) {
		got := l.writes.Load()
		return got >= want, fmt.Sprintf("%d of %d", got, want)
	})
}

// waitRounds waits until every user of the load has written k more times.
func (l *load) waitRounds(t *testing.T, k int) {
	t.Helper()
	l.mu.Lock()
	from := append([]int(nil), l.counts...)
	l.mu.Unlock()
	eventually(t, 30*time.Second, fmt.Sprintf("%d more writes of every user", k), func() (bool, string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, c := range l.counts {
			if c < from[i]+k {
				return false, fmt.Sprintf("counters %v, were %v", l.counts, from)
			}
		}
		return true, ""
	})
}

// waitReplicated waits until every node has applied (or rejected) every
// delta the others had sent when it was called.
func waitReplicated(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	sent := make([]float64, len(nodes))
	for i, n := range nodes {
		sent[i] = relMetric(n, "hanode_replication_deltas_sent_total")
	}
	for j, n := range nodes {
		var want float64
		for i := range nodes {
			if i != j {
				want += sent[i]
			}
		}
		eventually(t, 30*time.Second, n.name+" received every delta sent so far", func() (bool, string) {
			got := relMetric(n, "hanode_replication_deltas_applied_total") + relMetric(n, "hanode_replication_deltas_rejected_total")
			return got >= want, fmt.Sprintf("%v of %v", got, want)
		})
	}
}

// startLoad starts one user per node, each writing at most once every
// every: the pace of the load (a rate), not a wait for an outcome.
func startLoad(nodes []*e2eNode, every time.Duration) *load {
	l := &load{tokens: make([]string, len(nodes)), counts: make([]int, len(nodes))}
	for i, n := range nodes {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			pace := time.NewTicker(every)
			defer pace.Stop()
			for ; !l.stop.Load(); <-pace.C {
				cj, tok, err := postCounter(n.app, l.tokens[i])
				if err != nil {
					l.fail("%s: POST /counter: %v", n.name, err)
				} else {
					l.mu.Lock()
					if cj.N != l.counts[i]+1 {
						l.errs = append(l.errs, fmt.Sprintf("%s: counter %d after %d (lost write)", n.name, cj.N, l.counts[i]))
					}
					l.counts[i], l.tokens[i] = cj.N, tok
					l.mu.Unlock()
					l.writes.Add(1)
				}
			}
		}()
	}
	return l
}

// finish stops the load and checks every counter on every node.
func (l *load) finish(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	for _, e := range l.errs {
		t.Error("load: " + e)
	}
	for i := range nodes {
		c := &client{token: l.tokens[i]}
		for _, n := range nodes {
			eventually(t, 20*time.Second, fmt.Sprintf("user %d's counter = %d on %s", i, l.counts[i], n.name), func() (bool, string) {
				cj := c.counter(t, http.MethodGet, n.app)
				return cj.N == l.counts[i], fmt.Sprint(cj.N)
			})
		}
	}
	t.Logf("load: %d writes, final counters %v", l.writes.Load(), l.counts)
}

// bridgeInterface finds the lab bridge (the test process's own interface
// on the lab network).
func bridgeInterface(t *testing.T, lab *netlab.Lab) *net.Interface {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ifs {
		addrs, _ := ifs[i].Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == lab.BridgeIP() {
				return &ifs[i]
			}
		}
	}
	t.Fatalf("no interface holds %s", lab.BridgeIP())
	return nil
}

// attacker sends from the bridge (the LAN) to the group, at most 200
// datagrams every 20ms: a rate that does not overrun the nodes' receive
// buffers, so that every packet is seen.
type attacker struct {
	conn *net.UDPConn
	pace *time.Ticker
	sent int
}

func newAttacker(t *testing.T, lab *netlab.Lab) *attacker {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.BridgeIP(), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, _ := c.SyscallConn()
	var serr error
	rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInet4Addr(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, lab.BridgeIP().As4())
	})
	if serr != nil {
		t.Fatal(serr)
	}
	a := &attacker{conn: c, pace: time.NewTicker(20 * time.Millisecond)}
	t.Cleanup(a.pace.Stop)
	return a
}

func (a *attacker) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := a.conn.WriteToUDPAddrPort(b, defaultGroup); err != nil {
		t.Fatalf("attacker send %d bytes: %v", len(b), err)
	}
	a.sent++
	if a.sent%200 == 0 {
		<-a.pace.C
	}
}

// fence sends a malformed datagram after the others and waits until every
// node counted it: the nodes read a sender's datagrams in order, so every
// datagram sent before it has been read and judged.
func (a *attacker) fence(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	before := make([]float64, len(nodes))
	for i, n := range nodes {
		before[i] = rejections(t, n)["malformed"]
	}
	a.send(t, []byte("HN"))
	for i, n := range nodes {
		eventually(t, 20*time.Second, n.name+" read the attacker's datagrams", func() (bool, string) {
			got := rejections(t, n)["malformed"]
			return got > before[i], fmt.Sprintf("malformed %g, was %g", got, before[i])
		})
	}
}

// capture records the group's datagrams seen on the bridge, with the
// sender's address.
type captured struct {
	b    []byte
	from netip.Addr
}

// typ is the packet's hanode type (0 when it has no hanode header).
func (c captured) typ() packet.Type {
	if len(c.b) < 4 || c.b[0] != 'H' || c.b[1] != 'N' {
		return 0
	}
	return packet.Type(c.b[3])
}

// capture records the group's datagrams seen on the bridge, with the
// sender's address, from before during runs until enough holds.
func capture(t *testing.T, ifi *net.Interface, during func(), enough func([]captured) (bool, string)) []captured {
	t.Helper()
	c, err := net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(defaultGroup))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out []captured
	done := make(chan struct{})
	defer func() {
		c.Close()
		<-done
	}()
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			mu.Lock()
			out = append(out, captured{append([]byte(nil), buf[:n]...), from.Addr().Unmap()})
			mu.Unlock()
		}
	}()
	during()
	eventually(t, 30*time.Second, "the group's traffic captured", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return enough(out)
	})
	mu.Lock()
	defer mu.Unlock()
	return append([]captured(nil), out...)
}

// fromEach is a condition of capture: at least total packets, and from
// every node at least the given number of packets of each type.
func fromEach(nodes []*e2eNode, total int, want map[packet.Type]int) func([]captured) (bool, string) {
	return func(caps []captured) (bool, string) {
		got := map[netip.Addr]map[packet.Type]int{}
		for _, c := range caps {
			if got[c.from] == nil {
				got[c.from] = map[packet.Type]int{}
			}
			got[c.from][c.typ()]++
		}
		ok := len(caps) >= total
		var b strings.Builder
		fmt.Fprintf(&b, "%d packets;", len(caps))
		for _, n := range nodes {
			fmt.Fprintf(&b, " %s %v", n.name, got[n.host.IP()])
			for typ, k := range want {
				ok = ok && got[n.host.IP()][typ] >= k
			}
		}
		return ok, b.String()
	}
}

// TestSecurityInjection: a 3-node cluster under write load while an
// attacker on its LAN sends random datagrams, bit-flipped and replayed
// captures, packets of another key and of another cluster, oversize
// datagrams and unauthenticated compression/fragment bombs. The cluster
// keeps serving, no session changes, memory stays bounded, and every
// kind of rejection is counted in /metrics.
func TestSecurityInjection(t *testing.T) {
	lab := netlab.New(t, "secinject")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	nodes := startCluster(t, lab, bin, key)
	ifi := bridgeInterface(t, lab)

	// Victim sessions: written before the attack, only read after.
	victims := make([]*client, 12)
	want := make([]int, len(victims))
	for i := range victims {
		victims[i] = &client{}
		for range i%3 + 1 {
			want[i] = victims[i].counter(t, http.MethodPost, nodes[i%3].app).N
		}
		victims[i].do(t, http.MethodPut, nodes[i%3].app+"/attrs/secret", "v"+strconv.Itoa(i))
	}
	ld := startLoad(nodes, 20*time.Millisecond)
	// Capture the cluster's traffic (it is all on the bridge) while the
	// load runs, until it holds data packets of every node.
	caps := capture(t, ifi, func() {}, fromEach(nodes, 50, map[packet.Type]int{packet.TypeData: 5}))
	if len(caps) < 50 {
		t.Fatalf("captured only %d packets", len(caps))
	}
	senders := map[netip.Addr]uuid.UUID{}
	for _, c := range caps {
		if len(c.b) >= 32 {
			senders[c.from] = uuid.UUID(c.b[16:32])
		}
	}
	for _, n := range nodes {
		eventually(t, 20*time.Second, n.name+" holds the victims", func() (bool, string) {
			c, err := sessionCount(n)
			return err == nil && c >= len(victims)+len(nodes), fmt.Sprint(c, err)
		})
	}
	before := map[string]map[string]bool{}
	rejBefore := map[string]map[string]float64{}
	rss := map[string]int{}
	for _, n := range nodes {
		before[n.name] = sessionIDs(t, n)
		rejBefore[n.name] = rejections(t, n)
		rss[n.name] = rssKiB(t, n)
	}

	// own[node] counts attack datagrams carrying that node's own sender
	// id: a node drops those silently (its own loopback), uncounted.
	own := map[uuid.UUID]int{}
	atk := newAttacker(t, lab)
	sendCounted := func(b []byte) {
		if len(b) >= 32 {
			own[uuid.UUID(b[16:32])]++
		}
		atk.send(t, b)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// 1. Random datagrams.
	for range 3000 {
		b := make([]byte, 1+rng.IntN(1400))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		sendCounted(b)
	}
	// 2. Captured valid packets with one bit flipped.
	for i := range 3000 {
		c := caps[i%len(caps)].b
		b := append([]byte(nil), c...)
		p := rng.IntN(len(b))
		for p >= 16 && p < 32 { // keep the sender id: flips there are equivalent to random senders
			p = rng.IntN(len(b))
		}
		b[p] ^= 1 << rng.IntN(8)
		sendCounted(b)
	}
	// 3. Captured packets replayed verbatim (long after their delivery).
	for i := range 3000 {
		sendCounted(caps[i%len(caps)].b)
	}
	// 4. Oversize datagrams (IP-fragmented on the wire, reassembled by
	// the kernel), with a plausible header.
	for i := range 200 {
		b := append([]byte(nil), caps[i%len(caps)].b...)
		size := 1401 + rng.IntN(100)
		if i%2 == 0 {
			size = 9000
		}
		for len(b) < size {
			b = append(b, byte(rng.Uint32()))
		}
		sendCounted(b)
	}
	// 5. Unauthenticated bombs: a compressed message that would inflate
	// to gigabytes, and a first fragment announcing 65535 fragments;
	// both are refused before decompression or reassembly (no tag).
	zstdBomb := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xa4, 0xff, 0xff, 0xff, 0x7f}, make([]byte, 1200)...)
	for i := range 200 {
		h := packet.Header{Version: packet.Version, Type: packet.TypeData, KeyID: 1,
			Cluster: multicast.ClusterID("hanode"), Sender: uuid.New(), Seq: uint64(1 + i), HighSeq: uint64(1 + i), FragCount: 1,
			Timestamp: time.Now().UnixMilli()}
		body := zstdBomb
		if i%2 == 0 {
			h.Flags = packet.FlagCompressed
		} else {
			h.Flags, h.FragCount = packet.FlagFragment, 65535
			body = make([]byte, 1200)
		}
		h.Length = uint16(len(body) + packet.TagLen)
		b := h.Append(nil)
		b = append(b, body...)
		b = append(b, make([]byte, packet.TagLen)...)
		sendCounted(b)
	}
	// 6. Members with another key (same id, other bytes; another id) and
	// of another cluster (right key): real transports on the LAN.
	right, err := multicast.LoadKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	sameID, _ := multicast.ParseKeyring([]byte(mustKeyLine(t, 1)))
	otherID, _ := multicast.ParseKeyring([]byte(mustKeyLine(t, 7)))
	intruders := []struct {
		cluster string
		kr      *multicast.Keyring
		reason  string // what the nodes count their packets as
	}{{"hanode", sameID, "auth"}, {"hanode", otherID, "unknown_key"}, {"other-cluster", right, "cluster"}}
	for _, in := range intruders {
		before := map[string]float64{}
		for _, n := range nodes {
			before[n.name] = rejections(t, n)[in.reason]
		}
		cfg := multicast.DefaultConfig()
		cfg.ClusterName, cfg.Keyring, cfg.Interface = in.cluster, in.kr, lab.BridgeIP().String()
		tr, err := multicast.Listen(cfg)
		if err != nil {
			t.Fatalf("intruder transport: %v", err)
		}
		for i := range 50 {
			if _, err := tr.Broadcast(context.Background(), []byte(strings.Repeat("evil", 10+i*40)), multicast.SendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// Every node refused the intruder's 50 messages (one datagram
		// each at least) before it leaves.
		for _, n := range nodes {
			eventually(t, 20*time.Second, fmt.Sprintf("%s counts the intruder's packets as %q", n.name, in.reason), func() (bool, string) {
				got := rejections(t, n)[in.reason] - before[n.name]
				return got >= 50, fmt.Sprint(got)
			})
		}
		tr.Close()
	}
	// 7. The state-transfer TCP port: garbage, a stream under an unknown
	// key id, a stream sealed with another key, a chunk announcing 2 GiB,
	// a captured-style stream with a flipped bit. All refused (logged).
	streamAttacks := 0
	for _, n := range nodes {
		addr := transferAddr(t, n)
		var attacks [][]byte
		attacks = append(attacks, []byte(strings.Repeat("GET / HTTP/1.0\r\n\r\n", 100)))
		attacks = append(attacks, append([]byte("HNS1\x07"), make([]byte, 64)...))
		for _, kr := range []*multicast.Keyring{sameID, right} {
			var buf strings.Builder
			w, _ := multicast.NewSealedWriter(kr, &buf, "hanode state-transfer request v2")
			w.Write([]byte{1})
			w.Close()
			b := []byte(buf.String())
			if kr == right {
				b[len(b)-1] ^= 1 // right key, tampered
			}
			attacks = append(attacks, b)
		}
		huge := append([]byte("HNS1\x01"), make([]byte, 32)...)
		attacks = append(attacks, append(huge, 0x7f, 0xff, 0xff, 0xff))
		for _, a := range attacks {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("%s: dial state transfer %s: %v", n.name, addr, err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(a)
			c.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(c)
			c.Close()
			// The server speaks first (its nonce, 36 bytes) and sends
			// nothing more to a request it cannot authenticate.
			if len(got) != 36 || string(got[:4]) != "HNX2" {
				t.Errorf("%s: state transfer answered %d bytes to a forged request", n.name, len(got))
			}
			streamAttacks++
		}
	}
	for _, n := range nodes {
		want := streamAttacks / len(nodes)
		eventually(t, 10*time.Second, fmt.Sprintf("%s logs %d state-transfer refusals", n.name, want), func() (bool, string) {
			got := strings.Count(n.proc.Logs(), "state-transfer request failed")
			return got >= want, fmt.Sprintf("%d logged", got)
		})
		t.Logf("%s: %d state-transfer requests refused", n.name, strings.Count(n.proc.Logs(), "state-transfer request failed"))
	}
	ld.finish(t, nodes)
	if ld.writes.Load() < 100 {
		t.Errorf("only %d writes during the attack", ld.writes.Load())
	}

	// The cluster serves, and no session changed.
	for _, n := range nodes {
		if n.proc.Exited() {
			t.Fatalf("%s died: %s", n.name, n.proc.Logs())
		}
		after := sessionIDs(t, n)
		if len(after) != len(before[n.name]) {
			t.Errorf("%s: %d sessions after the attack, %d before", n.name, len(after), len(before[n.name]))
		}
		for id := range before[n.name] {
			if !after[id] {
				t.Errorf("%s: session lost", n.name)
			}
		}
		for i, v := range victims {
			if cj := v.counter(t, http.MethodGet, n.app); cj.N != want[i] {
				t.Errorf("%s: victim %d counter %d, want %d", n.name, i, cj.N, want[i])
			}
			if code, body, _ := v.do(t, http.MethodGet, n.app+"/attrs/secret", ""); code != 200 || body != "v"+strconv.Itoa(i) {
				t.Errorf("%s: victim %d attr %d %q", n.name, i, code, body)
			}
		}
	}
	// Bounded memory, and every rejection counted by reason.
	for _, n := range nodes {
		grow := rssKiB(t, n) - rss[n.name]
		t.Logf("%s: RSS %d KiB -> %+d KiB", n.name, rss[n.name], grow)
		if grow > 64<<10 {
			t.Errorf("%s: RSS grew by %d KiB during the attack", n.name, grow)
		}
		after := rejections(t, n)
		delta := map[string]float64{}
		var sum float64
		for r, v := range after {
			if d := v - rejBefore[n.name][r]; d > 0 {
				delta[r] = d
				sum += d
			}
		}
		t.Logf("%s: rejected during the attack: %v (total %g)", n.name, delta, sum)
		for _, r := range []string{"malformed", "auth", "unknown_key", "cluster", "oversize"} {
			if delta[r] == 0 {
				t.Errorf("%s: no %q rejection counted: %v", n.name, r, delta)
			}
		}
		if delta["duplicate"]+delta["replay"] == 0 {
			t.Errorf("%s: replays not counted: %v", n.name, delta)
		}
		var self uuid.UUID
		for ip, id := range senders {
			if ip == n.host.IP() {
				self = id
			}
		}
		// Every hostile datagram the node received is counted (legitimate
		// repairs may add duplicates). 1% slack: under a loaded CI machine
		// the kernel may drop a few datagrams before hanode sees them.
		expect := float64(atk.sent - own[self])
		t.Logf("%s: %g hostile datagrams addressed to it", n.name, expect)
		if sum < expect*0.99 {
			t.Errorf("%s: %g rejections counted for %g hostile datagrams it should have seen", n.name, sum, expect)
		}
	}
}

func mustKeyLine(t *testing.T, id uint8) string {
	t.Helper()
	l, err := multicast.GenerateKeyLine(id, true)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// keyLineOf returns the line of key id in a key file, without "primary".
func keyLineOf(t *testing.T, text string, id int) string {
	t.Helper()
	for _, ln := range strings.Split(text, "\n") {
		f := strings.Fields(ln)
		if len(f) >= 3 && f[0] == "key" && f[1] == strconv.Itoa(id) {
			return "key " + f[1] + " " + f[2]
		}
	}
	t.Fatalf("no key %d in %q", id, text)
	return ""
}

// TestSecurityKeyRotation rotates the cluster key of a running 3-node
// cluster under write load, with SIGHUP, step by step: install key 2
// everywhere, promote it everywhere, retire key 1. No write and no
// session is lost and no packet is rejected for its key; a bad key file
// is refused and the old keys stay; a node still on key 1 is locked out.
func TestSecurityKeyRotation(t *testing.T) {
	lab := netlab.New(t, "secrotate")
	bin := hanodeBinary(t)
	orig := keyFile(t, bin)
	text, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runOut(bin, "keygen", "--id", "2", "--no-primary")
	if err != nil || !strings.HasPrefix(out, "key 2 ") || strings.Contains(out, "primary") {
		t.Fatalf("keygen --id 2 --no-primary: %q %v", out, err)
	}
	k1, k2 := keyLineOf(t, string(text), 1), strings.TrimSpace(out)
	dir := t.TempDir()
	var files []string
	for i := 1; i <= 3; i++ {
		p := filepath.Join(dir, fmt.Sprintf("n%d.key", i))
		if err := os.WriteFile(p, text, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	nodes := startCluster(t, lab, bin, files...)
	rejBefore := map[string]map[string]float64{}
	for _, n := range nodes {
		rejBefore[n.name] = rejections(t, n)
	}
	ld := startLoad(nodes, 10*time.Millisecond)
	ld.waitWrites(t, 50)

	reloads := func(n *e2eNode, what string) int { return strings.Count(n.proc.Logs(), what) }
	step := func(name, content string) {
		t.Logf("rotation step: %s", name)
		for i, n := range nodes {
			before := reloads(n, "key reload: new keys in use")
			if err := os.WriteFile(files[i], []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := n.proc.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, n.name+" reloads its keys ("+name+")", func() (bool, string) {
				return reloads(n, "key reload: new keys in use") > before, ""
			})
			ld.waitRounds(t, 5) // every user writes with this node on its new keys
		}
		waitReplicated(t, nodes) // everything sent under the old primary arrived
	}
	// A bad file (loose permissions) is refused; the old keys stay.
	if err := os.Chmod(files[0], 0o644); err != nil {
		t.Fatal(err)
	}
	nodes[0].proc.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "n1 refuses a key file with mode 644", func() (bool, string) {
		return reloads(nodes[0], "key reload refused") > 0, ""
	})
	os.Chmod(files[0], 0o600)
	if !strings.Contains(nodes[0].proc.Logs(), "chmod 600") {
		t.Error("the refusal does not say how to fix it")
	}

	step("install key 2", k1+" primary\n"+k2+"\n")
	step("promote key 2", k1+"\n"+k2+" primary\n")
	step("retire key 1", k2+" primary\n")
	ld.waitWrites(t, 50)
	ld.finish(t, nodes)
	if ld.writes.Load() < 200 {
		t.Errorf("only %d writes during the rotation", ld.writes.Load())
	}
	for _, n := range nodes {
		after := rejections(t, n)
		for _, r := range []string{"unknown_key", "auth"} {
			if d := after[r] - rejBefore[n.name][r]; d != 0 {
				t.Errorf("%s: %g %q rejections during a correct rotation", n.name, d, r)
			}
		}
		if c, err := sessionCount(n); err != nil || c < len(nodes) {
			t.Errorf("%s: %d sessions %v", n.name, c, err)
		}
	}
	// A node still holding only key 1 is not admitted any more.
	stale := startHA(t, bin, lab.AddHost("stale"), "stale", orig)
	waitReady(t, 60*time.Second, stale)
	eventually(t, 20*time.Second, "n1 rejects the stale node's key", func() (bool, string) {
		r := rejections(t, nodes[0])
		return r["unknown_key"] > rejBefore["n1"]["unknown_key"], fmt.Sprint(r)
	})
	_, body, _ := nodes[0].adminGet("/members")
	if strings.Contains(string(body), `"stale"`) {
		t.Errorf("n1 admitted a node with the retired key: %s", body)
	}
}

func runOut(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).Output()
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		return string(out), fmt.Errorf("%v: %s", err, ee.Stderr)
	}
	return string(out), err
}

// TestSecuritySessionLimits: a session that would exceed the session size
// limit is refused (the request fails, the session keeps its last good
// state) with a warning in the log that says why and names the session by
// its hash only.
func TestSecuritySessionLimits(t *testing.T) {
	lab := netlab.New(t, "seclimits")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	n := startHA(t, bin, lab.AddHost("n1"), "n1", key)
	waitReady(t, 60*time.Second, n)
	c := &client{}
	c.counter(t, http.MethodPost, n.app)
	id := cj0(c.token)
	val := strings.Repeat("x", 60<<10)
	var code int
	var body string
	for i := range 40 {
		code, body, _ = c.do(t, http.MethodPut, n.app+"/attrs/k"+strconv.Itoa(i), val)
		if code/100 != 2 {
			break
		}
	}
	// The application gets replicator.ErrTooLarge (httpsession's
	// ErrorFunc, OnCommit, LastCommit, Flush); the demo app answers it
	// like httpsession.ErrorStatus: 413.
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over-limit session: %d %q, want 413", code, body)
	}
	t.Logf("answer at the limit: %d %s", code, strings.TrimSpace(body))
	// One oversized attribute (above the demo's 64 KiB body cap).
	if code, body, _ := c.do(t, http.MethodPut, n.app+"/attrs/big", strings.Repeat("y", 300<<10)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized attribute: %d %q", code, body)
	}
	// The node keeps serving the session, and the log explains the refusal.
	if cj := c.counter(t, http.MethodGet, n.app); cj.Session != replicator.ShortHash(id) || cj.N != 1 {
		t.Errorf("after refusal: %+v", cj)
	}
	eventually(t, 5*time.Second, "a log line about the refused session", func() (bool, string) {
		return strings.Contains(n.proc.Logs(), "session too large: session would be"), ""
	})
	if strings.Contains(n.proc.Logs(), cj0(id)) {
		t.Error("the log shows a raw session ID")
	}
	// A well-formed ID the cluster never issued is not adopted (no
	// session fixation): the client gets a fresh one.
	forged := strings.Repeat("A", 32)
	fc := &client{token: forged + ".n1"}
	if cj := fc.counter(t, http.MethodPost, n.app); cj.Session == forged || cj0(fc.token) == forged || cj.N != 1 {
		t.Errorf("forged ID adopted: %+v token %q", cj, fc.token)
	}
	if sessionIDs(t, n)[forged] {
		t.Error("the store holds the forged ID")
	}
}

// transferAddr finds a node's state-transfer listener: its listening TCP
// socket other than the app and admin ports (from /proc/PID/net/tcp,
// which shows the node's network namespace).
func transferAddr(t *testing.T, n *e2eNode) string {
	t.Helper()
	// The node advertises its state-transfer address to its peers (the
	// "addr" of itself in /members); it also listens on other ports (app,
	// admin, liveness).
	_, body, err := n.adminGet("/members")
	var ms []memberJSON
	if err != nil || json.Unmarshal(body, &ms) != nil {
		t.Fatalf("%s: /members: %v %s", n.name, err, body)
	}
	for _, m := range ms {
		if m.Self && m.Addr != "" {
			return m.Addr
		}
	}
	t.Fatalf("%s: no state-transfer address in /members: %s", n.name, body)
	return ""
}
