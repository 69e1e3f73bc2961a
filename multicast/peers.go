package multicast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Unicast mode: on networks that drop multicast, Config.Peers or
// Config.Discovery replace the group by UDP unicast. Each packet is sealed
// once and sent to every known peer. The known peers are the union of
//
//   - the static peers (Config.Peers), resolved at start and again every
//     DiscoveryInterval; never dropped;
//   - the addresses Config.Discovery resolves to, replaced at every
//     resolution;
//   - learned addresses: the unicast address of every member the engine
//     holds (learned from its authenticated packets) until Forget;
//   - gossiped addresses: members send each other the addresses they
//     learned (a sealed peers packet, every peerGossipInterval and at
//     once when they learn a new one), kept for peerGossipTTL after the
//     last mention.
//
// So a node that lists a single seed reaches every member within a
// gossip round, and a member that died (Forget) and left DNS is dropped
// at most peerGossipTTL later.

// ErrPeers is wrapped by the errors about Config.Peers and
// Config.Discovery.
var ErrPeers = errors.New("multicast: invalid peer")

// Discovery schemes of Config.Discovery.
const discoveryDNS = "dns:"

// Timings of unicast mode (variables for tests).
var (
	// peerGossipInterval is the period of the peers packets.
	peerGossipInterval = time.Second
	// peerGossipMin is the shortest gap between two peers rounds
	// (a new address triggers one at once).
	peerGossipMin = 100 * time.Millisecond
	// peerGossipTTL is how long a gossiped address is kept after its
	// last mention.
	peerGossipTTL = 5 * time.Second
	// peerSyncInterval is how often the learned addresses are read from
	// the engine.
	peerSyncInterval = 100 * time.Millisecond
)

const (
	// maxPeerAddrs bounds the addresses held (every source together)
	// and the addresses taken from one peers packet.
	maxPeerAddrs = 4096
	// peersVersion is the first byte of a peers body.
	peersVersion = 1
	// peerAddrLen is the encoded size of one address: IPv4 and port.
	peerAddrLen = 6
)

// PeerSpec is one entry of Config.Peers: an IPv4 address or a host name,
// and a port (0: the group's port).
type PeerSpec struct {
	Host string // IPv4 address or DNS name
	Port uint16 // 0: the group's port
}

// String returns the entry as given ("host" or "host:port").
func (p PeerSpec) String() string {
	if p.Port == 0 {
		return p.Host
	}
	return net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
}

// ParsePeers parses a comma-separated list of "host" or "host:port"
// entries, where host is an IPv4 address or a DNS name and port is
// 1-65535 (omitted: the group's port). Blanks around entries are ignored;
// an empty list gives nil.
func ParsePeers(s string) ([]PeerSpec, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PeerSpec
	for i, f := range strings.Split(s, ",") {
		p, err := ParsePeer(f)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePeer parses one "host" or "host:port" entry (see ParsePeers).
func ParsePeer(s string) (PeerSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return PeerSpec{}, fmt.Errorf("%w: empty peer entry", ErrPeers)
	}
	host, port := s, ""
	if strings.Count(s, ":") == 1 {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return PeerSpec{}, fmt.Errorf("%w %q: %v", ErrPeers, s, err)
		}
		host, port = h, p
	} else if strings.Contains(s, ":") || strings.HasPrefix(s, "[") {
		return PeerSpec{}, fmt.Errorf("%w %q: not an IPv4 address or host name (IPv6 is not supported)", ErrPeers, s)
	}
	ps := PeerSpec{Host: host}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return PeerSpec{}, fmt.Errorf("%w %q: port %q out of range 1-65535", ErrPeers, s, port)
		}
		ps.Port = uint16(n)
	}
	if err := checkPeerHost(host); err != nil {
		return PeerSpec{}, fmt.Errorf("%w %q: %v", ErrPeers, s, err)
	}
	return ps, nil
}

// checkPeerHost accepts a unicast IPv4 address or a syntactically valid
// DNS name.
func checkPeerHost(h string) error {
	if a, err := netip.ParseAddr(h); err == nil {
		if !a.Is4() {
			return fmt.Errorf("%s is not an IPv4 address (IPv6 is not supported)", h)
		}
		if !usablePeerAddr(a) {
			return fmt.Errorf("%s is not a unicast address", h)
		}
		return nil
	}
	if !validHostName(h) {
		return fmt.Errorf("%q is not an IPv4 address or host name", h)
	}
	return nil
}

