package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/ipv4"

	"github.com/hanode/hanode/internal/packet"
)

// listenUnicast is Listen in unicast mode (Config.Peers or
// Config.Discovery set): one socket on the interface's address and the
// group's port, and a peer set fed by the static list, DNS, the engine
// and the members' peers packets.
func listenUnicast(cfg Config) (Transport, error) {
	// Validate checked both; parse them for the discovery goroutine.
	specs := make([]PeerSpec, 0, len(cfg.Peers))
	for _, s := range cfg.Peers {
		ps, err := ParsePeer(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		specs = append(specs, ps)
	}
	var dnsName string
	if strings.TrimSpace(cfg.Discovery) != "" {
		var err error
		if dnsName, err = ParseDiscovery(cfg.Discovery); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	ifi, ifAddr, err := ResolveInterface(cfg.Interface, false)
	if err != nil {
		return nil, err
	}
	if err := udpSupported(); err != nil {
		return nil, err
	}
	self := netip.AddrPortFrom(ifAddr, cfg.Group.Port())
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(self))
	if err != nil {
		return nil, fmt.Errorf("multicast: bind unicast socket %s: %w", self, err)
	}
	if err := conn.SetReadBuffer(cfg.RecvBuffer); err != nil {
		conn.Close()
		return nil, fmt.Errorf("multicast: set receive buffer: %w", err)
	}
	granted, _ := grantedRecvBuffer(conn)
	peers := newPeerSet(self)
	l := &unicastLink{
		conn:  conn,
		pc:    ipv4.NewPacketConn(conn),
		self:  self,
		peers: peers,
		batch: true,
		stop:  make(chan struct{}),
	}
	cfg.learnPeers = func(addrs []netip.AddrPort) { peers.gossiped(addrs, time.Now()) }
	rt := newRuntime(cfg, l)
	rt.peers = peers
	log := rt.cfg.Logger
	l.log = log
	rt.recvBuffer, rt.recvClamped = granted, granted < cfg.RecvBuffer
	if rt.recvClamped {
		log.Warn("multicast: kernel granted a smaller receive buffer than asked; raise net.core.rmem_max",
			"asked", cfg.RecvBuffer, "granted", granted)
	}
	d := &discovery{
		specs:    specs,
		name:     dnsName,
		port:     cfg.Group.Port(),
		resolver: cfg.Resolver,
		interval: cfg.DiscoveryInterval,
		peers:    peers,
		link:     l,
	}
	if d.resolver == nil {
		d.resolver = net.DefaultResolver
	}
	// Names are resolved once before the runtime starts (bounded by
	// resolveTimeout), then every DiscoveryInterval.
	d.resolve(context.Background())
	log.Info("multicast: unicast mode", "interface", ifi.Name, "unicast", self, "member", rt.eng.id,
		"peers", strings.Join(cfg.Peers, ","), "discovery", cfg.Discovery, "known", len(peers.targets()))
	rt.start()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		d.run(l.stop)
	}()
	return rt, nil
}

// unicastLink is the link of unicast mode: one UDP socket that sends each
// group packet to every known peer and receives everything.
type unicastLink struct {
	conn  *net.UDPConn
	pc    *ipv4.PacketConn
	self  netip.AddrPort
	peers *peerSet
	batch bool // use sendmmsg (WriteBatch) for fan-out to 2+ peers
	log   interface {
		Warn(string, ...any)
	}

	msgs []ipv4.Message // fan-out scratch, sender goroutine only
	bufs [1][]byte

	wg        sync.WaitGroup
	once      sync.Once
	stop      chan struct{}
	closed    atomic.Bool
	dnsErrors atomic.Uint64
}

