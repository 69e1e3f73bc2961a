package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// Payload kinds: the first byte of every payload this package sends over
// the transport. Append-only.
const (
	kindDeltas     byte = 1 // reliable: a batch of deltas
	kindMembership byte = 2 // control: a membership message
)

// Meta keys gossiped in membership heartbeats.
const (
	metaTransfer = "transfer" // TCP address of the state-transfer server
	metaReady    = "ready"    // "1" once the node holds the cluster's sessions
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("cluster: invalid config")

// Node is a running cluster member. It implements replicator.Store.
type Node struct {
	cfg     Config
	log     *slog.Logger
	id      uuid.UUID
	started time.Time

	replica *replicator.Replica
	clock   *replicator.Clock
	subs    replicator.Subscribers
	tr      multicast.Transport
	ln      net.Listener // state-transfer server
	preAuth preAuth      // its connections not authenticated yet

	preAuthWarned atomic.Int64 // unix ns of the last warning about an unauthenticated transfer failure

	memMu sync.Mutex
	mem   *membership.Machine

	sendMu  sync.Mutex
	pending *batch           // deltas not yet broadcast
	touches map[string]int64 // batched last-access times
	kick    chan struct{}    // wakes the flusher

	lastSender atomic.Int64 // unix nanoseconds of the last EventNewSender
	gate       deltaGate    // batches of senders that are not members (yet)

	decodeMu  sync.Mutex
	decodeBuf []*replicator.Delta // applyBatch's reused slice, under decodeMu

	aliveLn     net.Listener // liveness.go; nil without one
	goneMu      sync.Mutex
	goneChecked map[uuid.UUID]time.Time // quiet members whose listener was last tried (liveness.go)

	repairMu      sync.Mutex
	repairRunning bool      // an anti-entropy round is under way
	repairNext    uuid.UUID // asked for while one ran: run one more, with this member
	repairAgain   bool

	transferring atomic.Bool  // a join state transfer is under way
	xferGot      atomic.Int64 // records received by the join transfer
	xferTotal    atomic.Int64 // records announced by the donor

	ready    atomic.Bool
	draining atomic.Bool
	closing  atomic.Bool

	// Sync replication health (commit.go): readiness fails while sync
	// commits go unacknowledged.
	replMu           sync.Mutex
	replFailingSince time.Time // zero: healthy
	replReason       string    // last failure reason
	probing          bool      // an acknowledgement probe is in flight
	lastProbe        time.Time

	stats nodeStats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// batch is a set of deltas broadcast in one transport message. Deltas of
// one session are coalesced while the batch is open.
type batch struct {
	deltas []*replicator.Delta
	byID   map[string]int // index into deltas
	size   int            // approximate encoded size
	ack    bool           // a sync commit waits on it
	done   chan struct{}  // closed once broadcast (or failed)
	seq    uint64
	err    error
}

func newBatch() *batch {
	return &batch{byID: make(map[string]int), done: make(chan struct{})}
}

// nodeStats are counters for WriteMetrics.
type nodeStats struct {
	commits          atomic.Uint64
	commitErrors     atomic.Uint64
	syncTimeouts     atomic.Uint64
	shed             atomic.Uint64
	broadcastErrors  atomic.Uint64
	transferRejected atomic.Uint64
	transferEvicted  atomic.Uint64 // unauthenticated transfer connections closed to make room
	deltasSent       atomic.Uint64
	deltasApplied    atomic.Uint64
	deltasRejected   atomic.Uint64
	batchesSent      atomic.Uint64
	touchesSent      atomic.Uint64
	transfers        atomic.Uint64
	transferFailures atomic.Uint64
	transferSeconds  atomic.Int64 // nanoseconds of the last successful join transfer
	transferSessions atomic.Uint64
	aeRounds         atomic.Uint64
	aeRepaired       atomic.Uint64
	behind           atomic.Uint64
	lagNanos         atomic.Int64 // last observed replication lag (commit HLC to apply), nanoseconds
	lag              histogram    // replication lag of every delta received
	expired          atomic.Uint64
	noPeersWarned    atomic.Bool
	aloneSince       atomic.Int64
	syncFailures     [numFailReasons]atomic.Uint64 // sync commits that failed, by reason
	loneAccepted     atomic.Uint64                 // sync commits accepted unreplicated by a lone survivor
	probes           atomic.Uint64                 // acknowledgement probes sent
	lastFailLog      atomic.Int64                  // unix nanoseconds of the last rate-limited failure log
	failLogsDropped  atomic.Uint64
}

func (c *Config) setDefaults() {
	if c.ClusterName == "" {
		c.ClusterName = "hanode"
	}
	if !c.Group.IsValid() {
		c.Group = multicast.DefaultGroup
	}
	if c.TTL == 0 {
		c.TTL = 1
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 100 * time.Millisecond
	}
	if c.TransferTimeout == 0 {
		c.TransferTimeout = 10 * time.Second
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 2 * time.Second
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = 15 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = membership.DefaultHeartbeatInterval
	}
	if c.MaxSessionBytes == 0 {
		c.MaxSessionBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.Node == "" {
		return fmt.Errorf("%w: node name is required", ErrConfig)
	}
	if !membership.ValidName(c.Node) {
		return fmt.Errorf("%w: node name %q is not 1 to %d of A-Z a-z 0-9 _ - (membership.ValidName)", ErrConfig, c.Node, membership.MaxNameLen)
	}
	if c.Interface == "" {
		return fmt.Errorf("%w: interface is required (a name such as eth0 or an IPv4 address)", ErrConfig)
	}
	if c.Keyring == nil {
		return fmt.Errorf("%w: a cluster key is required", ErrConfig)
	}
	if !c.Group.Addr().Is4() || !c.Group.Addr().IsMulticast() {
		return fmt.Errorf("%w: group %s is not an IPv4 multicast address", ErrConfig, c.Group)
	}
	return nil
}

// Start joins the cluster and returns at once; the node becomes ready
// (Ready) once it holds the cluster's sessions.
func Start(cfg Config) (*Node, error) {
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	_, ifacePrefix, err := multicast.LookupInterface(n.cfg.Interface)
	if err == nil && !ifacePrefix.IsValid() {
		err = fmt.Errorf("interface %q has no IPv4 address", n.cfg.Interface)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: interface: %v", ErrConfig, err)
	}
	ifaceIP := ifacePrefix.Addr()
	taddr := n.cfg.TransferAddr
	if taddr == "" {
		taddr = net.JoinHostPort(ifaceIP.String(), "0")
	}
	ln, err := net.Listen("tcp4", taddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: state-transfer listener: %w", err)
	}
	tr, err := multicast.Listen(n.transportConfig())
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := n.startWith(tr, ln); err != nil {
		tr.Close()
		ln.Close()
		return nil, err
	}
	return n, nil
}

// StartOn is Start over a transport and a state-transfer listener that
// the caller made, for example a multicast.MemNetwork in tests and
// benchmarks. The node owns both from then on; cfg.Interface is not used.
func StartOn(cfg Config, tr multicast.Transport, ln net.Listener) (*Node, error) {
	if cfg.Interface == "" {
		cfg.Interface = "in-memory"
	}
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.startWith(tr, ln); err != nil {
		return nil, err
	}
	return n, nil
}

// TransportConfig returns the multicast configuration that Start would
// use for cfg, for callers of StartOn.
func TransportConfig(cfg Config) multicast.Config {
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Node)}
	return n.transportConfig()
}

// newNode validates cfg and builds the replica, loading the snapshot.
func newNode(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Node),
		id:      uuid.New(),
		started: time.Now(),
		clock:   &replicator.Clock{},
		touches: make(map[string]int64),
		kick:    make(chan struct{}, 1),
		pending: newBatch(),
	}
	n.replica = replicator.NewReplica(replicator.ReplicaConfig{
		MaxSessionBytes: cfg.MaxSessionBytes,
		OnEvent:         n.subs.Chain(nil),
	})
	if cfg.SnapshotFile != "" {
		if err := n.loadSnapshot(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *Node) transportConfig() multicast.Config {
	mcfg := multicast.DefaultConfig()
	mcfg.ClusterName = n.cfg.ClusterName
	mcfg.Group = n.cfg.Group
	mcfg.Interface = n.cfg.Interface
	mcfg.TTL = n.cfg.TTL
	mcfg.Loopback = n.cfg.Loopback
	mcfg.Peers = n.cfg.Peers
	mcfg.Discovery = n.cfg.Discovery
	mcfg.Keyring = n.cfg.Keyring
	mcfg.MemberID = n.id
	mcfg.Logger = n.log
	return mcfg
}

// startWith runs the node over an existing transport (the in-memory one in
// tests) and a state-transfer listener.
func (n *Node) startWith(tr multicast.Transport, ln net.Listener) error {
	n.tr = tr
	n.ln = ln
	n.id = tr.LocalID()
	mcfg := membership.DefaultConfig()
	mcfg.ID = n.id
	mcfg.Name = n.cfg.Node
	mcfg.Started = n.started
	// Failure detection in heartbeat intervals, as membership's defaults
	// (200ms: probe after 0.6s of silence, suspect after 1.2s, dead after
	// 2s; a killed process is dead after 0.6s, see liveness.go).
	mcfg.HeartbeatInterval = n.cfg.HeartbeatInterval
	mcfg.ProbeTimeout = 3 * n.cfg.HeartbeatInterval
	mcfg.SuspectTimeout = 6 * n.cfg.HeartbeatInterval
	mcfg.DeadTimeout = 10 * n.cfg.HeartbeatInterval
	mcfg.Meta = map[string]string{metaTransfer: n.ln.Addr().String(), metaReady: "0"}
	if a := n.listenLiveness(); a != "" {
		mcfg.Meta[metaAlive] = a
	}
	m, err := membership.New(mcfg, time.Now())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	n.mem = m
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.stats.aloneSince.Store(time.Now().UnixNano())

	n.goRun(n.receiveLoop)
	n.goRun(n.eventLoop)
	n.goRun(n.tickLoop)
	n.goRun(n.flushLoop)
	n.goRun(n.expiryLoop)
	n.goRun(n.serveTransfers)
	n.goRun(n.serveLiveness)
	n.goRun(n.joinAndRepair)
	if n.cfg.SnapshotFile != "" && n.cfg.SnapshotInterval > 0 {
		n.goRun(n.snapshotLoop)
	}
	n.log.Info("node started", "member", n.id.String()[:8], "group", n.cfg.Group.String(),
		"interface", n.cfg.Interface, "transfer", n.ln.Addr().String())
	return nil
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Node returns this node's name.
func (n *Node) Node() string { return n.cfg.Node }

// ID returns this process's member ID.
func (n *Node) ID() uuid.UUID { return n.id }

// ReplicaConfig returns the replica's limits and timings (the
// replicator.ReplicaConfig in effect).
func (n *Node) ReplicaConfig() replicator.ReplicaConfig { return n.replica.Config() }

// Ready reports whether the node has joined, holds the cluster's sessions,
// is not draining and can honour its configured consistency: a Sync or
// SyncAll node is not ready while no live peer acknowledges its commits
// (see Status.NotReadyReason).
func (n *Node) Ready() bool {
	return n.ready.Load() && !n.draining.Load() && n.replicationProblem() == ""
}

// Drain makes readiness fail so that load balancers move traffic away;
// the node keeps serving and replicating.
func (n *Node) Drain() {
	if !n.draining.Swap(true) {
		n.log.Info("draining")
		n.setMeta(metaReady, "0")
	}
}

// Draining reports whether Drain was called.
func (n *Node) Draining() bool { return n.draining.Load() }

func (n *Node) setMeta(k, v string) {
	n.memMu.Lock()
	n.mem.SetMeta(k, v)
	n.memMu.Unlock()
}

// Get returns the live session with this ID, or nil.
func (n *Node) Get(id string) *replicator.Session { return n.replica.Get(id) }

// SessionsOf returns the live sessions of a principal.
func (n *Node) SessionsOf(p string) []string { return n.replica.SessionsOf(p) }

// Len returns the number of live sessions.
func (n *Node) Len() int { return n.replica.Len() }

// Sessions returns the live sessions, for admin listings.
func (n *Node) Sessions() []*replicator.Session {
	var out []*replicator.Session
	n.replica.Range(func(s *replicator.Session) bool {
		if !s.Destroyed {
			out = append(out, s)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return out
}

// Members returns the members as this node sees them, self included.
func (n *Node) Members() []MemberInfo {
	n.memMu.Lock()
	ms := n.mem.Members()
	n.memMu.Unlock()
	out := make([]MemberInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, MemberInfo{
			ID:       m.ID.String(),
			Name:     m.Name,
			Addr:     m.Meta[metaTransfer],
			State:    m.State.String(),
			Self:     m.ID == n.id,
			Ready:    m.Meta[metaReady] == "1",
			Started:  m.Started,
			LastSeen: m.LastSeen,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Started.Before(out[j].Started)
	})
	return out
}

// Status summarises the node.
func (n *Node) Status() Status {
	n.memMu.Lock()
	v := n.mem.View()
	n.memMu.Unlock()
	phase := "joining"
	switch {
	case n.draining.Load():
		phase = "draining"
	case n.ready.Load():
		phase = "ready"
	case n.transferring.Load():
		phase = "transferring"
	}
	n.sendMu.Lock()
	pending := len(n.pending.deltas)
	n.sendMu.Unlock()
	reason := ""
	switch {
	case n.draining.Load():
		reason = "draining"
	case !n.ready.Load():
		reason = phase + ": the node does not hold the cluster's sessions yet"
	default:
		reason = n.replicationProblem()
	}
	return Status{
		Replication:      n.replicationState(),
		NotReadyReason:   reason,
		Node:             n.cfg.Node,
		ID:               n.id.String(),
		Ready:            n.Ready(),
		Draining:         n.draining.Load(),
		Sessions:         n.replica.Len(),
		Members:          len(v.Members),
		ViewID:           fmt.Sprintf("%016x", v.ID),
		Phase:            phase,
		TransferReceived: n.xferGot.Load(),
		TransferTotal:    n.xferTotal.Load(),
		PendingDeltas:    pending + n.tr.Stats().SendQueueLen,
	}
}

// alivePeers returns the alive members other than this node.
// alivePeerCount is len(n.alivePeers()) without copying the members: the
// sync commit path asks it on every commit.
func (n *Node) alivePeerCount() int {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	return n.mem.Count(membership.Alive)
}

func (n *Node) alivePeers() []membership.Member {
	n.memMu.Lock()
	ms := n.mem.Members()
	n.memMu.Unlock()
	var out []membership.Member
	for _, m := range ms {
		if m.ID != n.id && m.State == membership.Alive {
			out = append(out, m)
		}
	}
	return out
}

// receiveLoop applies what the transport delivers.
func (n *Node) receiveLoop() {
	for msg := range n.tr.Messages() {
		if len(msg.Payload) == 0 {
			continue
		}
		now := time.Now()
		switch msg.Payload[0] {
		case kindMembership:
			n.memMu.Lock()
			err := n.mem.Step(msg.From, msg.Payload[1:], now)
			n.memMu.Unlock()
			if err != nil {
				n.log.Debug("bad membership message", "peer", msg.From.String()[:8], "err", err)
			}
			n.releaseHeldOf(msg.From, now) // its heartbeat may admit a sender whose deltas are held: fresh.go
		case kindDeltas:
			n.receiveDeltas(msg.From, msg.Payload[1:], now) // only from members: fresh.go
		default:
			n.log.Debug("unknown payload kind", "kind", msg.Payload[0], "peer", msg.From.String()[:8])
		}
	}
}

func (n *Node) applyBatch(b []byte, now time.Time) {
	// The receive loop reuses one slice; a concurrent caller (the tick
	// loop releasing held batches) allocates its own.
	var buf []*replicator.Delta
	locked := n.decodeMu.TryLock()
	if locked {
		defer n.decodeMu.Unlock()
		buf = n.decodeBuf
	}
	ds, err := replicator.DecodeBatchInto(buf, b)
	if locked {
		n.decodeBuf = ds
	}
	defer clear(ds) // keep no delta alive until the next batch (runs before the unlock)
	if err != nil {
		n.stats.deltasRejected.Add(1)
		n.log.Warn("undecodable delta batch", "err", err)
		return
	}
	wall := now.UnixNano()
	for _, d := range ds {
		n.clock.Update(d.HLC, wall)
		if _, err := n.replica.Apply(d); err != nil {
			n.stats.deltasRejected.Add(1)
			n.log.Warn("delta rejected", "session", replicator.ShortHash(d.ID), "err", err)
			continue
		}
		n.stats.deltasApplied.Add(1)
		// Touches are batched for a second by design: they say nothing
		// of replication lag.
		if ts := replicator.HLCWall(d.HLC); ts > 0 && !d.TouchOnly() {
			n.stats.lagNanos.Store(wall - ts)
			n.stats.lag.observe(time.Duration(wall - ts))
		}
	}
}

// eventLoop reacts to transport events.
func (n *Node) eventLoop() {
	for ev := range n.tr.Events() {
		switch ev.Kind {
		case multicast.EventNewSender:
			n.lastSender.Store(time.Now().UnixNano())
		case multicast.EventBehind:
			n.stats.behind.Add(1)
			n.log.Warn("fell behind a sender; repairing by anti-entropy", "peer", ev.From.String()[:8])
			n.requestRepair(ev.From)
		}
	}
}

// tickLoop drives the membership machine.
func (n *Node) tickLoop() {
	tick := func(now time.Time) {
		n.memMu.Lock()
		n.mem.Tick(now)
		rd := n.mem.Ready()
		n.memMu.Unlock()
		n.sendMembership(rd)
		n.handleMemberEvents(rd.Events)
		n.releaseHeld(now)
		n.checkAlone(now)
		n.checkReplication(now)
		n.checkGone(now)
	}
	// The first tick at once: it sends the first heartbeat, which is this
	// node's join probe (see joinAndRepair).
	tick(time.Now())
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			tick(now)
		}
	}
}

func (n *Node) sendMembership(rd membership.Ready) {
	for _, o := range rd.Messages {
		p := make([]byte, 0, len(o.Payload)+1)
		p = append(p, kindMembership)
		p = append(p, o.Payload...)
		if err := n.tr.SendControl(o.To, p); err != nil && !n.closing.Load() {
			n.log.Debug("send membership", "err", err)
		}
	}
}

func (n *Node) handleMemberEvents(evs []membership.Event) {
	for _, ev := range evs {
		m := ev.Member
		if m.ID == n.id {
			continue
		}
		switch ev.Kind {
		case membership.EventJoined, membership.EventRecovered:
			n.log.Info("member "+ev.Kind.String(), "peer", m.Name, "member", m.ID.String()[:8])
			if x, ok := n.tr.(multicast.MemberLiveness); ok {
				x.MemberDown(m.ID, false)
			}
			// A member that comes back (a healed partition) may hold
			// writes this node never saw: reconcile at once.
			if n.ready.Load() {
				n.requestRepair(m.ID)
			}
		case membership.EventDied:
			// The transport keeps its state: a member declared dead
			// behind a partition comes back with the same ID when the
			// network heals, and its packets must be accepted again.
			// Only a member that left (or was replaced by a restart)
			// never sends again and is forgotten.
			n.log.Warn("member died", "peer", m.Name, "member", m.ID.String()[:8])
			if x, ok := n.tr.(multicast.MemberLiveness); ok {
				x.MemberDown(m.ID, true) // unicast: no longer sent to, unless a static or DNS peer
			}
		case membership.EventLeft:
			n.log.Info("member left", "peer", m.Name, "member", m.ID.String()[:8])
			n.tr.Forget(m.ID)
		case membership.EventSuspected:
			n.log.Warn("member suspected", "peer", m.Name, "member", m.ID.String()[:8])
		}
	}
}

// checkAlone warns loudly when HA is on but no peer has been seen for a
// while: the usual cause is a network that drops multicast.
func (n *Node) checkAlone(now time.Time) {
	if n.alivePeerCount() > 0 {
		n.stats.aloneSince.Store(0)
		n.stats.noPeersWarned.Store(false)
		return
	}
	since := n.stats.aloneSince.Load()
	if since == 0 {
		n.stats.aloneSince.Store(now.UnixNano())
		return
	}
	unicast := len(n.cfg.Peers) > 0 || n.cfg.Discovery != ""
	if unicast && now.UnixNano()-since > int64(30*time.Second) && !n.stats.noPeersWarned.Swap(true) {
		n.log.Warn("no peers seen for 30s although HA is on: check that UDP reaches the peers on the group's port (hanode probe --peer), the peer list or discovery name, and the firewall",
			"peers", strings.Join(n.cfg.Peers, ","), "discovery", n.cfg.Discovery, "interface", n.cfg.Interface)
	} else if now.UnixNano()-since > int64(30*time.Second) && !n.stats.noPeersWarned.Swap(true) {
		n.log.Warn("no peers seen for 30s although HA is on: check that multicast works between the hosts (hanode probe), the interface, TTL, firewall and IGMP snooping",
			"group", n.cfg.Group.String(), "interface", n.cfg.Interface)
	}
}

// expiryLoop destroys expired sessions, driven by the replica's next
// deadline rather than by scans.
func (n *Node) expiryLoop() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			ids := n.replica.Expire(now.UnixNano(), func(s *replicator.Session) bool { return s.Owner == n.cfg.Node })
			n.stats.expired.Add(uint64(len(ids)))
			wait := time.Second
			if next := n.replica.NextExpiry(); next > 0 {
				if d := time.Duration(next - time.Now().UnixNano()); d < wait {
					wait = max(d, 10*time.Millisecond)
				}
			}
			t.Reset(wait)
		}
	}
}

