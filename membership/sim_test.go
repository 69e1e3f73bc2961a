package membership

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The simulated network: a fake clock advanced in 10ms steps, messages
// delivered one step after they are sent unless dropped (seeded loss, cuts),
// nodes that tick every 100ms and can be killed, stalled and restarted.

const (
	simStep = 10 * time.Millisecond
	simTick = 100 * time.Millisecond
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type simMsg struct {
	from    uuid.UUID
	payload []byte
	at      time.Time
}

type simNode struct {
	name         string
	m            *Machine
	down         bool
	stalledUntil time.Time
	tickFirst    bool // on resuming from a stall, tick before stepping the backlog
	nextTick     time.Time
	inbox        []simMsg
	events       []simEvent
}

type simEvent struct {
	at time.Time
	Event
}

type simNet struct {
	t    testing.TB
	now  time.Time
	rng  *rand.Rand
	loss float64
	// refuse: a down node's host refuses connections, and every node
	// checks its quiet members as the runtime does (Machine.Gone).
	refuse bool
	nodes  []*simNode
	byID   map[uuid.UUID]*simNode
	cut    map[[2]uuid.UUID]bool
}

func newSimNet(t testing.TB, seed uint64) *simNet {
	return &simNet{t: t, now: epoch, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		byID: map[uuid.UUID]*simNode{}, cut: map[[2]uuid.UUID]bool{}}
}

// id returns a deterministic member ID.
func (n *simNet) id() uuid.UUID {
	var id uuid.UUID
	for i := range id {
		id[i] = byte(n.rng.Uint32())
	}
	return id
}

// add starts a member named name now, with cfg's durations.
func (n *simNet) add(name string, cfg Config) *simNode {
	n.t.Helper()
	cfg.ID = n.id()
	cfg.Name = name
	if cfg.Started.IsZero() {
		cfg.Started = n.now
	}
	m, err := New(cfg, n.now)
	if err != nil {
		n.t.Fatal(err)
	}
	// Desynchronize the tick phases of the nodes.
	nd := &simNode{name: name, m: m, nextTick: n.now.Add(time.Duration(n.rng.IntN(10)) * simStep)}
	n.nodes = append(n.nodes, nd)
	n.byID[cfg.ID] = nd
	return nd
}

func (n *simNet) kill(nd *simNode) { nd.down, nd.inbox = true, nil }

// partition cuts every link between the two groups, both ways.
func (n *simNet) partition(a, b []*simNode, cut bool) {
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]uuid.UUID{x.m.self.ID, y.m.self.ID}] = cut
			n.cut[[2]uuid.UUID{y.m.self.ID, x.m.self.ID}] = cut
		}
	}
}

func (n *simNet) step() {
	n.now = n.now.Add(simStep)
	for _, nd := range n.nodes {
		if nd.down || n.now.Before(nd.stalledUntil) {
			continue
		}
		if nd.tickFirst && !n.now.Before(nd.nextTick) {
			nd.m.Tick(n.now)
			nd.nextTick = n.now.Add(simTick)
		}
		var keep []simMsg
		for _, msg := range nd.inbox {
			if msg.at.After(n.now) {
				keep = append(keep, msg)
				continue
			}
			if err := nd.m.Step(msg.from, msg.payload, n.now); err != nil {
				n.t.Fatalf("%s: step: %v", nd.name, err)
			}
		}
		nd.inbox = keep
		if !n.now.Before(nd.nextTick) {
			nd.m.Tick(n.now)
			nd.nextTick = n.now.Add(simTick)
			if n.refuse {
				for id, e := range nd.m.members {
					if o := n.byID[id]; o != nil && o.down && n.now.Sub(e.LastSeen) >= nd.m.cfg.ProbeTimeout {
						nd.m.Gone(id, n.now)
					}
				}
			}
		}
		rd := nd.m.Ready()
		for _, ev := range rd.Events {
			nd.events = append(nd.events, simEvent{n.now, ev})
		}
		for _, out := range rd.Messages {
			for _, to := range n.nodes {
				if to == nd || to.down || (out.To != uuid.Nil && out.To != to.m.self.ID) {
					continue
				}
				if n.cut[[2]uuid.UUID{nd.m.self.ID, to.m.self.ID}] || (n.loss > 0 && n.rng.Float64() < n.loss) {
					continue
				}
				to.inbox = append(to.inbox, simMsg{nd.m.self.ID, out.Payload, n.now.Add(simStep)})
			}
		}
	}
}

func (n *simNet) run(d time.Duration) {
	for end := n.now.Add(d); n.now.Before(end); {
		n.step()
	}
}

// runUntil steps until cond holds, failing after max.
func (n *simNet) runUntil(max time.Duration, what string, cond func() bool) time.Duration {
	n.t.Helper()
	start := n.now
	for !cond() {
		if n.now.Sub(start) > max {
			n.t.Fatalf("%s: not within %v", what, max)
		}
		n.step()
	}
	return n.now.Sub(start)
}

func (n *simNet) live() []*simNode {
	var l []*simNode
	for _, nd := range n.nodes {
		if !nd.down {
			l = append(l, nd)
		}
	}
	return l
}

// agreed reports whether every given node has the same view, with want
// members, and has heard that everybody else has it too.
func agreed(nodes []*simNode, want int) bool {
	v0 := nodes[0].m.View()
	if len(v0.Members) != want {
		return false
	}
	for _, nd := range nodes {
		if nd.m.View().ID != v0.ID || !nd.m.Converged() {
			return false
		}
	}
	return true
}

func (nd *simNode) count(kind EventKind, id uuid.UUID) int {
	c := 0
	for _, ev := range nd.events {
		if ev.Kind == kind && ev.Member.ID == id {
			c++
		}
	}
	return c
}

func (nd *simNode) first(kind EventKind, id uuid.UUID) (time.Time, bool) {
	for _, ev := range nd.events {
		if ev.Kind == kind && ev.Member.ID == id {
			return ev.at, true
		}
	}
	return time.Time{}, false
}

func (n *simNet) countAll(kind EventKind) int {
	c := 0
	for _, nd := range n.nodes {
		for _, ev := range nd.events {
			if ev.Kind == kind {
				c++
			}
		}
	}
	return c
}

func (n *simNet) dump() string {
	s := ""
	for _, nd := range n.nodes {
		s += fmt.Sprintf("%s down=%v view=%x:", nd.name, nd.down, nd.m.View().ID)
		for _, mb := range nd.m.Members() {
			s += fmt.Sprintf(" %s/%s/%d", mb.Name, mb.State, mb.Incarnation)
		}
		s += "\n"
	}
	return s
}
