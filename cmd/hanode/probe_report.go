package main

// The report of `hanode probe`: per-peer results, verdicts, local checks
// and the diagnosis. Everything here is pure (no sockets) so that it can
// be unit-tested.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// A direction (multicast from a peer to us, or from us to a peer) is "ok"
// when it lost at most probeLossOK percent of the announces, "lossy" when
// it lost more but some got through, "none" when nothing got through and
// "unknown" when the peer never told us what it receives.
const probeLossOK = 10.0

const (
	dirOK      = "ok"
	dirLossy   = "lossy"
	dirNone    = "none"
	dirUnknown = "unknown"
)

// Verdicts of a peer.
const (
	verdictOK     = "OK"
	verdictOneWay = "one-way"
	verdictLossy  = "lossy"
	verdictNone   = "none"
)

// probeDirection is multicast reception in one direction.
type probeDirection struct {
	Known    bool    `json:"known"`
	Received int     `json:"received"`
	Expected int     `json:"expected"`
	LossPct  float64 `json:"loss_pct"`
	State    string  `json:"state"` // ok, lossy, none, unknown
}

func newDirection(known bool, received, expected int) probeDirection {
	d := probeDirection{Known: known, Received: received, Expected: expected}
	if expected < received {
		d.Expected = received
	}
	switch {
	case !known:
		d.State = dirUnknown
	case d.Expected == 0 || received == 0:
		d.State = dirNone
		if d.Expected > 0 {
			d.LossPct = 100
		}
	default:
		d.LossPct = math.Round(1000*float64(d.Expected-received)/float64(d.Expected)) / 10
		d.State = dirOK
		if d.LossPct > probeLossOK {
			d.State = dirLossy
		}
	}
	return d
}

func (d probeDirection) works() bool { return d.State == dirOK || d.State == dirLossy }

func (d probeDirection) String() string {
	if !d.Known {
		return "unknown"
	}
	return fmt.Sprintf("%d/%d (%.1f%% loss)", d.Received, d.Expected, d.LossPct)
}

// probeUnicast is the unicast echo with a peer.
type probeUnicast struct {
	EchoSent    int     `json:"echo_sent"`
	EchoReplies int     `json:"echo_replies"`
	Received    int     `json:"received"` // unicast probes received from the peer (requests and replies)
	RTTP50ms    float64 `json:"rtt_p50_ms"`
	RTTP99ms    float64 `json:"rtt_p99_ms"`
	Works       bool    `json:"works"`
}

// probePeer is the result for one peer instance.
type probePeer struct {
	Name       string         `json:"name"`
	Instance   string         `json:"instance"`
	Address    string         `json:"address"`
	SameSubnet bool           `json:"same_subnet"`
	HeardFrom  probeDirection `json:"heard_from"` // its multicast, received by us
	HeardBy    probeDirection `json:"heard_by"`   // our multicast, received by it (as it reports)
	Unicast    probeUnicast   `json:"unicast"`
	Verdict    string         `json:"verdict"`
	Detail     string         `json:"detail"`
}

// peerVerdict classifies a peer from both directions.
func peerVerdict(from, by probeDirection) (verdict, detail string) {
	switch {
	case from.State == dirOK && by.State == dirOK:
		return verdictOK, "multicast works both ways"
	case from.works() && by.works():
		return verdictLossy, "multicast works both ways with loss"
	case from.works():
		return verdictOneWay, "we hear the peer, the peer does not hear us"
	case by.works():
		return verdictOneWay, "the peer hears us, we do not hear the peer"
	default:
		return verdictNone, "no multicast either way"
	}
}

// percentile returns the p-th percentile (0..100) of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// probeCheck is one local check.
type probeCheck struct {
	Name   string `json:"name"`
	Level  string `json:"level"` // ok, warn, fail, skip
	Detail string `json:"detail"`
}

// probeHint is one likely cause, with the evidence that points to it.
type probeHint struct {
	Cause    string `json:"cause"`
	Message  string `json:"message"`
	Evidence string `json:"evidence"`
}

