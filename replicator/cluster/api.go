// Package cluster is the runtime that joins a node to a hanode cluster: it
// owns the goroutines, the multicast transport, the membership state
// machine, state transfer and anti-entropy, and offers the local replica to
// the httpsession package as a replicator.Store.
package cluster

import (
	"time"

	"github.com/hanode/hanode/replicator"
)

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

// Node implements the store that httpsession and the admin API use.
var _ replicator.Store = (*Node)(nil)
