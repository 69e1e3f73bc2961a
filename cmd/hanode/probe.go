package main

// `hanode probe`: tells whether multicast works between LAN hosts, in
// both directions, with loss and latency, and names the likely cause when
// it does not. Run it on two or more hosts at the same time.
//
// Each instance joins the group on the explicit interface, multicasts an
// announce every 100 ms (sequence number, name, random instance id, send
// time and what it hears from every other instance), and sends a unicast
// echo request to every instance it knows of (learned from any packet, or
// given with --peer), which answers with an echo reply. Every packet
// carries the sender's reports, so each side learns what the others
// receive from it even when multicast works only one way.
//
// Probe packets use their own port (the group's port + 1 unless --port)
// and their own magic, so they never reach a running hanode node and a
// node's packets are never taken for probes (probe_wire.go).
//
// With --peers or --discovery (the node's unicast transport) the probe
// joins no group: it sends its announces to every peer over unicast, so
// heard-from and heard-by measure unicast in each direction, and the
// verdicts and hints speak of unicast.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/urfave/cli/v2"
)

const (
	probeInterval  = 100 * time.Millisecond
	probeRecvAsk   = 4 << 20 // the receive buffer hanode asks for
	probeMaxPeers  = 256
	probeRTTKeep   = 10000
	probeDefaultDu = 10 * time.Second
)

// errProbeFailed makes `hanode probe` exit 1 once the report is printed.
var errProbeFailed = errors.New("probe: multicast does not work both ways with every peer (see the report)")

type probeOptions struct {
	Interface string
	Group     netip.AddrPort // group address and the probe's port
	TTL       int
	Duration  time.Duration
	Name      string
	Auth      *probeAuth
	Peers     []netip.AddrPort
	Interval  time.Duration
	Loopback  bool // hear probes of this host (tests on one host)
	Unicast   bool // --peers or --discovery: announces go to the peers, no group
}

func probeCommand(stdout, stderr io.Writer) *cli.Command {
	flags := append([]cli.Flag{configFlag()}, settingFlags("group", "interface", "ttl", "key-file", "peers", "discovery")...)
	flags = append(flags,
		&cli.IntFlag{Name: "port", Usage: "UDP port of the probe packets (default: the group's port + 1, so a running node is not disturbed)"},
		&cli.DurationFlag{Name: "duration", Value: probeDefaultDu, Usage: "how long to probe (Ctrl-C ends earlier and prints the report)"},
		&cli.StringFlag{Name: "name", Usage: "this host's name in the reports (default: the hostname)"},
		&cli.StringSliceFlag{Name: "peer", Usage: "IP of another probing host to echo over unicast even when no multicast arrives (repeatable)"},
		&cli.BoolFlag{Name: "json", Usage: "print a machine-readable report"},
	)
	return &cli.Command{
		Name:  "probe",
		Usage: "diagnose multicast (or, with --peers/--discovery, unicast) between hosts: run it on two or more hosts at the same time",
		Description: "Joins the group on --interface, multicasts a probe every 100ms and answers unicast echoes, then prints per peer\n" +
			"what it heard (heard-from), what the peer heard from it (heard-by), the unicast RTT and a verdict (OK, one-way, lossy, none),\n" +
			"with the likely cause when multicast fails. With --peers or --discovery (the unicast transport) it joins no group and\n" +
			"sends the probes to the peers over unicast instead, on the group's port + 1 of each peer.\n" +
			"Exit 0 when every peer is OK both ways, 1 otherwise, 2 on usage errors.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("%w: unexpected argument %q (probe takes only flags)", errUsage, c.Args().First())
			}
			opts, err := probeOptionsFromCLI(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			rep := runProbe(ctx, opts)
			if c.Bool("json") {
				if err := rep.writeJSON(stdout); err != nil {
					return err
				}
			} else {
				rep.writeText(stdout)
			}
			if !rep.OK {
				return errProbeFailed
			}
			return nil
		},
	}
}