// probeReport is the whole result (--json prints it).
type probeReport struct {
	Name          string       `json:"name"`
	Instance      string       `json:"instance"`
	Interface     string       `json:"interface"`
	Address       string       `json:"address"`
	Transport     string       `json:"transport"`         // "multicast", or "unicast" with --peers/--discovery
	Targets       []string     `json:"targets,omitempty"` // unicast: the peers' probe addresses
	Group         string       `json:"group"`
	Port          int          `json:"port"`
	TTL           int          `json:"ttl"`
	Authenticated bool         `json:"authenticated"`
	DurationS     float64      `json:"duration_s"`
	Sent          int          `json:"sent"`
	Rejected      int          `json:"rejected"`
	Peers         []probePeer  `json:"peers"`
	Checks        []probeCheck `json:"checks"`
	Hints         []probeHint  `json:"hints"`
	OK            bool         `json:"ok"`
	Summary       string       `json:"summary"`
	Error         string       `json:"error,omitempty"`
}

// check returns the named local check.
func (r *probeReport) check(name string) (probeCheck, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return probeCheck{}, false
}

func (r *probeReport) addHint(cause, msg, evidence string) {
	r.Hints = append(r.Hints, probeHint{Cause: cause, Message: msg, Evidence: evidence})
}

// finish computes OK, the summary and the diagnosis from the peers and
// the local checks.
func (r *probeReport) finish() {
	sort.Slice(r.Peers, func(i, j int) bool {
		if r.Peers[i].Name != r.Peers[j].Name {
			return r.Peers[i].Name < r.Peers[j].Name
		}
		return r.Peers[i].Instance < r.Peers[j].Instance
	})
	r.OK = len(r.Peers) > 0 && r.Error == ""
	counts := map[string]int{}
	for _, p := range r.Peers {
		counts[p.Verdict]++
		if p.Verdict != verdictOK {
			r.OK = false
		}
	}
	switch {
	case r.Error != "":
		r.Summary = "FAIL: " + r.Error
	case len(r.Peers) == 0:
		r.Summary = "FAIL: no peer heard (run `hanode probe` on the other hosts at the same time)"
	case r.OK:
		r.Summary = fmt.Sprintf("OK: %s works both ways with all %d peer(s)", r.transport(), len(r.Peers))
	default:
		var parts []string
		for _, v := range []string{verdictOK, verdictLossy, verdictOneWay, verdictNone} {
			if counts[v] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
			}
		}
		r.Summary = "FAIL: peers " + strings.Join(parts, ", ")
	}
	if r.transport() == "unicast" {
		for i := range r.Peers {
			r.Peers[i].Detail = strings.ReplaceAll(r.Peers[i].Detail, "multicast", "unicast")
		}
		r.diagnoseUnicast()
		return
	}
	r.diagnose()
}

func (r *probeReport) transport() string {
	if r.Transport == "" {
		return "multicast"
	}
	return r.Transport
}