// send writes b to one address, or to every known peer when to is the
// zero AddrPort. Called by the runtime's sender goroutine only.
func (l *unicastLink) send(b []byte, to netip.AddrPort) error {
	if to.IsValid() {
		_, err := l.conn.WriteToUDPAddrPort(b, to)
		if err == nil {
			if p := l.peers.lookup(to); p != nil {
				p.sent.Add(1)
			}
		}
		return err
	}
	ts := l.peers.targets()
	if len(ts) == 0 {
		return nil
	}
	if !l.batch || len(ts) == 1 {
		var first error
		for _, p := range ts {
			if _, err := l.conn.WriteToUDPAddrPort(b, p.addr); err != nil {
				first = cmp(first, err)
				continue
			}
			p.sent.Add(1)
		}
		return first
	}
	return l.sendBatch(b, ts)
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// sendBatch writes b to every target with as few sendmmsg calls as the
// kernel allows. The buffer is shared: sealed once, sent N times.
func (l *unicastLink) sendBatch(b []byte, ts []*peerEntry) error {
	l.bufs[0] = b
	if cap(l.msgs) < len(ts) {
		l.msgs = make([]ipv4.Message, len(ts))
	}
	ms := l.msgs[:len(ts)]
	for i, p := range ts {
		ms[i] = ipv4.Message{Buffers: l.bufs[:], Addr: p.ua}
	}
	var first error
	for i := 0; i < len(ms); {
		n, err := l.pc.WriteBatch(ms[i:], 0)
		n = max(0, min(n, len(ms)-i)) // -1 with an error
		for _, p := range ts[i : i+n] {
			p.sent.Add(1)
		}
		i += n
		if err != nil {
			// Skip the datagram the kernel refused and go on.
			first = cmp(first, err)
			i++
		} else if n == 0 {
			break
		}
	}
	l.bufs[0] = nil
	for i := range ms {
		ms[i] = ipv4.Message{}
	}
	return first
}

func (l *unicastLink) start(recv func([]byte, netip.AddrPort) bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		buf := make([]byte, readBufferBytes)
		for {
			n, from, err := l.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if l.closed.Load() || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if !recv(append([]byte(nil), buf[:n]...), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())) {
				return
			}
		}
	}()
}

func (l *unicastLink) close() error {
	var err error
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		err = l.conn.Close()
	})
	l.wg.Wait()
	return err
}

// peerDatagrams reports the datagrams sent per current peer.
func (l *unicastLink) peerDatagrams() map[string]uint64 { return l.peers.sentCounts() }

// discoveryErrors reports the failed name resolutions.
func (l *unicastLink) discoveryErrors() uint64 { return l.dnsErrors.Load() }

// discovery resolves the names of Config.Peers and Config.Discovery.
type discovery struct {
	specs    []PeerSpec
	name     string
	port     uint16
	resolver *net.Resolver
	interval time.Duration
	peers    *peerSet
	link     *unicastLink
	last     map[string][]netip.Addr // last successful answer per name
	warned   map[string]bool         // a failure was logged since the last success
}

// resolveTimeout bounds one resolution round.
const resolveTimeout = 5 * time.Second

func (d *discovery) run(stop <-chan struct{}) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		d.resolve(ctx)
		cancel()
	}
}

// resolve runs one round: static entries (names looked up), then the
// discovery name. A lookup that fails for a transient reason keeps the
// previous addresses of that name; a name that does not exist (or has no
// IPv4 address) has none. Failures are logged once until a success.
func (d *discovery) resolve(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	if len(d.specs) > 0 {
		var addrs []netip.AddrPort
		for _, s := range d.specs {
			port := s.Port
			if port == 0 {
				port = d.port
			}
			for _, a := range d.lookup(ctx, s.Host) {
				addrs = append(addrs, netip.AddrPortFrom(a, port))
			}
		}
		d.peers.setStatic(addrs, time.Now())
	}
	if d.name != "" {
		as := d.lookup(ctx, d.name)
		addrs := make([]netip.AddrPort, 0, len(as))
		for _, a := range as {
			addrs = append(addrs, netip.AddrPortFrom(a, d.port))
		}
		d.peers.setDNS(addrs, time.Now())
	}
}