func probeOptionsFromCLI(c *cli.Context) (probeOptions, error) {
	cfg, err := configFromCLI(c)
	if err != nil {
		return probeOptions{}, err
	}
	o := probeOptions{Interface: cfg.Interface, TTL: cfg.TTL, Duration: c.Duration("duration"), Name: c.String("name"), Interval: probeInterval}
	if o.Interface == "" {
		return o, fmt.Errorf("%w: --interface is required (the probe never uses a default interface)", errUsage)
	}
	if o.Duration <= 0 {
		return o, fmt.Errorf("%w: --duration must be positive", errUsage)
	}
	if o.TTL < 1 || o.TTL > 255 {
		return o, fmt.Errorf("%w: --ttl must be 1..255", errUsage)
	}
	port := int(cfg.Group.Port()) + 1
	if c.IsSet("port") {
		port = c.Int("port")
	}
	if port < 1 || port > 65535 {
		return o, fmt.Errorf("%w: probe port %d out of range (set --port)", errUsage, port)
	}
	o.Group = netip.AddrPortFrom(cfg.Group.Addr(), uint16(port))
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	if len(o.Name) > probeMaxName {
		o.Name = o.Name[:probeMaxName]
	}
	if o.Name == "" {
		o.Name = "probe"
	}
	if len(cfg.Peers) > 0 && cfg.Discovery != "" {
		_, pw := cfg.Source("peers")
		_, dw := cfg.Source("discovery")
		return o, fmt.Errorf("%w: peers (%s) and discovery (%s) are both set; use one", errUsage, pw, dw)
	}
	if len(cfg.Peers) > 0 || cfg.Discovery != "" {
		o.Unicast = true
		aps, err := probeUnicastPeers(cfg.Peers, cfg.Discovery, port, c.IsSet("port"))
		if err != nil {
			return o, err
		}
		o.Peers = append(o.Peers, aps...)
	}
	for _, s := range c.StringSlice("peer") {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			ip, err2 := netip.ParseAddr(s)
			if err2 != nil || !ip.Is4() {
				return o, fmt.Errorf("%w: --peer %q: want an IPv4 address or IP:PORT", errUsage, s)
			}
			ap = netip.AddrPortFrom(ip, uint16(port))
		}
		o.Peers = append(o.Peers, ap)
	}
	if cfg.KeyFile != "" {
		kr, err := multicast.LoadKeyFile(cfg.KeyFile)
		if err != nil {
			return o, fmt.Errorf("%w: key-file: %v", ErrConfig, err)
		}
		o.Auth = probeAuthFromKeyring(kr)
	}
	return o, nil
}

func probeAuthFromKeyring(kr *multicast.Keyring) *probeAuth {
	primary, _ := kr.Primary()
	a := &probeAuth{primary: primary, keys: map[uint8][]byte{}}
	for _, id := range kr.IDs() {
		k, _ := kr.Lookup(id)
		a.keys[id] = deriveProbeKey(k[:])
	}
	return a
}

// probePeerState is what we know of one peer instance.
type probePeerState struct {
	instance      uint64
	name          string
	addr          netip.AddrPort // its unicast address (source of its packets)
	seqFirst      uint32         // lowest announce seq it told us (any channel), 0: none yet
	seqLast       uint32
	mcReceived    int
	ucReceived    int
	report        probeHeard // what it last said it hears from us
	reportKnown   bool
	echoReplies   int
	rtts          []time.Duration
	lastHeard     time.Time
	sourceOutside bool // its address is outside our interface's prefix
}

type probeTarget struct {
	sent int
}

type prober struct {
	opts     probeOptions
	instance uint64
	ifi      *net.Interface
	ifPrefix netip.Prefix
	gconn    *net.UDPConn
	uconn    *net.UDPConn

	mu       sync.Mutex
	seq      uint32
	echoID   uint32
	peers    map[uint64]*probePeerState
	targets  map[netip.AddrPort]*probeTarget
	rejected int
}