// Range calls fn with the ID of every live session until fn returns false.
func (n *Node) Range(fn func(id string) bool) { n.replica.RangeLive(fn) }

// Subscribe registers fn for the replica's lifecycle events: creations and
// destructions, whether caused here, by a peer's delta or by expiry.
func (n *Node) Subscribe(fn func(replicator.Event)) { n.subs.Add(fn) }

// Close drains, flushes pending deltas, announces the leave, writes the
// snapshot and stops. Sessions are never expired cluster-wide by it.
func (n *Node) Close() error {
	if n.closing.Swap(true) {
		return nil
	}
	n.Drain()
	n.flushNow()
	n.memMu.Lock()
	n.mem.Leave()
	rd := n.mem.Ready()
	n.memMu.Unlock()
	n.sendMembership(rd)
	// Give the transport a moment to answer repair requests for our tail.
	time.Sleep(200 * time.Millisecond)
	var errs []error
	// A node that never became ready holds only part of the cluster's
	// sessions: it must not overwrite a complete snapshot.
	if n.cfg.SnapshotFile != "" && n.ready.Load() {
		if err := n.saveSnapshot(); err != nil {
			errs = append(errs, err)
		}
	}
	n.cancel()
	n.ln.Close()
	errs = append(errs, n.tr.Close())
	n.wg.Wait()
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

func (n *Node) loadSnapshot() error {
	cnt, err := replicator.LoadFile(n.cfg.SnapshotFile, n.replica, n.cfg.ClusterName, multicast.SnapshotSealer{Keyring: n.cfg.Keyring})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: snapshot %s refused: %w", n.cfg.SnapshotFile, err)
	}
	n.log.Info("snapshot loaded", "file", n.cfg.SnapshotFile, "sessions", cnt)
	return nil
}

// snapshotLoop saves the snapshot periodically once the node is ready
// (before that, the replica may not hold the cluster's sessions yet and
// would overwrite a better snapshot).
func (n *Node) snapshotLoop() {
	for n.sleep(n.cfg.SnapshotInterval) {
		if !n.ready.Load() {
			continue
		}
		if err := n.saveSnapshot(); err != nil {
			n.log.Error("periodic snapshot failed", "err", err)
		}
	}
}

func (n *Node) saveSnapshot() error {
	if _, err := replicator.SaveFile(n.cfg.SnapshotFile, n.replica, n.cfg.ClusterName, multicast.SnapshotSealer{Keyring: n.cfg.Keyring}); err != nil {
		return fmt.Errorf("cluster: write snapshot: %w", err)
	}
	n.log.Info("snapshot written", "file", n.cfg.SnapshotFile, "sessions", n.replica.Len())
	return nil
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
