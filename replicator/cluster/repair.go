package cluster

// Scheduling of state transfer and anti-entropy: the join (a full
// transfer from the oldest ready member, retried elsewhere), repairs of a
// member this node fell behind, and the periodic anti-entropy round. The
// TCP protocol they run is in transfer.go.

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/membership"
)

var errNoDonor = errors.New("cluster: no member to transfer state from")

// joinAndRepair makes the node ready: it loads the cluster's sessions from
// a ready member (the oldest first), or declares itself the first member
// when nobody else is there. Then it runs anti-entropy rounds.
func (n *Node) joinAndRepair() {
	start := n.now()
	staleAtStart := n.tr.Stats().Rejected["stale"]
	// Join probe: this node's first heartbeat goes out at start and every
	// member answers a newcomer's heartbeat at its next tick (membership),
	// besides its own heartbeat every interval. A node that hears nobody
	// and no traffic within the probe window (two heartbeat intervals, at
	// least 400ms: a loaded member may answer late) is the first member
	// and is ready at once; one that hears anybody (or has packets refused
	// as stale, see below) waits for the cluster (JoinTimeout) as below.
	probe := min(max(2*n.cfg.HeartbeatInterval, 400*time.Millisecond), n.cfg.JoinTimeout)
	if !n.sleep(probe) {
		return
	}
	first := n.noneHeard() && n.tr.Stats().Rejected["stale"] == staleAtStart
	if first {
		n.log.Info("nobody answered the join probe; starting as the first member", "after", probe)
	}
	for !first && n.ctx.Err() == nil {
		donors := n.readyPeers()
		if len(donors) > 0 {
			if n.transferFrom(donors) == nil {
				break
			}
			if !n.sleep(retryBackoff) {
				return
			}
			continue
		}
		if n.since(start) >= n.cfg.JoinTimeout && n.isOldest() {
			// Traffic from a sender that membership does not list yet
			// (its heartbeats queued behind a burst) means a cluster is
			// there: wait for it rather than start empty, for a while.
			// So do first packets of unknown senders refused as stale:
			// a cluster whose clocks are apart from this host's (or a
			// replay of old traffic: the wait is bounded).
			stale := n.tr.Stats().Rejected["stale"] - staleAtStart
			if (n.lastSender.Load() > 0 || stale > 0) && len(n.alivePeers()) == 0 &&
				n.since(start) < 10*n.cfg.JoinTimeout {
				if !n.sleep(100 * time.Millisecond) {
					return
				}
				continue
			}
			if stale > 0 && len(n.alivePeers()) == 0 {
				n.log.Error("starting as the first member although packets of other senders were refused as stale: if this host's clock is apart from the others' by more than the tolerated skew, this node now serves sessions apart from the cluster; synchronise the clocks (NTP) and restart it",
					"stale_packets", stale)
			} else {
				n.log.Info("no ready member found; starting as the first member", "peers", len(n.alivePeers()))
			}
			break
		}
		if !n.sleep(100 * time.Millisecond) {
			return
		}
	}
	if n.ctx.Err() != nil {
		return
	}
	n.ready.Store(true)
	if !n.draining.Load() {
		n.setMeta(metaReady, "1")
	}
	n.log.Info("ready", "sessions", n.replica.Len(), "after", n.since(start).Round(time.Millisecond))

	for {
		if !n.sleep(n.rand.jitter(n.cfg.AntiEntropyInterval)) {
			return
		}
		peers := n.readyPeers()
		if len(peers) == 0 {
			continue
		}
		n.requestRepair(peers[n.rand.intN(len(peers))].ID)
	}
}

// requestRepair runs an anti-entropy round with member id, one round at a
// time: a request made while a round runs is folded into one more round
// after it (with the latest member asked for), so that a node that falls
// behind under load does not start a digest and a transfer per event.
func (n *Node) requestRepair(id uuid.UUID) {
	n.repairMu.Lock()
	if n.repairRunning {
		n.repairNext, n.repairAgain = id, true
		n.repairMu.Unlock()
		return
	}
	if n.ctx.Err() != nil {
		n.repairMu.Unlock()
		return
	}
	n.repairRunning = true
	n.repairMu.Unlock()
	n.goRun(func() {
		delay := n.rand.jitter(2 * n.cfg.HeartbeatInterval)
		for {
			if n.sleep(delay) {
				n.repairFrom(id)
			}
			n.repairMu.Lock()
			if !n.repairAgain || n.ctx.Err() != nil {
				n.repairRunning, n.repairAgain = false, false
				n.repairMu.Unlock()
				return
			}
			id, n.repairAgain = n.repairNext, false
			n.repairMu.Unlock()
			delay = time.Second
		}
	})
}

// transferFrom pulls the full state from the first donor that succeeds.
func (n *Node) transferFrom(donors []membership.Member) error {
	for _, m := range donors {
		addr := m.Meta[metaTransfer]
		t0 := n.now()
		n.log.Info("state transfer starting", "peer", m.Name, "addr", addr)
		ctx, cancel := context.WithCancel(n.ctx)
		n.transferring.Store(true)
		lastLog := n.now()
		got, _, err := n.fetch(ctx, addr, true, func(got, total int64) {
			n.xferGot.Store(got)
			n.xferTotal.Store(total)
			if n.since(lastLog) >= 2*time.Second {
				lastLog = n.now()
				n.log.Info("state transfer progress", "peer", m.Name, "received", got, "total", total)
			}
		})
		n.transferring.Store(false)
		cancel()
		if err != nil {
			n.stats.transferFailures.Add(1)
			n.log.Warn("state transfer failed; trying another member", "peer", m.Name, "received", got, "err", err)
			continue
		}
		el := n.since(t0)
		n.stats.transfers.Add(1)
		n.stats.transferSeconds.Store(int64(el))
		n.stats.transferSessions.Store(uint64(got))
		n.log.Info("state transfer done", "peer", m.Name, "records", got, "took", el.Round(time.Millisecond))
		return nil
	}
	return errNoDonor
}

// repairFrom runs one anti-entropy round with a member: it pulls the
// sessions of every bucket whose digest differs. Callers go through
// requestRepair.
func (n *Node) repairFrom(id uuid.UUID) {
	if n.ctx.Err() != nil {
		return
	}
	var addr, name string
	for _, m := range n.alivePeers() {
		if m.ID == id {
			addr, name = m.Meta[metaTransfer], m.Name
		}
	}
	if addr == "" {
		// The sender is gone: repair from any ready member instead.
		peers := n.readyPeers()
		if len(peers) == 0 {
			return
		}
		m := peers[n.rand.intN(len(peers))]
		addr, name = m.Meta[metaTransfer], m.Name
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*n.cfg.TransferTimeout)
	defer cancel()
	got, changed, err := n.fetch(ctx, addr, false, nil)
	n.stats.aeRounds.Add(1)
	n.stats.aeRepaired.Add(uint64(changed))
	if err != nil {
		n.log.Warn("anti-entropy round failed", "peer", name, "err", err)
		return
	}
	if changed > 0 {
		n.log.Info("anti-entropy repaired sessions", "peer", name, "received", got, "repaired", changed)
	}
}

// sleep waits d or until the node stops; it reports whether to go on.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}