// runProbe probes until ctx ends or opts.Duration passes, and returns
// the finished report.
func runProbe(ctx context.Context, opts probeOptions) *probeReport {
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	p := &prober{opts: opts, instance: binary.BigEndian.Uint64(idb[:]),
		peers: map[uint64]*probePeerState{}, targets: map[netip.AddrPort]*probeTarget{}}
	rep := &probeReport{
		Name: opts.Name, Instance: fmt.Sprintf("%016x", p.instance), Interface: opts.Interface,
		Group: opts.Group.String(), Port: int(opts.Group.Port()), TTL: opts.TTL, Authenticated: opts.Auth != nil,
		Transport: "multicast",
	}
	if opts.Unicast {
		rep.Transport = "unicast"
	}
	defer rep.finish()

	ifi, prefix, check := probeInterface(opts.Interface, !opts.Unicast)
	rep.Checks = append(rep.Checks, check)
	if ifi == nil {
		rep.Error = check.Detail
		return rep
	}
	p.ifi, p.ifPrefix = ifi, prefix
	rep.Interface, rep.Address = ifi.Name, prefix.String()
	if opts.Unicast {
		if !slices.ContainsFunc(opts.Peers, func(ap netip.AddrPort) bool { return ap.Addr() != prefix.Addr() }) {
			rep.Error = "no peer address other than this host's: --peers names none, or --discovery resolved to none"
			return rep
		}
		var err error
		if p.uconn, err = probeOpenUnicast(netip.AddrPortFrom(prefix.Addr(), opts.Group.Port())); err != nil {
			rep.Error = err.Error()
			return rep
		}
		rep.Checks = append(rep.Checks, probeRcvbufCheck(p.uconn, probeRecvAsk))
	} else {
		rep.Checks = append(rep.Checks, probeRouteCheck(opts.Group, ifi, prefix.Addr()))
		if err := p.open(); err != nil {
			rep.Error = err.Error()
			return rep
		}
		rep.Checks = append(rep.Checks, probeJoinedCheck(opts.Group.Addr(), ifi), probeRcvbufCheck(p.gconn, probeRecvAsk))
	}
	for _, ap := range opts.Peers {
		if ap.Addr() != prefix.Addr() { // this host in the peer list
			p.targets[ap] = &probeTarget{}
			if opts.Unicast {
				rep.Targets = append(rep.Targets, ap.String())
			}
		}
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	if p.gconn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); p.readLoop(p.gconn, true) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); p.readLoop(p.uconn, false) }()
	p.sendLoop(ctx)
	if p.gconn != nil {
		p.gconn.Close()
	}
	p.uconn.Close()
	wg.Wait()
	rep.DurationS = time.Since(start).Round(time.Millisecond).Seconds()
	p.fill(rep)
	return rep
}

// probeInterface resolves --interface (a name or one of its IPv4
// addresses) and checks that it is up, has an IPv4 address and, when
// multicast is asked, can carry multicast.
func probeInterface(s string, needMulticast bool) (*net.Interface, netip.Prefix, probeCheck) {
	c := probeCheck{Name: "interface", Level: "fail"}
	ifi, prefix, err := multicast.LookupInterface(s)
	if err != nil {
		c.Detail = err.Error()
		return nil, netip.Prefix{}, c
	}
	switch {
	case ifi.Flags&net.FlagUp == 0:
		c.Detail = fmt.Sprintf("interface %s is down (ip link set %s up)", ifi.Name, ifi.Name)
	case needMulticast && ifi.Flags&net.FlagMulticast == 0:
		c.Detail = fmt.Sprintf("interface %s has no MULTICAST flag (ip link set %s multicast on)", ifi.Name, ifi.Name)
	case !prefix.IsValid():
		c.Detail = fmt.Sprintf("interface %s has no IPv4 address", ifi.Name)
	default:
		c.Level = "ok"
		c.Detail = fmt.Sprintf("%s up, multicast, %s (%s)", ifi.Name, prefix, ifi.Flags)
		return ifi, prefix, c
	}
	return nil, netip.Prefix{}, c
}

// open binds the group socket (joined on the interface) and the unicast
// socket (that sends the announces out of the interface).
func (p *prober) open() error {
	group := p.opts.Group
	var err error
	p.gconn, err = probeOpenGroup(group, p.ifi, p.ifPrefix.Addr())
	if err != nil {
		return err
	}
	p.uconn, err = probeOpenUnicast(netip.AddrPortFrom(p.ifPrefix.Addr(), group.Port()))
	if err == nil {
		err = probeSetSender(p.uconn, p.ifi, p.ifPrefix.Addr(), p.opts.TTL, p.opts.Loopback)
		if err != nil {
			p.uconn.Close()
		}
	} else {
	}
	if err != nil {
		p.gconn.Close()
		return err
	}
	return nil
}