// diagnoseUnicast is diagnose for the unicast transport: no group, so the
// causes are the peer list, DNS and firewalls.
func (r *probeReport) diagnoseUnicast() {
	r.Hints = nil
	for _, c := range r.Checks {
		if c.Level != "fail" && c.Level != "warn" {
			continue
		}
		switch c.Name {
		case "interface":
			r.addHint("interface", "the interface cannot be used: "+c.Detail, c.Detail)
		case "rcvbuf":
			r.addHint("rcvbuf-clamped", "the socket receive buffer is clamped: bursts of cluster traffic will be dropped; raise it with `sysctl -w net.core.rmem_max=4194304`", c.Detail)
		}
	}
	if r.Rejected > 0 {
		r.addHint("auth", "probe packets failed authentication: the hosts do not use the same --key-file (or one of them has none)",
			fmt.Sprintf("%d probe packet(s) rejected", r.Rejected))
	}
	if r.Error != "" {
		return
	}
	firewallRule := fmt.Sprintf("`nft add rule inet filter input udp dport %d accept` (or `iptables -I INPUT -p udp --dport %d -j ACCEPT`)", r.Port, r.Port)
	if len(r.Peers) == 0 {
		r.addHint("nothing", fmt.Sprintf("no peer answered over unicast: check that `hanode probe` with the same --peers or --discovery runs on the other hosts at the same time, that the peer addresses are right (%s), and that no firewall drops UDP port %d (allow it: %s)",
			strings.Join(r.Targets, ", "), r.Port, firewallRule),
			fmt.Sprintf("no probe packet received in %.1fs (%d rounds sent)", r.DurationS, r.Sent))
		return
	}
	for _, p := range r.Peers {
		ev := fmt.Sprintf("peer %s (%s): unicast heard-from %s, heard-by %s; echo %d/%d replies",
			p.Name, p.Address, p.HeardFrom, p.HeardBy, p.Unicast.EchoReplies, p.Unicast.EchoSent)
		switch p.Verdict {
		case verdictLossy:
			r.addHint("lossy", fmt.Sprintf("unicast with %s loses packets: a congested link or a clamped receive buffer", p.Name), ev)
		case verdictOneWay:
			if p.HeardFrom.works() {
				r.addHint("one-way-out", fmt.Sprintf("one-way: we hear %s but it does not hear us: check %s's firewall (input, UDP port %d), and that this host is reachable at %s from it", p.Name, p.Name, r.Port, r.Address), ev)
			} else {
				r.addHint("one-way-in", fmt.Sprintf("one-way: %s hears us but we do not hear it: check this host's firewall (input, UDP port %d) and that %s lists or resolves this host's address", p.Name, r.Port, p.Name), ev)
			}
		case verdictNone:
			r.addHint("firewall", fmt.Sprintf("nothing works with %s: a firewall drops UDP port %d; allow it on both hosts: %s", p.Name, r.Port, firewallRule), ev)
		}
	}
}

// diagnose turns the local checks and the peers' results into hints.
func (r *probeReport) diagnose() {
	r.Hints = nil
	// Local checks first: they are facts about this host.
	for _, c := range r.Checks {
		if c.Level != "fail" && c.Level != "warn" {
			continue
		}
		switch c.Name {
		case "interface":
			r.addHint("interface", "the interface cannot carry multicast: "+c.Detail, c.Detail)
		case "route":
			if strings.Contains(c.Detail, "no route") {
				r.addHint("no-route", "no route for the group (224.0.0.0/4): add one on the cluster interface, e.g. `ip route add 224.0.0.0/4 dev "+r.Interface+"`; "+
					"hanode and the probe pin the interface, but other tools and a changed configuration will not send multicast", c.Detail)
			} else {
				r.addHint("route-other-interface", "the multicast route goes out another interface: add `ip route add 224.0.0.0/4 dev "+r.Interface+"` (or fix the default route)", c.Detail)
			}
		case "joined":
			r.addHint("not-joined", "the kernel does not list the group as joined on the interface: another process or a restrictive kernel setting (igmp_max_memberships) may prevent the join", c.Detail)
		case "rcvbuf":
			r.addHint("rcvbuf-clamped", "the socket receive buffer is clamped: bursts of cluster traffic will be dropped; raise it with `sysctl -w net.core.rmem_max=4194304`", c.Detail)
		}
	}
	if r.Rejected > 0 {
		r.addHint("auth", "probe packets failed authentication: the hosts do not use the same --key-file (or one of them has none)",
			fmt.Sprintf("%d probe packet(s) rejected", r.Rejected))
	}
	firewallRule := fmt.Sprintf("`nft add rule inet filter input udp dport %d accept` (or `iptables -I INPUT -p udp --dport %d -j ACCEPT`)", r.Port, r.Port)
	if r.Error != "" {
		return // the probe could not run: the error says why
	}
	if len(r.Peers) == 0 {
		r.addHint("nothing", "nothing heard, neither multicast nor unicast: a firewall drops UDP port "+fmt.Sprint(r.Port)+
			" (allow it on every host: "+firewallRule+"), or no other `hanode probe` runs on the same group and port at the same time, or the hosts are not on the same LAN",
			fmt.Sprintf("no probe packet received in %.1fs (%d sent)", r.DurationS, r.Sent))
		return
	}
	for _, p := range r.Peers {
		ev := fmt.Sprintf("peer %s (%s): multicast heard-from %s, heard-by %s; unicast echo %d/%d replies",
			p.Name, p.Address, p.HeardFrom, p.HeardBy, p.Unicast.EchoReplies, p.Unicast.EchoSent)
		if !p.SameSubnet && r.TTL <= 1 {
			r.addHint("ttl-subnet", fmt.Sprintf("peer %s is on another subnet (%s, ours %s) and the TTL is %d: multicast does not cross the router; put the hosts on one LAN or raise --ttl and enable multicast routing", p.Name, p.Address, r.Address, r.TTL), ev)
		}
		switch p.Verdict {
		case verdictOK:
			continue
		case verdictLossy:
			r.addHint("lossy", fmt.Sprintf("multicast with %s loses packets: a congested link, a clamped receive buffer, or a rate-limiting switch", p.Name), ev)
		case verdictOneWay:
			if p.HeardFrom.works() {
				r.addHint("one-way-out", fmt.Sprintf("one-way: we hear %s but %s does not hear our multicast: check %s's firewall (input, UDP to %s port %d) and its multicast route, or IGMP snooping on its switch port", p.Name, p.Name, p.Name, groupHost(r.Group), r.Port), ev)
			} else {
				r.addHint("one-way-in", fmt.Sprintf("one-way: %s hears us but we do not hear its multicast: check this host's firewall (input, UDP to %s port %d), %s's multicast route (it must go out its cluster interface), or IGMP snooping on our switch port", p.Name, groupHost(r.Group), r.Port, p.Name), ev)
			}
		case verdictNone:
			if !p.Unicast.Works {
				r.addHint("firewall", fmt.Sprintf("nothing works with %s, neither multicast nor unicast: a firewall drops UDP port %d; allow it on both hosts: %s", p.Name, r.Port, firewallRule), ev)
			}
		}
		if p.Verdict != verdictLossy && (!p.HeardFrom.works() || !p.HeardBy.works()) && p.Unicast.Works {
			r.addHint("multicast-filtered", "multicast is filtered between the hosts: IGMP snooping without a querier, or a firewall dropping UDP to the group (unicast echo works, multicast does not)", ev)
		}
	}
}

