package cluster

// The node's goroutines: receiving (deltas and membership), transport
// events, the membership tick and expiry.

import (
	"time"

	"github.com/hanode/hanode/internal/hlc"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// receiveLoop applies what the transport delivers.
func (n *Node) receiveLoop() {
	for msg := range n.tr.Messages() {
		if len(msg.Payload) == 0 {
			continue
		}
		now := n.now()
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
	// The receive loop reuses one slice and the deltas in it (each batch
	// is applied before the next is decoded; Apply keeps no reference to a
	// delta); a concurrent caller (the tick loop releasing held batches)
	// allocates its own.
	var buf []*replicator.Delta
	locked := n.decodeMu.TryLock()
	if locked {
		defer n.decodeMu.Unlock()
		buf = n.decodeBuf
	}
	ds, err := codec.DecodeBatchFor(n.replica, buf, b) // IDs of known sessions are not allocated again
	if locked {
		n.decodeBuf = ds
	}
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
		if ts := hlc.Wall(d.HLC); ts > 0 && !d.TouchOnly() {
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
			n.lastSender.Store(n.now().UnixNano())
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
	tick(n.now())
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			tick(n.now())
		}
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
		case <-t.C:
			now := n.now()
			ids := n.replica.Expire(now.UnixNano(), func(s *replicator.Session) bool { return s.Owner == n.cfg.Node })
			n.stats.expired.Add(uint64(len(ids)))
			wait := time.Second
			if next := n.replica.NextExpiry(); next > 0 {
				if d := time.Duration(next - now.UnixNano()); d < wait {
					wait = max(d, 10*time.Millisecond)
				}
			}
			t.Reset(wait)
		}
	}
}
