package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/scripts/netlab"
)

// ---- wire ----

func testProbePacket() *probePacket {
	return &probePacket{
		Kind: kindEchoReply, Instance: 0x0102030405060708, Seq: 42, SentAt: 1700000000123456789,
		EchoID: 7, EchoSentAt: 1700000000000000001, Addr: netip.MustParseAddr("10.77.1.10"), PrefixLen: 24, TTL: 1,
		Name: "host-a",
		Heard: []probeHeard{
			{Instance: 9, Received: 29, Expected: 30, Unicast: true},
			{Instance: 10, Received: 0, Expected: 30},
		},
	}
}

func testProbeAuth(id uint8, key byte) *probeAuth {
	k := make([]byte, 32)
	for i := range k {
		k[i] = key
	}
	return &probeAuth{primary: id, keys: map[uint8][]byte{id: deriveProbeKey(k)}}
}

func TestProbeWireRoundTrip(t *testing.T) {
	for _, a := range []*probeAuth{nil, testProbeAuth(3, 1)} {
		p := testProbePacket()
		b, err := encodeProbe(nil, p, a)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > probeMaxSize {
			t.Fatalf("packet %d bytes > max %d", len(b), probeMaxSize)
		}
		got, err := decodeProbe(b, a)
		if err != nil {
			t.Fatalf("auth=%v: %v", a != nil, err)
		}
		got.Auth, got.KeyID = false, 0
		if !probePacketEqual(got, p) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
		}
	}
}

func probePacketEqual(a, b *probePacket) bool {
	if len(a.Heard) != len(b.Heard) {
		return false
	}
	for i := range a.Heard {
		if a.Heard[i] != b.Heard[i] {
			return false
		}
	}
	return a.Kind == b.Kind && a.Instance == b.Instance && a.Seq == b.Seq && a.SentAt == b.SentAt &&
		a.EchoID == b.EchoID && a.EchoSentAt == b.EchoSentAt && a.Addr == b.Addr && a.PrefixLen == b.PrefixLen &&
		a.TTL == b.TTL && a.Name == b.Name
}

func TestProbeWireAuth(t *testing.T) {
	a1, a2 := testProbeAuth(1, 1), testProbeAuth(1, 2)
	signed, _ := encodeProbe(nil, testProbePacket(), a1)
	plain, _ := encodeProbe(nil, testProbePacket(), nil)
	cases := []struct {
		name string
		b    []byte
		a    *probeAuth
		want error
	}{
		{"wrong key", signed, a2, errProbeBadMAC},
		{"unknown key id", signed, testProbeAuth(2, 1), errProbeUnknownKey},
		{"unsigned with key", plain, a1, errProbeUnauthenticated},
		{"signed without key", signed, nil, errProbeNoKey},
	}
	for _, c := range cases {
		if _, err := decodeProbe(c.b, c.a); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	tampered := append([]byte(nil), signed...)
	tampered[17] ^= 1 // seq
	if _, err := decodeProbe(tampered, a1); !errors.Is(err, errProbeBadMAC) {
		t.Errorf("tampered: %v", err)
	}
	// Cluster traffic and garbage are not probes.
	for _, b := range [][]byte{nil, []byte("HNPB"), []byte("hanode cluster packet......................................................")} {
		if _, err := decodeProbe(b, nil); !errors.Is(err, errProbePacket) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

func FuzzDecodeProbe(f *testing.F) {
	b, _ := encodeProbe(nil, testProbePacket(), nil)
	f.Add(b)
	b, _ = encodeProbe(nil, &probePacket{Kind: kindAnnounce, Name: "x"}, nil)
	f.Add(b)
	b, _ = encodeProbe(nil, testProbePacket(), testProbeAuth(1, 1))
	f.Add(b)
	f.Add([]byte("HNPB\x01\x01\x00\x00"))
	a := testProbeAuth(1, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, auth := range []*probeAuth{nil, a} {
			p, err := decodeProbe(b, auth)
			if err != nil {
				continue
			}
			// A valid packet re-encodes to the same bytes.
			var again []byte
			if p.Auth {
				again, err = encodeProbe(nil, p, auth)
			} else {
				again, err = encodeProbe(nil, p, nil)
			}
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("re-encode differs:\n%x\n%x", again, b)
			}
		}
	})
}

// ---- report and diagnosis ----

func TestProbeDirectionAndVerdict(t *testing.T) {
	cases := []struct {
		from, by probeDirection
		want     string
	}{
		{newDirection(true, 30, 30), newDirection(true, 29, 30), verdictOK},
		{newDirection(true, 30, 30), newDirection(true, 0, 30), verdictOneWay},
		{newDirection(true, 0, 30), newDirection(true, 30, 30), verdictOneWay},
		{newDirection(true, 30, 30), newDirection(false, 0, 0), verdictOneWay},
		{newDirection(true, 0, 0), newDirection(false, 0, 0), verdictNone},
		{newDirection(true, 15, 30), newDirection(true, 30, 30), verdictLossy},
	}
	for i, c := range cases {
		if got, _ := peerVerdict(c.from, c.by); got != c.want {
			t.Errorf("case %d: %s/%s: got %s, want %s", i, c.from, c.by, got, c.want)
		}
	}
	if d := newDirection(true, 27, 30); d.LossPct != 10 || d.State != dirOK {
		t.Errorf("27/30: %+v", d)
	}
	if d := newDirection(true, 0, 30); d.LossPct != 100 || d.State != dirNone {
		t.Errorf("0/30: %+v", d)
	}
	if d := newDirection(true, 31, 30); d.Expected != 31 || d.LossPct != 0 {
		t.Errorf("31/30 (a duplicate): %+v", d)
	}
}

func TestProbePercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(s, 50); p != 50*time.Millisecond {
		t.Errorf("p50 %v", p)
	}
	if p := percentile(s, 99); p != 99*time.Millisecond {
		t.Errorf("p99 %v", p)
	}
	if p := percentile(nil, 50); p != 0 {
		t.Errorf("empty %v", p)
	}
}

