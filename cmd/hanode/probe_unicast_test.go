package main

import (
	"strings"
	"testing"

	"github.com/hanode/hanode/scripts/netlab"
)

// TestProbeUnicast: with --peers, `hanode probe` joins no group and tests
// unicast between the hosts both ways, with multicast dropped everywhere.
func TestProbeUnicast(t *testing.T) {
	bin := hanodeBinary(t)
	lab := netlab.New(t, "probe-unicast")
	a, b := lab.AddHost("a"), lab.AddHost("b")
	noMulticast(t, a)
	noMulticast(t, b)
	peers := a.IP().String() + "," + b.IP().String() // each lists itself too
	runs := runProbes(t, bin, []*netlab.Host{a, b}, "--peers", peers)
	for i, name := range []string{"b", "a"} {
		r := runs[i]
		p := onlyPeer(t, r, name)
		if r.code != 0 || !r.report.OK || p.Verdict != verdictOK || r.report.Transport != "unicast" {
			t.Errorf("%s: exit %d, ok %v, verdict %s, transport %q", r.report.Name, r.code, r.report.OK, p.Verdict, r.report.Transport)
		}
		if p.HeardFrom.Expected < 20 || p.HeardFrom.LossPct >= 5 || p.HeardBy.LossPct >= 5 || !p.Unicast.Works || p.Unicast.RTTP50ms <= 0 {
			t.Errorf("%s: heard-from %s, heard-by %s, unicast %+v", r.report.Name, p.HeardFrom, p.HeardBy, p.Unicast)
		}
		if !strings.Contains(r.report.Summary, "unicast works both ways") || strings.Contains(p.Detail, "multicast") {
			t.Errorf("%s: summary %q, detail %q", r.report.Name, r.report.Summary, p.Detail)
		}
		if len(r.report.Hints) != 0 {
			t.Errorf("%s: hints %v", r.report.Name, causes(&r.report))
		}
	}
	for _, h := range []*netlab.Host{a, b} {
		if out, err := h.Run("nft", "list", "chain", "inet", "hanode_nomcast", "out"); err != nil || !strings.Contains(out, "counter packets 0 ") {
			t.Errorf("%s sent multicast: %v\n%s", h.Name(), err, out)
		}
	}
}

// TestProbeUnicastOneWay: b drops all UDP it receives; a hears b but b
// does not hear a, and a's report says so.
func TestProbeUnicastOneWay(t *testing.T) {
	bin := hanodeBinary(t)
	lab := netlab.New(t, "probe-unicast-oneway")
	a, b := lab.AddHost("a"), lab.AddHost("b")
	noMulticast(t, a)
	noMulticast(t, b)
	if err := b.DropUDP(100); err != nil {
		t.Fatal(err)
	}
	runs := runProbes(t, bin, []*netlab.Host{a, b}, "--peers", a.IP().String()+","+b.IP().String())
	ra, rb := runs[0], runs[1]
	pa := onlyPeer(t, ra, "b")
	if ra.code != 1 || pa.Verdict != verdictOneWay || !pa.HeardFrom.works() || !hasHint(ra, "one-way-out") {
		t.Errorf("a: exit %d, verdict %s, heard-from %s, hints %v", ra.code, pa.Verdict, pa.HeardFrom, causes(&ra.report))
	}
	if rb.code != 1 || len(rb.report.Peers) != 0 || !hasHint(rb, "nothing") {
		t.Errorf("b: exit %d, peers %+v, hints %v", rb.code, rb.report.Peers, causes(&rb.report))
	}
}

func TestProbeUnicastUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--peers", "10.0.0.1", "--discovery", "dns:x.example"},
		{"--peers", "10.0.0.1:70000"},
		{"--peers", "::1"},
		{"--discovery", "x.example"},
	} {
		var out, errb strings.Builder
		code := runMain(append([]string{"hanode", "probe", "--interface", "lo"}, args...), &out, &errb)
		if code != 2 {
			t.Errorf("%v: exit %d, %q", args, code, errb.String())
		}
	}
}
