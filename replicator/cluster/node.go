package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/hlc"
	"github.com/hanode/hanode/internal/subs"
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

// Node is a running cluster member. It implements replicator.Store.
type Node struct {
	cfg     Config
	log     *slog.Logger
	id      uuid.UUID
	started time.Time
	rand    *rng // Config.Rand

	replica *replicator.Replica
	clock   *hlc.Clock
	subs    subs.List[replicator.Event]
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
	// flushTok is held (one token) from taking the open batch until it
	// is handed to the transport, so that batches go out in order.
	flushTok chan struct{}

	lastSender atomic.Int64  // unix nanoseconds of the last EventNewSender
	sentSeq    atomic.Uint64 // highest sequence number broadcast (Close waits for its delivery)
	gate       deltaGate     // batches of senders that are not members (yet)

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

// newNode validates cfg and builds the replica, loading the snapshot.
func newNode(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger.With("node", cfg.Node),
		id:       uuid.New(),
		started:  cfg.Clock(),
		rand:     newRNG(cfg.Rand),
		clock:    &hlc.Clock{},
		touches:  make(map[string]int64),
		kick:     make(chan struct{}, 1),
		pending:  newBatch(),
		flushTok: make(chan struct{}, 1),
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
	mcfg.Clock = n.cfg.Clock
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
	mcfg.DeadTimeout = n.deadTimeout()
	mcfg.Meta = map[string]string{metaTransfer: n.ln.Addr().String(), metaReady: "0"}
	if a := n.listenLiveness(); a != "" {
		mcfg.Meta[metaAlive] = a
	}
	m, err := membership.New(mcfg, n.now())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	n.mem = m
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.stats.aloneSince.Store(n.now().UnixNano())

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

// closeRepairWait bounds how long Close stays to answer repair requests
// (NAKs) of peers that missed its last messages.
const closeRepairWait = 200 * time.Millisecond

// awaitTailDelivered returns once every live peer has delivered the last
// message this node broadcast, so that none of them needs a repair from
// it any more, or after closeRepairWait.
func (n *Node) awaitTailDelivered() {
	seq, peers := n.sentSeq.Load(), n.alivePeerCount()
	if seq == 0 || peers == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeRepairWait)
	defer cancel()
	n.tr.WaitAcked(ctx, seq, peers)
}

// noteSent records seq, a sequence number Broadcast returned.
func (n *Node) noteSent(seq uint64) {
	for {
		old := n.sentSeq.Load()
		if seq <= old || n.sentSeq.CompareAndSwap(old, seq) {
			return
		}
	}
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

// Get returns the live session with this ID, or nil.
func (n *Node) Get(id string) *replicator.Session { return n.replica.Get(id) }

// Load returns the live session with this ID, or nil when there is none
// (httpsession.LoadStore). Before the node is ready for the first time
// (joining, or receiving the state transfer) it cannot tell a session it
// was not sent yet from one that does not exist: it returns
// replicator.ErrNotReady for an ID it does not hold, so that the request
// fails (503) and is retried elsewhere instead of getting a new session
// in place of the user's.
func (n *Node) Load(_ context.Context, id string) (*replicator.Session, error) {
	if s := n.replica.Get(id); s != nil {
		return s, nil
	}
	if !n.ready.Load() {
		return nil, replicator.ErrNotReady
	}
	return nil, nil
}

// SessionsOf returns the live sessions of a principal.
func (n *Node) SessionsOf(p string) []string { return n.replica.SessionsOf(p) }

// Len returns the number of live sessions.
func (n *Node) Len() int { return n.replica.Len() }

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
	n.awaitTailDelivered()
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