func baseReport() *probeReport {
	return &probeReport{Name: "a", Interface: "eth0", Address: "10.0.0.1/24", Group: "239.255.42.99:45589", Port: 45589, TTL: 1, DurationS: 3, Sent: 30,
		Checks: []probeCheck{{Name: "interface", Level: "ok"}, {Name: "route", Level: "ok"}, {Name: "joined", Level: "ok"}}}
}

func peer(from, by probeDirection, unicast bool) probePeer {
	p := probePeer{Name: "b", Address: "10.0.0.2", SameSubnet: true, HeardFrom: from, HeardBy: by}
	p.Unicast.EchoSent = 30
	if unicast {
		p.Unicast.EchoReplies, p.Unicast.Works = 30, true
	}
	p.Verdict, p.Detail = peerVerdict(from, by)
	return p
}

func causes(r *probeReport) []string {
	var out []string
	for _, h := range r.Hints {
		out = append(out, h.Cause)
	}
	return out
}

func TestProbeDiagnosis(t *testing.T) {
	ok, none := newDirection(true, 30, 30), newDirection(true, 0, 30)
	cases := []struct {
		name   string
		mod    func(r *probeReport)
		wantOK bool
		want   []string
		not    []string
	}{
		{"all ok", func(r *probeReport) { r.Peers = []probePeer{peer(ok, ok, true)} }, true, nil, []string{"multicast-filtered", "nothing"}},
		{"no peers", func(r *probeReport) {}, false, []string{"nothing"}, nil},
		{"we do not hear, unicast works", func(r *probeReport) { r.Peers = []probePeer{peer(none, ok, true)} }, false, []string{"one-way-in", "multicast-filtered"}, nil},
		{"peer does not hear us, unicast works", func(r *probeReport) { r.Peers = []probePeer{peer(ok, none, true)} }, false, []string{"one-way-out", "multicast-filtered"}, nil},
		{"nothing with a --peer", func(r *probeReport) {
			r.Peers = []probePeer{peer(newDirection(true, 0, 0), newDirection(false, 0, 0), false)}
		}, false, []string{"firewall"}, []string{"multicast-filtered"}},
		{"multicast none both ways, unicast works", func(r *probeReport) { r.Peers = []probePeer{peer(none, none, true)} }, false, []string{"multicast-filtered"}, []string{"firewall"}},
		{"no route", func(r *probeReport) {
			r.Peers = []probePeer{peer(ok, ok, true)}
			r.Checks[1] = probeCheck{Name: "route", Level: "warn", Detail: "no route for 239.255.42.99 (connect: network is unreachable)"}
		}, true, []string{"no-route"}, nil},
		{"route elsewhere", func(r *probeReport) {
			r.Peers = []probePeer{peer(none, ok, true)}
			r.Checks[1] = probeCheck{Name: "route", Level: "warn", Detail: "route for 239.255.42.99 goes out eth1"}
		}, false, []string{"route-other-interface", "one-way-in"}, nil},
		{"ttl 1 across subnets", func(r *probeReport) {
			p := peer(none, none, true)
			p.SameSubnet, p.Address = false, "10.9.0.2"
			r.Peers = []probePeer{p}
		}, false, []string{"ttl-subnet"}, nil},
		{"rcvbuf and auth", func(r *probeReport) {
			r.Peers = []probePeer{peer(ok, ok, true)}
			r.Checks = append(r.Checks, probeCheck{Name: "rcvbuf", Level: "warn", Detail: "SO_RCVBUF 212992"})
			r.Rejected = 5
		}, true, []string{"rcvbuf-clamped", "auth"}, nil},
		{"interface down", func(r *probeReport) {
			r.Checks = []probeCheck{{Name: "interface", Level: "fail", Detail: "interface eth0 is down"}}
			r.Error = "interface eth0 is down"
		}, false, []string{"interface"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := baseReport()
			c.mod(r)
			r.finish()
			if r.OK != c.wantOK {
				t.Errorf("OK = %v, want %v (%s)", r.OK, c.wantOK, r.Summary)
			}
			got := strings.Join(causes(r), ",")
			for _, w := range c.want {
				if !contains(causes(r), w) {
					t.Errorf("hints %s: missing %s", got, w)
				}
			}
			for _, w := range c.not {
				if contains(causes(r), w) {
					t.Errorf("hints %s: unexpected %s", got, w)
				}
			}
			var text bytes.Buffer
			r.writeText(&text)
			if !strings.Contains(text.String(), r.Summary) {
				t.Errorf("text report without summary:\n%s", text.String())
			}
		})
	}
}

func TestProbeUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain([]string{"hanode", "probe"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--interface is required") {
		t.Errorf("no --interface: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := runMain([]string{"hanode", "probe", "--interface", "lo", "--duration", "0s"}, &out, &errb); code != 2 {
		t.Errorf("--duration 0: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := runMain([]string{"hanode", "probe", "--interface", "lo", "--peer", "nope"}, &out, &errb); code != 2 {
		t.Errorf("--peer nope: exit %d, %q", code, errb.String())
	}
}

// ---- end to end: real processes in network namespaces ----

type probeRun struct {
	code   int
	report probeReport
	stdout string
	stderr string
}

// runProbes runs `hanode probe --json` on every host at the same time.
func runProbes(t *testing.T, bin string, hosts []*netlab.Host, extra ...string) []probeRun {
	t.Helper()
	out := make([]probeRun, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		args := append([]string{"probe", "--interface", "eth0", "--duration", "3s", "--json", "--name", h.Name()}, extra...)
		cmd := h.Command(bin, args...)
		cmd.Env = cleanEnv()
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start probe on %s: %v", h.Name(), err)
		}
		wg.Add(1)
		go func(i int, cmd *exec.Cmd) {
			defer wg.Done()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				err = <-done
			}
			r := probeRun{stdout: so.String(), stderr: se.String()}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				r.code = ee.ExitCode()
			} else if err != nil {
				r.code = -1
			}
			out[i] = r
		}(i, cmd)
	}
	wg.Wait()
	for i := range out {
		if err := json.Unmarshal([]byte(out[i].stdout), &out[i].report); err != nil {
			t.Fatalf("%s: exit %d, bad JSON: %v\nstdout:\n%s\nstderr:\n%s", hosts[i].Name(), out[i].code, err, out[i].stdout, out[i].stderr)
		}
		t.Logf("%s: exit %d: %s\n%s", hosts[i].Name(), out[i].code, out[i].report.Summary, out[i].stdout)
	}
	return out
}

func onlyPeer(t *testing.T, r probeRun, name string) probePeer {
	t.Helper()
	if len(r.report.Peers) != 1 || r.report.Peers[0].Name != name {
		t.Fatalf("%s: want exactly peer %s, got %+v", r.report.Name, name, r.report.Peers)
	}
	return r.report.Peers[0]
}

func hasHint(r probeRun, cause string) bool {
	return contains(causes(&r.report), cause)
}

func TestProbeMulticastWorks(t *testing.T) {
	bin := hanodeBinary(t)
	lab := netlab.New(t, "probe-ok")
	a, b := lab.AddHost("a"), lab.AddHost("b")
	runs := runProbes(t, bin, []*netlab.Host{a, b})
	for i, name := range []string{"b", "a"} {
		r := runs[i]
		p := onlyPeer(t, r, name)
		if r.code != 0 || !r.report.OK || p.Verdict != verdictOK {
			t.Errorf("%s: exit %d, ok %v, verdict %s", r.report.Name, r.code, r.report.OK, p.Verdict)
		}
		if p.HeardFrom.LossPct >= 5 || p.HeardBy.LossPct >= 5 || p.HeardFrom.Expected < 20 {
			t.Errorf("%s: heard-from %s, heard-by %s", r.report.Name, p.HeardFrom, p.HeardBy)
		}
		if !p.Unicast.Works || p.Unicast.RTTP50ms <= 0 || p.Unicast.RTTP99ms < p.Unicast.RTTP50ms {
			t.Errorf("%s: unicast %+v", r.report.Name, p.Unicast)
		}
		for _, c := range []string{"multicast-filtered", "one-way-in", "one-way-out", "nothing", "no-route"} {
			if hasHint(r, c) {
				t.Errorf("%s: unexpected hint %s", r.report.Name, c)
			}
		}
	}
}

