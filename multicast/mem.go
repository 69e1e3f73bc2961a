package multicast

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

// MemNetwork is an in-memory datagram network for tests: every Join gets
// a Transport running the same protocol core as Listen, over a network
// with seeded loss, duplication, reordering and partitions. Safe for
// concurrent use. Its timers use the standard clock, so under
// testing/synctest time is virtual.
type MemNetwork struct {
	mu        sync.Mutex
	rng       *rand.Rand
	loss      float64
	dup       float64
	reorder   float64
	maxDelay  time.Duration
	nodes     map[netip.AddrPort]*memLink
	group     map[uuid.UUID]int // partition group per member; absent: group 0
	isolated  map[uuid.UUID]bool
	drop      func(from, to uuid.UUID, p PacketInfo) bool
	nextHost  uint32
	dropped   uint64
	queueSize int
}

// NewMemNetwork returns an empty network whose random choices come from seed.
func NewMemNetwork(seed int64) *MemNetwork {
	return &MemNetwork{
		rng:       rand.New(rand.NewPCG(uint64(seed), 0x68616e6f6465)),
		maxDelay:  3 * time.Millisecond,
		nodes:     make(map[netip.AddrPort]*memLink),
		group:     make(map[uuid.UUID]int),
		isolated:  make(map[uuid.UUID]bool),
		queueSize: 8192,
	}
}

// SetLoss sets the probability that a datagram to one receiver is lost.
func (n *MemNetwork) SetLoss(p float64) { n.mu.Lock(); n.loss = p; n.mu.Unlock() }

// SetDuplicate sets the probability that a datagram is delivered twice.
func (n *MemNetwork) SetDuplicate(p float64) { n.mu.Lock(); n.dup = p; n.mu.Unlock() }

// SetReorder sets the probability that a datagram is delayed (by up to
// 3 ms), so that later datagrams overtake it.
func (n *MemNetwork) SetReorder(p float64) { n.mu.Lock(); n.reorder = p; n.mu.Unlock() }

// PacketInfo is what a MemNetwork drop filter learns of a datagram: fields
// of its header, which nothing has authenticated yet.
type PacketInfo struct {
	// Kind is the packet type: "data" (a reliable message or a fragment
	// of one), "control", "nak", "ack", "status" or "peers".
	Kind string
	// Seq is the data packet's number in its sender's stream; for the
	// other kinds, the sender's control counter.
	Seq uint64
	// HighSeq is the sender's highest data sequence number when it sent
	// the packet.
	HighSeq uint64
}

// SetDropFunc installs a filter called for every datagram and receiver
// with what the datagram's (unauthenticated) header says; returning true
// drops it. Datagrams whose header does not decode are not shown to it.
// nil removes the filter.
func (n *MemNetwork) SetDropFunc(f func(from, to uuid.UUID, p PacketInfo) bool) {
	n.mu.Lock()
	n.drop = f
	n.mu.Unlock()
}

// Partition splits the network: members in different groups cannot
// reach each other. Members not listed form one more group together.
func (n *MemNetwork) Partition(groups ...[]uuid.UUID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
	for i, g := range groups {
		for _, id := range g {
			n.group[id] = i + 1
		}
	}
}

// Heal removes every partition and isolation.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	clear(n.group)
	clear(n.isolated)
	n.mu.Unlock()
}

// Isolate cuts one member off from every other.
func (n *MemNetwork) Isolate(id uuid.UUID) {
	n.mu.Lock()
	n.isolated[id] = true
	n.mu.Unlock()
}

// Dropped reports the datagrams dropped so far (loss, filters,
// partitions, full receive queues).
func (n *MemNetwork) Dropped() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dropped
}

// Join starts a Transport on the network. cfg.Interface is ignored;
// members reach each other when their Group is equal.
func (n *MemNetwork) Join(cfg Config) (Transport, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MemberID == uuid.Nil {
		cfg.MemberID = uuid.New()
	}
	n.mu.Lock()
	n.nextHost++
	h := n.nextHost
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(h >> 16), byte(h >> 8), byte(h)}), 40000)
	l := &memLink{net: n, id: cfg.MemberID, group: cfg.Group, addr: addr, inbox: make(chan inbound, n.queueSize), done: make(chan struct{})}
	n.nodes[addr] = l
	n.mu.Unlock()
	rt := newRuntime(cfg, l)
	rt.recvBuffer = n.queueSize * cfg.MaxDatagram
	rt.start()
	return rt, nil
}

func (n *MemNetwork) reachable(a, b uuid.UUID) bool {
	return !n.isolated[a] && !n.isolated[b] && n.group[a] == n.group[b]
}

type memLink struct {
	net   *MemNetwork
	id    uuid.UUID
	group netip.AddrPort
	addr  netip.AddrPort
	inbox chan inbound
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func (l *memLink) send(b []byte, to netip.AddrPort) error {
	n := l.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[l.addr] != l {
		return ErrClosed
	}
	if to.IsValid() {
		dst := n.nodes[to]
		if dst == nil {
			n.dropped++
			return nil
		}
		n.transmit(l, dst, b)
		return nil
	}
	for _, dst := range n.nodes {
		if dst != l && dst.group == l.group {
			n.transmit(l, dst, b)
		}
	}
	return nil
}

// transmit delivers one copy of b to dst under the network's faults.
// Called with n.mu held.
func (n *MemNetwork) transmit(src, dst *memLink, b []byte) {
	if !n.reachable(src.id, dst.id) || (n.loss > 0 && n.rng.Float64() < n.loss) {
		n.dropped++
		return
	}
	if n.drop != nil {
		if h, err := packet.DecodeHeader(b); err == nil && n.drop(src.id, dst.id, PacketInfo{Kind: h.Type.String(), Seq: h.Seq, HighSeq: h.HighSeq}) {
			n.dropped++
			return
		}
	}
	copies := 1
	if n.dup > 0 && n.rng.Float64() < n.dup {
		copies = 2
	}
	for range copies {
		c := append([]byte(nil), b...)
		if n.reorder > 0 && n.rng.Float64() < n.reorder {
			d := time.Duration(n.rng.Int64N(int64(n.maxDelay))) + time.Microsecond
			time.AfterFunc(d, func() {
				n.mu.Lock()
				defer n.mu.Unlock()
				n.enqueue(src, dst, c)
			})
			continue
		}
		n.enqueue(src, dst, c)
	}
}

func (n *MemNetwork) enqueue(src, dst *memLink, b []byte) {
	if n.nodes[dst.addr] != dst {
		return // closed meanwhile
	}
	select {
	case dst.inbox <- inbound{b, src.addr}:
	default:
		n.dropped++ // receive queue full, as a kernel would
	}
}

func (l *memLink) start(recv func([]byte, netip.AddrPort) bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case in := <-l.inbox:
				if !recv(in.b, in.from) {
					return
				}
			case <-l.done:
				return
			}
		}
	}()
}

func (l *memLink) close() error {
	l.once.Do(func() {
		l.net.mu.Lock()
		delete(l.net.nodes, l.addr)
		l.net.mu.Unlock()
		close(l.done)
	})
	l.wg.Wait()
	return nil
}

func (l *memLink) String() string { return fmt.Sprintf("mem %s %s", l.id, l.addr) }