// usablePeerAddr reports whether a can be a peer: a specific unicast
// IPv4 address.
func usablePeerAddr(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// validHostName checks DNS name syntax: dot-separated labels of letters,
// digits, '-' and '_', 1-63 bytes each, not starting or ending with '-',
// 253 bytes at most, a final dot allowed; not all-numeric (that would be
// a malformed address).
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	numeric := true
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
				numeric = false
			default:
				return false
			}
		}
	}
	return !numeric
}

// ParseDiscovery parses a Config.Discovery value, "dns:NAME", and returns
// NAME.
func ParseDiscovery(s string) (string, error) {
	s = strings.TrimSpace(s)
	name, ok := strings.CutPrefix(s, discoveryDNS)
	if !ok {
		return "", fmt.Errorf("%w: discovery %q: want dns:NAME", ErrPeers, s)
	}
	if _, err := netip.ParseAddr(name); err == nil || !validHostName(name) {
		return "", fmt.Errorf("%w: discovery %q: %q is not a DNS name", ErrPeers, s, name)
	}
	return name, nil
}

// Unicast reports whether c selects unicast mode (Peers or Discovery set).
func (c *Config) Unicast() bool {
	return len(c.Peers) > 0 || strings.TrimSpace(c.Discovery) != ""
}

// validatePeers checks Peers and Discovery.
func (c *Config) validatePeers() error {
	if len(c.Peers) > 0 && strings.TrimSpace(c.Discovery) != "" {
		return fmt.Errorf("%w: peers and discovery are both set; use one", ErrPeers)
	}
	for i, p := range c.Peers {
		if _, err := ParsePeer(p); err != nil {
			return fmt.Errorf("peer %d: %w", i+1, err)
		}
	}
	if strings.TrimSpace(c.Discovery) != "" {
		if _, err := ParseDiscovery(c.Discovery); err != nil {
			return err
		}
	}
	if c.DiscoveryInterval < 0 {
		return fmt.Errorf("%w: negative DiscoveryInterval", ErrPeers)
	}
	return nil
}

// appendPeers encodes a peers body: version u8, then per address
// IPv4 (4 bytes) and port (big-endian u16).
func appendPeers(b []byte, addrs []netip.AddrPort) []byte {
	b = append(b, peersVersion)
	for _, a := range addrs {
		ip := a.Addr().As4()
		b = append(b, ip[:]...)
		b = binary.BigEndian.AppendUint16(b, a.Port())
	}
	return b
}

// errPeersBody is returned by decodePeers for a malformed body.
var errPeersBody = errors.New("multicast: malformed peers body")

// decodePeers decodes a peers body. Unusable addresses (not unicast,
// port 0) are skipped; at most maxPeerAddrs are returned.
func decodePeers(b []byte) ([]netip.AddrPort, error) {
	if len(b) < 1 || b[0] != peersVersion || (len(b)-1)%peerAddrLen != 0 {
		return nil, errPeersBody
	}
	n := min((len(b)-1)/peerAddrLen, maxPeerAddrs)
	out := make([]netip.AddrPort, 0, n)
	for i := range n {
		r := b[1+i*peerAddrLen:]
		a := netip.AddrFrom4([4]byte(r[:4]))
		port := binary.BigEndian.Uint16(r[4:6])
		if !usablePeerAddr(a) || port == 0 {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, port))
	}
	return out, nil
}

// onPeers handles a peers packet: the addresses go to the unicast
// link's peer set (nothing happens in multicast mode).
func (e *engine) onPeers(pt []byte) {
	addrs, err := decodePeers(pt)
	if err != nil {
		e.reject(reasonMalformed)
		return
	}
	if e.cfg.learnPeers != nil {
		e.cfg.learnPeers(addrs)
	}
}

// peerEntry is one known peer address and where it came from.
type peerEntry struct {
	addr     netip.AddrPort
	ua       *net.UDPAddr
	sent     atomic.Uint64 // datagrams sent to it
	static   bool          // in Config.Peers
	dns      bool          // in the last resolution of Config.Discovery
	learned  bool          // a member the engine holds has this address
	gossipAt time.Time     // last time another member mentioned it
}