func TestProbeMulticastFiltered(t *testing.T) {
	bin := hanodeBinary(t)
	lab := netlab.New(t, "probe-filtered")
	a, b := lab.AddHost("a"), lab.AddHost("b")
	// B drops every multicast datagram it receives; unicast passes.
	if err := b.Nft("table inet probe_mcdrop {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tip daddr 224.0.0.0/4 drop\n\t}\n}\n"); err != nil {
		t.Fatal(err)
	}
	runs := runProbes(t, bin, []*netlab.Host{a, b})
	ra, rb := runs[0], runs[1]
	pa, pb := onlyPeer(t, ra, "b"), onlyPeer(t, rb, "a")
	// A hears B, but B does not hear A: one-way, and A knows it from B's reports.
	if ra.code != 1 || pa.Verdict != verdictOneWay || !pa.HeardFrom.works() || pa.HeardBy.State != dirNone {
		t.Errorf("a: exit %d, verdict %s, heard-from %s, heard-by %s", ra.code, pa.Verdict, pa.HeardFrom, pa.HeardBy)
	}
	if !hasHint(ra, "one-way-out") || !hasHint(ra, "multicast-filtered") {
		t.Errorf("a: hints %v", causes(&ra.report))
	}
	// B hears nothing from A over multicast while the unicast echo works.
	if rb.code != 1 || pb.HeardFrom.Received != 0 || pb.HeardFrom.Expected < 10 || !pb.Unicast.Works || pb.Unicast.EchoReplies == 0 {
		t.Errorf("b: exit %d, heard-from %s, unicast %+v", rb.code, pb.HeardFrom, pb.Unicast)
	}
	if !hasHint(rb, "multicast-filtered") {
		t.Errorf("b: hints %v", causes(&rb.report))
	}
	for _, h := range rb.report.Hints {
		if h.Cause == "multicast-filtered" && !strings.Contains(h.Message, "IGMP snooping") {
			t.Errorf("b: hint %q does not name IGMP snooping", h.Message)
		}
	}
}

func TestProbeNoMulticastRoute(t *testing.T) {
	bin := hanodeBinary(t)
	lab := netlab.New(t, "probe-noroute")
	a, b := lab.AddHost("a"), lab.AddHost("b")
	if _, err := b.Run("ip", "route", "del", "224.0.0.0/4"); err != nil {
		t.Fatal(err)
	}
	if out, _ := b.Run("ip", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Fatalf("b has a default route: %s", out)
	}
	runs := runProbes(t, bin, []*netlab.Host{a, b})
	rb := runs[1]
	if !hasHint(rb, "no-route") {
		t.Fatalf("b: hints %v", causes(&rb.report))
	}
	c, _ := rb.report.check("route")
	if c.Level != "warn" || !strings.Contains(c.Detail, "no route") {
		t.Errorf("b: route check %+v", c)
	}
	if hasHint(runs[0], "no-route") {
		t.Errorf("a has a route but reports no-route")
	}
}

func TestProbeNothingWorks(t *testing.T) {
	bin := hanodeBinary(t)
	lab := netlab.New(t, "probe-nothing")
	a, b := lab.AddHost("a"), lab.AddHost("b")
	if err := b.DropUDP(100); err != nil {
		t.Fatal(err)
	}
	runs := runProbes(t, bin, []*netlab.Host{a, b}, "--peer", a.IP().String(), "--peer", b.IP().String())
	rb := runs[1]
	if rb.code != 1 || len(rb.report.Peers) != 0 || !hasHint(rb, "nothing") {
		t.Errorf("b: exit %d, peers %+v, hints %v", rb.code, rb.report.Peers, causes(&rb.report))
	}
	for _, h := range rb.report.Hints {
		if h.Cause == "nothing" && !strings.Contains(h.Message, "nft add rule") {
			t.Errorf("b: hint without the firewall rule: %s", h.Message)
		}
	}
}
