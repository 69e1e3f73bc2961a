package cluster

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/membership"
)

// Deltas are applied only from members this node's membership admitted:
// alive or suspect ones, and dead or left ones still listed (the tail of a
// member that crashed, repaired by the others, or that it flushed before
// its leave). The transport already refuses replays of every sender it
// has heard (sequence numbers) and stale first packets of the others
// (timestamps); this gate is for what remains: a first packet within the
// clock skew from a sender that membership never admitted, such as a
// restarted node's previous process or a replay of it. Such a batch is
// held, bounded, for a few heartbeats (the heartbeat of a real new
// member may simply come after its first deltas) and applied in order
// once the sender is admitted, or refused and counted.
const (
	maxHeldBytes     = 8 << 20 // held batches, all senders together
	maxHeldPerSender = 256     // held batches per sender
)

// refusal reasons of delta batches (hanode_replication_batches_refused_total).
const (
	refusedNotMember = "not_member" // membership never admitted the sender (in time)
	refusedHeldFull  = "held_full"  // the bound on held batches was reached
)

type heldSender struct {
	batches [][]byte
	bytes   int
	since   time.Time
}

// deltaGate holds the batches of senders that are not current members.
type deltaGate struct {
	mu      sync.Mutex
	senders map[uuid.UUID]*heldSender
	bytes   int
	refused map[string]uint64
}

func (g *deltaGate) count(reason string, n int) {
	if g.refused == nil {
		g.refused = make(map[string]uint64)
	}
	g.refused[reason] += uint64(n)
}

// refusedCounts returns a copy of the refusal counters.
func (g *deltaGate) refusedCounts() map[string]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]uint64{refusedNotMember: 0, refusedHeldFull: 0}
	for k, v := range g.refused {
		out[k] = v
	}
	return out
}

// memberState returns the membership state of id (0 when unknown).
// Callers hold memMu.
func (n *Node) memberState(id uuid.UUID) membership.State {
	m, ok := n.mem.Member(id)
	if !ok {
		return 0
	}
	return m.State
}

// admitted reports whether deltas of a member in state s are applied.
func admitted(s membership.State) bool { return s != 0 }

// receiveDeltas applies a batch from an admitted member (after anything
// held of it) and holds one from a sender that may yet be admitted.
func (n *Node) receiveDeltas(from uuid.UUID, b []byte, now time.Time) {
	n.memMu.Lock()
	n.mem.Observe(from, now)
	st := n.memberState(from)
	n.memMu.Unlock()
	g := &n.gate
	g.mu.Lock()
	h := g.senders[from]
	if admitted(st) {
		var held [][]byte
		if h != nil {
			held = h.batches
			g.bytes -= h.bytes
			delete(g.senders, from)
		}
		g.mu.Unlock()
		for _, hb := range held {
			n.applyBatch(hb, now)
		}
		n.applyBatch(b, now)
		return
	}
	if h == nil {
		h = &heldSender{since: now}
		if g.senders == nil {
			g.senders = make(map[uuid.UUID]*heldSender)
		}
		g.senders[from] = h
	}
	if g.bytes+len(b) > maxHeldBytes || len(h.batches) >= maxHeldPerSender {
		g.count(refusedHeldFull, 1)
		g.mu.Unlock()
		return
	}
	h.batches = append(h.batches, append([]byte(nil), b...))
	h.bytes += len(b)
	g.bytes += len(b)
	g.mu.Unlock()
}

// releaseHeld applies the held batches of senders that became members
// and refuses those of senders still unknown after the dead timeout.
// Called from the tick loop.
func (n *Node) releaseHeld(now time.Time) {
	g := &n.gate
	g.mu.Lock()
	if len(g.senders) == 0 {
		g.mu.Unlock()
		return
	}
	ids := make([]uuid.UUID, 0, len(g.senders))
	for id := range g.senders {
		ids = append(ids, id)
	}
	g.mu.Unlock()
	wait := n.deadTimeout()
	for _, id := range ids {
		n.memMu.Lock()
		st := n.memberState(id)
		n.memMu.Unlock()
		g.mu.Lock()
		h := g.senders[id]
		if h == nil {
			g.mu.Unlock()
			continue
		}
		switch {
		case admitted(st):
			delete(g.senders, id)
			g.bytes -= h.bytes
			g.mu.Unlock()
			for _, b := range h.batches {
				n.applyBatch(b, now)
			}
			continue
		case now.Sub(h.since) > wait:
			delete(g.senders, id)
			g.bytes -= h.bytes
			g.count(refusedNotMember, len(h.batches))
			n.log.Warn("delta batches refused: the sender is not a member of the cluster (a previous process of a restarted node, or replayed traffic)",
				"peer", id.String()[:8], "batches", len(h.batches))
		}
		g.mu.Unlock()
	}
}

// releaseHeldOf applies at once the batches held of sender id if it is now
// admitted (its heartbeat was just stepped), rather than at the next tick.
func (n *Node) releaseHeldOf(id uuid.UUID, now time.Time) {
	g := &n.gate
	g.mu.Lock()
	_, held := g.senders[id]
	g.mu.Unlock()
	if held {
		n.releaseHeld(now)
	}
}

// deadTimeout is membership's dead timeout in this node's heartbeat
// intervals: how long a silent member lives on, and how long batches of a
// sender not yet admitted are held before they are refused.
func (n *Node) deadTimeout() time.Duration { return 10 * n.cfg.HeartbeatInterval }