// lookup resolves host to its usable IPv4 addresses (an address resolves
// to itself), falling back to the last answer on a transient failure.
func (d *discovery) lookup(ctx context.Context, host string) []netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}
	}
	if d.last == nil {
		d.last = make(map[string][]netip.Addr)
		d.warned = make(map[string]bool)
	}
	as, err := d.resolver.LookupNetIP(ctx, "ip4", host)
	var out []netip.Addr
	for _, a := range as {
		if a = a.Unmap(); usablePeerAddr(a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if err == nil && len(out) > 0 {
		d.warned[host] = false
		d.last[host] = out
		return out
	}
	d.link.dnsErrors.Add(1)
	if !d.warned[host] {
		d.warned[host] = true
		d.link.log.Warn("multicast: peer name does not resolve (will retry)", "name", host, "err", err)
	}
	var dnsErr *net.DNSError
	if err == nil || (errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		d.last[host] = nil
		return nil
	}
	return d.last[host]
}

// peerClock is the unicast bookkeeping of the runtime's loop goroutine.
type peerClock struct {
	nextSync   time.Time
	lastGossip time.Time
}

// peerTick, called by the loop on every tick in unicast mode, copies the
// addresses of the members the engine holds into the peer set (which also
// expires old gossip) and sends them to every peer when a gossip round is
// due: every peerGossipInterval, or soon after a new address appeared.
func (rt *runtime) peerTick(now time.Time) {
	if rt.peers == nil || now.Before(rt.pclock.nextSync) {
		return
	}
	rt.pclock.nextSync = now.Add(peerSyncInterval)
	rt.mu.Lock()
	addrs := rt.eng.peerAddrs(rt.down)
	rt.mu.Unlock()
	rt.peers.setLearned(addrs, now)
	since := now.Sub(rt.pclock.lastGossip)
	if len(addrs) == 0 || (since < peerGossipInterval && !(rt.peers.fresh.Load() && since >= peerGossipMin)) {
		return
	}
	rt.peers.fresh.Store(false)
	rt.pclock.lastGossip = now
	per := (rt.cfg.MaxDatagram - Overhead - 1) / peerAddrLen
	var pkts []outPacket
	rt.mu.Lock()
	for len(addrs) > 0 {
		n := min(per, len(addrs))
		pkts = append(pkts, outPacket{b: rt.eng.control(packet.TypePeers, 0, appendPeers(nil, addrs[:n]))})
		addrs = addrs[n:]
	}
	rt.mu.Unlock()
	for _, p := range pkts {
		rt.sq.pushPriority(p)
	}
	rt.writeQueued()
}

// peerAddrs returns the unicast addresses of the members held (not
// forgotten, not reported down) whose address is known.
func (e *engine) peerAddrs(down map[uuid.UUID]bool) []netip.AddrPort {
	var out []netip.AddrPort
	for id, p := range e.peers {
		if !p.gone && !down[id] && p.addr.IsValid() && p.addr.Addr().Is4() {
			out = append(out, p.addr)
		}
	}
	return out
}

// MemberLiveness is implemented by the transports of this package. The
// membership layer reports with it which members it holds dead: in
// unicast mode a dead member's learned address is no longer sent to (nor
// told to others), although its state is kept (Forget is for members
// that left) so that it is accepted again when it comes back. Its
// address stays while it is a static peer or in DNS. In multicast mode
// the call changes nothing.
type MemberLiveness interface {
	MemberDown(member uuid.UUID, down bool)
}

// MemberDown implements MemberLiveness.
func (rt *runtime) MemberDown(member uuid.UUID, down bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if down {
		if rt.down == nil {
			rt.down = make(map[uuid.UUID]bool)
		}
		if len(rt.down) >= maxPeers {
			// Keep only members the engine still holds.
			for id := range rt.down {
				if rt.eng.peers[id] == nil {
					delete(rt.down, id)
				}
			}
		}
		rt.down[member] = true
		return
	}
	delete(rt.down, member)
}
