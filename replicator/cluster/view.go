package cluster

// The node as operators see it: readiness, draining, the session
// listing, members and status (the admin API reads these).

import (
	"fmt"
	"sort"

	"github.com/hanode/hanode/replicator"
)

// Ready reports whether the node has joined, holds the cluster's sessions,
// is not draining and can honour its configured consistency: a Sync or
// SyncAll node is not ready while no live peer acknowledges its commits
// (see Status.NotReadyReason).
func (n *Node) Ready() bool {
	return n.ready.Load() && !n.draining.Load() && n.replicationProblem() == ""
}

// Loaded reports whether the node has held the cluster's sessions since
// it was first ready (its state transfer done): unlike Ready it stays true
// while draining or while sync replication fails. Before, the node cannot
// tell a session it was not sent yet from one that does not exist
// (resp.Config.Ready).
func (n *Node) Loaded() bool { return n.ready.Load() }

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
