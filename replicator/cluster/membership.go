package cluster

// Membership glue: the state machine's messages and events, the peers
// it reports alive or ready, and which member is the oldest.

import (
	"sort"
	"strings"
	"time"

	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
)

func (n *Node) setMeta(k, v string) {
	n.memMu.Lock()
	n.mem.SetMeta(k, v)
	n.memMu.Unlock()
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

// readyPeers returns the alive, ready members other than this node,
// oldest first.
func (n *Node) readyPeers() []membership.Member {
	var out []membership.Member
	for _, m := range n.alivePeers() {
		if m.Meta[metaReady] == "1" && m.Meta[metaTransfer] != "" {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return older(out[i], out[j]) })
	return out
}

func older(a, b membership.Member) bool {
	if !a.Started.Equal(b.Started) {
		return a.Started.Before(b.Started)
	}
	return a.ID.String() < b.ID.String()
}

// isOldest reports whether no alive peer is older than this node.
// noneHeard reports whether no other member and no sender at all has been
// heard since start.
func (n *Node) noneHeard() bool {
	n.memMu.Lock()
	others := len(n.mem.Members()) - 1
	n.memMu.Unlock()
	return others == 0 && n.lastSender.Load() == 0
}

func (n *Node) isOldest() bool {
	self := membership.Member{ID: n.id, Started: n.started}
	for _, m := range n.alivePeers() {
		if older(m, self) {
			return false
		}
	}
	return true
}