func (p *prober) sendLoop(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	buf := make([]byte, 0, probeMaxSize)
	for {
		p.mu.Lock()
		p.seq++
		ann := p.packetLocked(kindAnnounce)
		targets := make([]netip.AddrPort, 0, len(p.targets))
		for ap, tg := range p.targets {
			targets = append(targets, ap)
			tg.sent++
		}
		p.mu.Unlock()
		if b, err := encodeProbe(buf[:0], ann, p.opts.Auth); err == nil {
			if p.opts.Unicast {
				// The announce goes to every peer: heard-from and heard-by
				// then measure unicast in each direction.
				for _, ap := range targets {
					_, _ = p.uconn.WriteToUDPAddrPort(b, ap)
				}
			} else {
				_, _ = p.uconn.WriteToUDPAddrPort(b, p.opts.Group)
			}
		}
		for _, ap := range targets {
			p.mu.Lock()
			p.echoID++
			req := p.packetLocked(kindEchoReq)
			req.EchoID = p.echoID
			p.mu.Unlock()
			if b, err := encodeProbe(buf[:0], req, p.opts.Auth); err == nil {
				_, _ = p.uconn.WriteToUDPAddrPort(b, ap)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// packetLocked builds a packet of ours with the current reports.
func (p *prober) packetLocked(kind probeKind) *probePacket {
	pk := &probePacket{
		Kind: kind, Instance: p.instance, Seq: p.seq, SentAt: time.Now().UnixNano(),
		Addr: p.ifPrefix.Addr(), PrefixLen: uint8(p.ifPrefix.Bits()), TTL: uint8(p.opts.TTL), Name: p.opts.Name,
	}
	peers := make([]*probePeerState, 0, len(p.peers))
	for _, ps := range p.peers {
		peers = append(peers, ps)
	}
	// The most recently heard first, when there are too many to report.
	sort.Slice(peers, func(i, j int) bool { return peers[i].lastHeard.After(peers[j].lastHeard) })
	if len(peers) > probeMaxReports {
		peers = peers[:probeMaxReports]
	}
	for _, ps := range peers {
		pk.Heard = append(pk.Heard, probeHeard{
			Instance: ps.instance, Received: uint32(ps.mcReceived), Expected: uint32(ps.expected()), Unicast: ps.ucReceived > 0,
		})
	}
	return pk
}

func (ps *probePeerState) expected() int {
	if ps.seqFirst == 0 {
		return 0
	}
	return int(ps.seqLast-ps.seqFirst) + 1
}

func (p *prober) readLoop(c *net.UDPConn, group bool) {
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	want := p.opts.Group.Addr()
	for {
		var (
			n    int
			from netip.AddrPort
			err  error
		)
		if group {
			var oobn int
			n, oobn, _, from, err = c.ReadMsgUDPAddrPort(buf, oob)
			// Linux delivers other groups on this port to the socket too.
			if dst, ok := probePktDst(oob[:oobn]); err == nil && ok && dst != want {
				continue
			}
		} else {
			n, from, err = c.ReadFromUDPAddrPort(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		p.receive(buf[:n], from, group, time.Now())
	}
}

func (p *prober) receive(b []byte, from netip.AddrPort, viaGroup bool, now time.Time) {
	pk, err := decodeProbe(b, p.opts.Auth)
	if err != nil {
		if pk != nil && pk.Instance != p.instance { // structurally a probe, failed authentication
			p.mu.Lock()
			p.rejected++
			p.mu.Unlock()
		}
		return
	}
	if pk.Instance == p.instance || (!p.opts.Unicast && viaGroup != (pk.Kind == kindAnnounce)) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.peers[pk.Instance]
	if ps == nil {
		if len(p.peers) >= probeMaxPeers {
			return
		}
		ps = &probePeerState{instance: pk.Instance}
		p.peers[pk.Instance] = ps
	}
	ps.name, ps.addr, ps.lastHeard = pk.Name, from, now
	ps.sourceOutside = !p.ifPrefix.Masked().Contains(from.Addr())
	if _, ok := p.targets[from]; !ok && len(p.targets) < probeMaxPeers {
		p.targets[from] = &probeTarget{}
	}
	if pk.Seq > 0 {
		if ps.seqFirst == 0 || pk.Seq < ps.seqFirst {
			ps.seqFirst = pk.Seq
		}
		if pk.Seq > ps.seqLast {
			ps.seqLast = pk.Seq
		}
	}
	for _, h := range pk.Heard {
		if h.Instance == p.instance {
			ps.report, ps.reportKnown = h, true
		}
	}
	switch pk.Kind {
	case kindAnnounce:
		ps.mcReceived++
	case kindEchoReq:
		ps.ucReceived++
		reply := p.packetLocked(kindEchoReply)
		reply.EchoID, reply.EchoSentAt = pk.EchoID, pk.SentAt
		if out, err := encodeProbe(make([]byte, 0, probeMaxSize), reply, p.opts.Auth); err == nil {
			_, _ = p.uconn.WriteToUDPAddrPort(out, from)
		}
	case kindEchoReply:
		ps.ucReceived++
		rtt := time.Duration(now.UnixNano() - pk.EchoSentAt)
		if rtt >= 0 && rtt < time.Minute {
			ps.echoReplies++
			if len(ps.rtts) < probeRTTKeep {
				ps.rtts = append(ps.rtts, rtt)
			}
		}
	}
}

// fill adds the peers' results to rep.
func (p *prober) fill(rep *probeReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rep.Sent = int(p.seq)
	rep.Rejected = p.rejected
	for _, ps := range p.peers {
		pr := probePeer{
			Name: ps.name, Instance: fmt.Sprintf("%016x", ps.instance), Address: ps.addr.Addr().String(),
			SameSubnet: !ps.sourceOutside,
			HeardFrom:  newDirection(true, ps.mcReceived, ps.expected()),
			HeardBy:    newDirection(ps.reportKnown, int(ps.report.Received), int(ps.report.Expected)),
		}
		if tg := p.targets[ps.addr]; tg != nil {
			pr.Unicast.EchoSent = tg.sent
		}
		pr.Unicast.EchoReplies, pr.Unicast.Received = ps.echoReplies, ps.ucReceived
		pr.Unicast.Works = ps.echoReplies > 0 || ps.ucReceived > 0 && ps.reportKnown && ps.report.Unicast
		if len(ps.rtts) > 0 {
			s := append([]time.Duration(nil), ps.rtts...)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			pr.Unicast.RTTP50ms, pr.Unicast.RTTP99ms = ms(percentile(s, 50)), ms(percentile(s, 99))
		}
		pr.Verdict, pr.Detail = peerVerdict(pr.HeardFrom, pr.HeardBy)
		rep.Peers = append(rep.Peers, pr)
	}
}

// readProcFile reads a small /proc or /sys file.
func readProcFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func atoiDefault(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

// probeUnicastPeers resolves the --peers entries and the --discovery name
// to the probe addresses of the peers: each peer's port (default: the
// group's) + 1, or the probe port when --port is set.
func probeUnicastPeers(peers []string, discovery string, probePort int, portSet bool) ([]netip.AddrPort, error) {
	type target struct {
		host string
		port int
	}
	var ts []target
	for _, s := range peers {
		ps, err := multicast.ParsePeer(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --peers: %v", errUsage, err)
		}
		port := probePort
		if ps.Port != 0 && !portSet {
			port = int(ps.Port) + 1
		}
		if port > 65535 {
			return nil, fmt.Errorf("%w: --peers %s: probe port %d out of range (set --port)", errUsage, s, port)
		}
		ts = append(ts, target{ps.Host, port})
	}
	if discovery != "" {
		name, err := multicast.ParseDiscovery(discovery)
		if err != nil {
			return nil, fmt.Errorf("%w: --discovery: %v", errUsage, err)
		}
		ts = append(ts, target{name, probePort})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []netip.AddrPort
	for _, t := range ts {
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(t.host); err == nil {
			addrs = []netip.Addr{a}
		} else {
			as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", t.host)
			if err != nil {
				return nil, fmt.Errorf("probe: peer name %s does not resolve: %w", t.host, err)
			}
			addrs = as
		}
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a.Unmap(), uint16(t.port))
			if !slices.Contains(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out, nil
}