func (p *peerEntry) keep(now time.Time) bool {
	return p.static || p.dns || p.learned || (!p.gossipAt.IsZero() && now.Sub(p.gossipAt) < peerGossipTTL)
}

// peerSet holds the known peer addresses of a unicast link. The sender
// reads an immutable snapshot (targets) without locking.
type peerSet struct {
	self netip.AddrPort

	mu     sync.Mutex
	byAddr map[netip.AddrPort]*peerEntry
	snap   atomic.Pointer[[]*peerEntry]
	fresh  atomic.Bool // an address was added since the last gossip round
}

func newPeerSet(self netip.AddrPort) *peerSet {
	s := &peerSet{self: self, byAddr: make(map[netip.AddrPort]*peerEntry)}
	s.snap.Store(new([]*peerEntry))
	return s
}

// targets returns the current peers (do not modify).
func (s *peerSet) targets() []*peerEntry { return *s.snap.Load() }

// lookup returns the entry of a, or nil.
func (s *peerSet) lookup(a netip.AddrPort) *peerEntry {
	for _, p := range s.targets() {
		if p.addr == a {
			return p
		}
	}
	return nil
}

// update runs f on the entries under the lock, then drops the entries no
// source keeps any more and publishes a new snapshot if anything changed.
func (s *peerSet) update(now time.Time, f func(get func(netip.AddrPort) *peerEntry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	get := func(a netip.AddrPort) *peerEntry {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if a == s.self || !usablePeerAddr(a.Addr()) || a.Port() == 0 {
			return nil
		}
		p := s.byAddr[a]
		if p == nil {
			if len(s.byAddr) >= maxPeerAddrs {
				return nil
			}
			p = &peerEntry{addr: a, ua: net.UDPAddrFromAddrPort(a)}
			s.byAddr[a] = p
			changed = true
			s.fresh.Store(true)
		}
		return p
	}
	f(get)
	for a, p := range s.byAddr {
		if !p.keep(now) {
			delete(s.byAddr, a)
			changed = true
		}
	}
	if changed {
		list := make([]*peerEntry, 0, len(s.byAddr))
		for _, p := range s.byAddr {
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].addr.Compare(list[j].addr) < 0 })
		s.snap.Store(&list)
	}
}

// setStatic replaces the static addresses.
func (s *peerSet) setStatic(addrs []netip.AddrPort, now time.Time) {
	s.update(now, func(get func(netip.AddrPort) *peerEntry) {
		for _, p := range s.byAddr {
			p.static = false
		}
		for _, a := range addrs {
			if p := get(a); p != nil {
				p.static = true
			}
		}
	})
}

// setDNS replaces the discovered addresses.
func (s *peerSet) setDNS(addrs []netip.AddrPort, now time.Time) {
	s.update(now, func(get func(netip.AddrPort) *peerEntry) {
		for _, p := range s.byAddr {
			p.dns = false
		}
		for _, a := range addrs {
			if p := get(a); p != nil {
				p.dns = true
			}
		}
	})
}

// setLearned replaces the addresses of the members the engine holds.
func (s *peerSet) setLearned(addrs []netip.AddrPort, now time.Time) {
	s.update(now, func(get func(netip.AddrPort) *peerEntry) {
		for _, p := range s.byAddr {
			p.learned = false
		}
		for _, a := range addrs {
			if p := get(a); p != nil {
				p.learned = true
			}
		}
	})
}

// gossiped records addresses another member mentioned.
func (s *peerSet) gossiped(addrs []netip.AddrPort, now time.Time) {
	s.update(now, func(get func(netip.AddrPort) *peerEntry) {
		for _, a := range addrs {
			if p := get(a); p != nil {
				p.gossipAt = now
			}
		}
	})
}

// sentCounts returns the datagrams sent per current peer address.
func (s *peerSet) sentCounts() map[string]uint64 {
	ts := s.targets()
	m := make(map[string]uint64, len(ts))
	for _, p := range ts {
		m[p.addr.String()] = p.sent.Load()
	}
	return m
}