func groupHost(group string) string {
	if i := strings.LastIndexByte(group, ':'); i >= 0 {
		return group[:i]
	}
	return group
}

// writeText prints the report for an operator.
func (r *probeReport) writeText(w io.Writer) {
	if r.transport() == "unicast" {
		fmt.Fprintf(w, "hanode probe %s (instance %s) on %s %s, unicast to %s, %.1fs, %d announce rounds sent",
			r.Name, r.Instance, r.Interface, r.Address, strings.Join(r.Targets, ", "), r.DurationS, r.Sent)
	} else {
		fmt.Fprintf(w, "hanode probe %s (instance %s) on %s %s, group %s port %d, ttl %d, %.1fs, %d announces sent",
			r.Name, r.Instance, r.Interface, r.Address, groupHost(r.Group), r.Port, r.TTL, r.DurationS, r.Sent)
	}
	if r.Authenticated {
		fmt.Fprint(w, ", authenticated")
	}
	fmt.Fprintln(w)
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
	fmt.Fprintln(w)
	if len(r.Peers) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tADDRESS\tHEARD-FROM\tHEARD-BY\tUNICAST ECHO\tRTT p50/p99\tVERDICT")
		for _, p := range r.Peers {
			rtt := "-"
			if p.Unicast.EchoReplies > 0 {
				rtt = fmt.Sprintf("%.2fms/%.2fms", p.Unicast.RTTP50ms, p.Unicast.RTTP99ms)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", p.Name, p.Address, p.HeardFrom, p.HeardBy,
				p.Unicast.EchoReplies, p.Unicast.EchoSent, rtt, p.Verdict)
		}
		tw.Flush()
		fmt.Fprintln(w)
		for _, p := range r.Peers {
			fmt.Fprintf(w, "verdict %s: %s (%s)\n", p.Name, p.Verdict, p.Detail)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "local checks:")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %-4s  %-9s %s\n", c.Level, c.Name, c.Detail)
	}
	if len(r.Hints) > 0 {
		fmt.Fprintln(w, "\ndiagnosis:")
		for _, h := range r.Hints {
			fmt.Fprintf(w, "  - [%s] %s\n      evidence: %s\n", h.Cause, h.Message, h.Evidence)
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.Summary)
}

func (r *probeReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
