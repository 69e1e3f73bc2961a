package cluster

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/membership"
)

// Fast detection of a killed process. Every node listens on a second TCP
// port that accepts connections and closes them at once, and advertises
// it in its "alive" meta. A member that has been quiet for three heartbeat
// intervals gets a connection attempt on that address. A host that
// refuses it (RST: nobody listens on that port) no longer runs that
// member's process, which membership then declares dead at once
// (Machine.Gone) instead of after DeadTimeout. A stalled process keeps its
// listener, the kernel completes the handshake, and only the timeouts
// apply: this is what lets a SIGKILL be noticed in well under a second
// without declaring a slow process dead. A firewall that drops the port
// (no RST) only loses the shortcut.

const metaAlive = "alive" // TCP address that accepts and closes connections (liveness.go)

// listenLiveness opens the liveness listener on the IP of the transfer
// listener and returns its address, or "" when there is none to offer.
func (n *Node) listenLiveness() string {
	host, _, err := net.SplitHostPort(n.ln.Addr().String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return "" // peers could not dial it
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		n.log.Warn("no liveness listener: a killed peer is noticed by timeouts only", "err", err)
		return ""
	}
	n.aliveLn = l
	return l.Addr().String()
}

// serveLiveness accepts and closes connections until the node stops.
func (n *Node) serveLiveness() {
	l := n.aliveLn
	if l == nil {
		return
	}
	n.goRun(func() {
		<-n.ctx.Done()
		l.Close()
	})
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// checkGone starts a connection attempt to every quiet member not checked
// within the last heartbeat interval. Called by the tick loop.
func (n *Node) checkGone(now time.Time) {
	quiet := 3 * n.cfg.HeartbeatInterval
	n.memMu.Lock()
	ms := n.mem.Members()
	n.memMu.Unlock()
	n.goneMu.Lock()
	defer n.goneMu.Unlock()
	for id, at := range n.goneChecked {
		if now.Sub(at) > 10*time.Second {
			delete(n.goneChecked, id)
		}
	}
	for _, m := range ms {
		if m.ID == n.id || (m.State != membership.Alive && m.State != membership.Suspect) || now.Sub(m.LastSeen) < quiet {
			continue
		}
		addr := m.Meta[metaAlive]
		if addr == "" {
			continue
		}
		if at, ok := n.goneChecked[m.ID]; ok && now.Sub(at) < n.cfg.HeartbeatInterval {
			continue
		}
		if n.goneChecked == nil {
			n.goneChecked = map[uuid.UUID]time.Time{}
		}
		n.goneChecked[m.ID] = now
		id := m.ID
		n.goRun(func() { n.dialGone(id, addr) })
	}
}

func (n *Node) dialGone(id uuid.UUID, addr string) {
	d := net.Dialer{Timeout: n.cfg.HeartbeatInterval}
	c, err := d.DialContext(n.ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return // a timeout says nothing: the host may be down or slow
	}
	n.memMu.Lock()
	n.mem.Gone(id, n.now())
	rd := n.mem.Ready()
	n.memMu.Unlock()
	n.sendMembership(rd)
	n.handleMemberEvents(rd.Events)
}
