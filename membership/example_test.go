package membership_test

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/membership"
)

// Two members on an in-memory network driven by a fake clock. A real runtime
// reads the clock, and sends Ready's messages through the multicast
// transport.
func Example() {
	type node struct {
		id uuid.UUID
		m  *membership.Machine
		up bool
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	start := func(name, id string) *node {
		cfg := membership.DefaultConfig()
		cfg.ID, cfg.Name, cfg.Started = uuid.MustParse(id), name, now
		cfg.Meta = map[string]string{"transfer": name + ":7946"}
		m, err := membership.New(cfg, now)
		if err != nil {
			panic(err)
		}
		return &node{id: cfg.ID, m: m, up: true}
	}
	a := start("node-a", "00000000-0000-0000-0000-00000000000a")
	now = now.Add(time.Second)
	b := start("node-b", "00000000-0000-0000-0000-00000000000b")
	nodes := []*node{a, b}

	// One round of the runtime loop of every live member: Tick, then send
	// what Ready returns and act on its events.
	round := func() {
		now = now.Add(100 * time.Millisecond)
		for _, n := range nodes {
			if !n.up {
				continue
			}
			n.m.Tick(now)
			rd := n.m.Ready()
			for _, ev := range rd.Events {
				self, _ := n.m.Member(n.id)
				fmt.Printf("%s: %s %s\n", self.Name, ev.Kind, ev.Member.Name)
			}
			for _, out := range rd.Messages {
				for _, to := range nodes {
					if to == n || !to.up || (out.To != uuid.Nil && out.To != to.id) {
						continue
					}
					if err := to.m.Step(n.id, out.Payload, now); err != nil {
						fmt.Println("rejected:", err)
					}
				}
			}
		}
	}
	for range 5 {
		round()
	}
	oldest := b.m.Oldest()
	fmt.Println("coordinator:", oldest.Name, "transfer:", oldest.Meta["transfer"])

	a.up = false // kill -9
	for range 40 {
		round()
	}
	fmt.Println("members in node-b's view:", len(b.m.View().Members))
	// Output:
	// node-b: joined node-a
	// node-a: joined node-b
	// coordinator: node-a transfer: node-a:7946
	// node-b: suspected node-a
	// node-b: died node-a
	// members in node-b's view: 1
}
