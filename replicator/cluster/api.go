// Package cluster is the runtime that joins a node to a hanode cluster: it
// owns the goroutines, the multicast transport, the membership state
// machine, state transfer and anti-entropy, and offers the local replica to
// the httpsession package as a replicator.Store.
package cluster

import (
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// Config configures a Node. Zero values take the defaults named in each
// field's comment.
type Config struct {
	Node        string         // node name, the route suffix; required
	ClusterName string         // default "hanode"; nodes of other clusters are ignored
	Group       netip.AddrPort // multicast group; default 239.255.42.99:45588
	Interface   string         // interface name or IP address to join on; required
	TTL         int            // multicast TTL; default 1
	Loopback    bool           // deliver own multicast to other processes on this host
	// Peers and Discovery select UDP unicast instead of the group, for
	// networks that drop multicast (multicast.Config.Peers and
	// .Discovery): "host[:port]" entries, or "dns:NAME". Default: none.
	Peers       []string
	Discovery   string
	Keyring     *multicast.Keyring     // cluster keys; required
	Consistency replicator.Consistency // default consistency for commits; default Async
	SyncTimeout time.Duration          // bound of a sync wait; default 100ms
	// LoneSurvivor says whether a node with no live peer accepts Sync and
	// SyncAll commits unreplicated (LoneAccept) or refuses them
	// (LoneRefuse, the default); see LoneSurvivorPolicy.
	LoneSurvivor LoneSurvivorPolicy

	// TransferAddr is the TCP address the state-transfer server listens
	// on; default: the interface's IPv4 address, port 0 (any).
	TransferAddr string
	// TransferTimeout is the progress timeout of a state transfer: it
	// fails when no chunk arrives for this long; default 10s.
	TransferTimeout time.Duration
	// JoinTimeout is how long a new node waits to hear peers before it
	// declares itself ready as the first member; default 2s.
	JoinTimeout time.Duration

	// SnapshotFile, when set, is written on graceful shutdown (and every
	// SnapshotInterval) and loaded at start. Default: none.
	SnapshotFile     string
	SnapshotInterval time.Duration // default 0: only on shutdown

	AntiEntropyInterval time.Duration // default 15s
	HeartbeatInterval   time.Duration // default 200ms; failure detection scales with it (dead after 10 intervals of silence, 3 when the process is gone)
	MaxSessionBytes     int           // default 1 MiB

	Logger *slog.Logger // default slog.Default()
}

// MemberInfo describes one member as this node sees it.
type MemberInfo struct {
	ID       string    `json:"id"`        // member ID (a new one per process start)
	Name     string    `json:"name"`      // node name (Config.Node)
	Addr     string    `json:"addr"`      // its state-transfer address
	State    string    `json:"state"`     // "alive", "suspect", "dead", "left"
	Self     bool      `json:"self"`      // this node
	Ready    bool      `json:"ready"`     // it holds the cluster's sessions
	Started  time.Time `json:"started"`   // when its process started
	LastSeen time.Time `json:"last_seen"` // last message heard from it
}

// Status is a summary of this node.
type Status struct {
	Node     string `json:"node"`     // this node's name
	ID       string `json:"id"`       // this process's member ID
	Ready    bool   `json:"ready"`    // it holds the cluster's sessions and serves
	Draining bool   `json:"draining"` // Drain was called
	Sessions int    `json:"sessions"` // live sessions in the replica
	Members  int    `json:"members"`  // members in this node's view, self included
	ViewID   string `json:"view_id"`  // hash of the member view: equal on nodes that agree

	// Phase is "joining" (listening for members), "transferring"
	// (receiving the cluster's sessions), "ready" or "draining".
	Phase string `json:"phase"`
	// TransferReceived and TransferTotal give the progress of the state
	// transfer under way (or of the last one).
	TransferReceived int64 `json:"transfer_received"`
	TransferTotal    int64 `json:"transfer_total"`
	// PendingDeltas counts deltas committed here and not yet handed to
	// the network.
	PendingDeltas int `json:"pending_deltas"`
	// Replication is "async" for an Async node; for a Sync or SyncAll
	// node "ok" (peers acknowledge), "failing" (no peer acknowledges:
	// the node is not ready) or "lone" (no live peer, and LoneAccept
	// commits unreplicated).
	Replication string `json:"replication"`
	// NotReadyReason says why Ready is false; "" when ready.
	NotReadyReason string `json:"not_ready_reason,omitempty"`
}

// These declarations document the API the rest of the module codes
// against; node.go implements them.
var (
	_ replicator.Store = (*Node)(nil)
	_ io.Writer        = io.Discard
)

// API of *Node (implemented in node.go):
//
//	func Start(cfg Config) (*Node, error)              // joins, starts state transfer; returns at once
//	func (n *Node) Ready() bool                        // joined and holds the cluster's sessions, not draining
//	func (n *Node) Members() []MemberInfo              // sorted by name, self included
//	func (n *Node) Status() Status
//	func (n *Node) Drain()                             // readiness goes false; sessions stay
//	func (n *Node) WriteMetrics(w io.Writer)           // Prometheus text, hanode_ prefix
//	func (n *Node) Close() error                       // flush, leave, snapshot, stop; never expires sessions cluster-wide
//	func (n *Node) Sessions() []*replicator.Session    // live sessions (admin listing)
//	... plus the replicator.Store methods.
