package membership

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

func cluster(t *testing.T, seed uint64, names ...string) *simNet {
	t.Helper()
	n := newSimNet(t, seed)
	for _, name := range names {
		n.add(name, DefaultConfig())
	}
	n.runUntil(3*time.Second, "join", func() bool { return agreed(n.nodes, len(names)) })
	return n
}

func TestJoinThree(t *testing.T) {
	n := newSimNet(t, 1)
	a, b, c := n.add("a", DefaultConfig()), n.add("b", DefaultConfig()), n.add("c", DefaultConfig())
	took := n.runUntil(3*time.Second, "join", func() bool { return agreed(n.nodes, 3) })
	if took > 2*DefaultHeartbeatInterval {
		t.Errorf("views agreed after %v, want within two heartbeats", took)
	}
	for _, nd := range []*simNode{a, b, c} {
		for _, o := range []*simNode{a, b, c} {
			if o != nd && nd.count(EventJoined, o.m.self.ID) != 1 {
				t.Errorf("%s: %d Joined events for %s, want 1", nd.name, nd.count(EventJoined, o.m.self.ID), o.name)
			}
		}
	}
	n.run(10 * time.Second)
	if got := n.countAll(EventSuspected); got != 0 {
		t.Errorf("%d suspicions on a healthy network", got)
	}
	if !agreed(n.nodes, 3) {
		t.Errorf("views diverged:\n%s", n.dump())
	}
}

// A killed member is declared dead by every survivor after SuspectTimeout
// and by DeadTimeout plus one heartbeat, whatever the phase of the kill.
func TestKillDetection(t *testing.T) {
	for off := time.Duration(0); off < DefaultHeartbeatInterval; off += 70 * time.Millisecond {
		t.Run(off.String(), func(t *testing.T) {
			n := cluster(t, uint64(off), "a", "b", "c")
			n.run(2*time.Second + off)
			victim := n.nodes[2]
			n.kill(victim)
			killed := n.now
			n.runUntil(10*time.Second, "death", func() bool {
				for _, nd := range n.live() {
					if nd.count(EventDied, victim.m.self.ID) == 0 {
						return false
					}
				}
				return true
			})
			for _, nd := range n.live() {
				at, _ := nd.first(EventDied, victim.m.self.ID)
				d := at.Sub(killed)
				if d < DefaultSuspectTimeout || d > DefaultDeadTimeout+DefaultHeartbeatInterval {
					t.Errorf("%s declared the victim dead %v after the kill, want %v to %v", nd.name, d,
						DefaultSuspectTimeout, DefaultDeadTimeout+DefaultHeartbeatInterval)
				}
				sus, _ := nd.first(EventSuspected, victim.m.self.ID)
				if !sus.Before(at) {
					t.Errorf("%s: no suspicion before death", nd.name)
				}
			}
			n.runUntil(DefaultHeartbeatInterval+simTick, "agreement", func() bool { return agreed(n.live(), 2) })
		})
	}
}

// A member stalled for 1s (GC, SIGSTOP) may be suspected but is never
// declared dead, and declares nobody dead, whatever the phase of the stall
// and whether its runtime ticks before or after stepping the backlog.
func TestStallDoesNotKill(t *testing.T) {
	for _, tickFirst := range []bool{false, true} {
		for off := time.Duration(0); off < DefaultHeartbeatInterval; off += 30 * time.Millisecond {
			t.Run(fmt.Sprintf("tickFirst=%v/%v", tickFirst, off), func(t *testing.T) {
				n := cluster(t, uint64(off)+7, "a", "b", "c")
				n.run(2*time.Second + off)
				s := n.nodes[0]
				s.tickFirst = tickFirst
				s.stalledUntil = n.now.Add(time.Second)
				n.run(10 * time.Second)
				if d := n.countAll(EventDied); d != 0 {
					t.Fatalf("%d deaths after a 1s stall:\n%s", d, n.dump())
				}
				if !agreed(n.nodes, 3) {
					t.Errorf("views diverged:\n%s", n.dump())
				}
			})
		}
	}
}

func TestLeaveRemovesAtOnce(t *testing.T) {
	n := cluster(t, 3, "a", "b", "c")
	n.run(time.Second)
	leaver := n.nodes[1]
	leaver.m.Leave()
	n.runUntil(50*time.Millisecond, "leave", func() bool {
		return n.nodes[0].count(EventLeft, leaver.m.self.ID) == 1 && n.nodes[2].count(EventLeft, leaver.m.self.ID) == 1
	})
	n.run(time.Second)
	n.kill(leaver)
	n.run(5 * time.Second)
	rest := []*simNode{n.nodes[0], n.nodes[2]}
	if !agreed(rest, 2) {
		t.Errorf("views after leave:\n%s", n.dump())
	}
	for _, nd := range rest {
		if nd.count(EventLeft, leaver.m.self.ID) != 1 || nd.count(EventDied, leaver.m.self.ID) != 0 || nd.count(EventSuspected, leaver.m.self.ID) != 0 {
			t.Errorf("%s: events %v", nd.name, nd.events)
		}
		mb, ok := nd.m.Member(leaver.m.self.ID)
		if !ok || mb.State != Left {
			t.Errorf("%s: left member listed as %v, %v", nd.name, mb.State, ok)
		}
	}
	n.run(DefaultRetention)
	if _, ok := n.nodes[0].m.Member(leaver.m.self.ID); ok {
		t.Error("left member still listed after Retention")
	}
}

// A restarted process (same name, new ID) is a new member; the old one is
// removed as replaced as soon as the new one is heard, not after DeadTimeout.
func TestRestartNewID(t *testing.T) {
	n := cluster(t, 4, "a", "b", "c")
	n.run(time.Second)
	old := n.nodes[2]
	n.kill(old)
	n.run(200 * time.Millisecond)
	nu := n.add("c", DefaultConfig())
	n.runUntil(time.Second, "rejoin", func() bool { return agreed(n.live(), 3) })
	for _, nd := range n.live()[:2] {
		if nd.count(EventJoined, nu.m.self.ID) != 1 || nd.count(EventLeft, old.m.self.ID) != 1 {
			t.Errorf("%s: events %v", nd.name, nd.events)
		}
	}
	n.run(10 * time.Second)
	if d := n.countAll(EventDied); d != 0 {
		t.Errorf("%d deaths: the replaced member should have left", d)
	}
	if !agreed(n.live(), 3) {
		t.Errorf("views:\n%s", n.dump())
	}
}

func TestPartitionHeal(t *testing.T) {
	for _, d := range []time.Duration{10 * time.Second, DefaultRetention + 10*time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			n := cluster(t, 5, "a", "b", "c", "d")
			left, right := n.nodes[:2], n.nodes[2:]
			n.partition(left, right, true)
			n.run(d)
			if !agreed(left, 2) || !agreed(right, 2) || left[0].m.View().ID == right[0].m.View().ID {
				t.Fatalf("sides should each see two members:\n%s", n.dump())
			}
			for _, x := range left {
				for _, y := range right {
					if x.count(EventDied, y.m.self.ID) != 1 || y.count(EventDied, x.m.self.ID) != 1 {
						t.Errorf("%s and %s should have seen each other die", x.name, y.name)
					}
				}
			}
			n.partition(left, right, false)
			took := n.runUntil(5*time.Second, "heal", func() bool { return agreed(n.nodes, 4) })
			t.Logf("converged %v after the heal", took)
			for _, x := range left {
				for _, y := range right {
					if x.count(EventJoined, y.m.self.ID) != 2 || y.count(EventJoined, x.m.self.ID) != 2 {
						t.Errorf("%s and %s should have seen each other join again", x.name, y.name)
					}
				}
			}
			n.run(10 * time.Second)
			if !agreed(n.nodes, 4) {
				t.Errorf("views diverged again:\n%s", n.dump())
			}
		})
	}
}

// With 20% of all messages lost, defaults never declare a healthy member
// dead.
func TestLossyNoFalseDeaths(t *testing.T) {
	for seed := uint64(0); seed < 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			n := cluster(t, 100+seed, "a", "b", "c", "d", "e")
			n.loss = 0.2
			n.run(5 * time.Minute)
			if d := n.countAll(EventDied); d != 0 {
				t.Fatalf("%d false deaths:\n%s", d, n.dump())
			}
			t.Logf("%d suspicions, all recovered", n.countAll(EventSuspected))
			n.loss = 0
			n.run(time.Second)
			if !agreed(n.nodes, 5) {
				t.Errorf("views:\n%s", n.dump())
			}
		})
	}
}

func TestOldest(t *testing.T) {
	n := newSimNet(t, 6)
	cfg := DefaultConfig()
	cfg.Started = epoch.Add(-time.Hour)
	n.add("b", cfg)
	cfg.Started = epoch.Add(-2 * time.Hour)
	a := n.add("a", cfg)
	c := n.add("c", cfg) // same Started as a: the smaller ID wins
	n.runUntil(2*time.Second, "join", func() bool { return agreed(n.nodes, 3) })
	want := a
	if older(&c.m.self, &a.m.self) {
		want = c
	}
	for _, nd := range n.nodes {
		if got := nd.m.Oldest().ID; got != want.m.self.ID {
			t.Fatalf("%s: oldest %v, want %s", nd.name, got, want.name)
		}
	}
	n.kill(want)
	n.runUntil(5*time.Second, "death", func() bool { return agreed(n.live(), 2) })
	next := a
	if want == a {
		next = c
	}
	for _, nd := range n.live() {
		if got := nd.m.Oldest().ID; got != next.m.self.ID {
			t.Fatalf("%s: oldest %v after the death, want %s", nd.name, got, next.name)
		}
	}
}

func TestMetaPropagation(t *testing.T) {
	n := newSimNet(t, 8)
	cfg := DefaultConfig()
	cfg.Meta = map[string]string{"transfer": "10.0.0.1:7946"}
	a := n.add("a", cfg)
	b := n.add("b", DefaultConfig())
	n.runUntil(2*time.Second, "join", func() bool { return agreed(n.nodes, 2) })
	if mb, _ := b.m.Member(a.m.self.ID); mb.Meta["transfer"] != "10.0.0.1:7946" {
		t.Fatalf("meta %v", mb.Meta)
	}
	if err := a.m.SetMeta("ready", "1"); err != nil {
		t.Fatal(err)
	}
	took := n.runUntil(time.Second, "meta", func() bool {
		mb, _ := b.m.Member(a.m.self.ID)
		return mb.Meta["ready"] == "1"
	})
	if took > 2*simTick {
		t.Errorf("meta took %v, want the next tick", took)
	}
	if b.count(EventUpdated, a.m.self.ID) != 1 {
		t.Errorf("events %v", b.events)
	}
	if err := a.m.SetMeta("ready", ""); err != nil {
		t.Fatal(err)
	}
	n.run(time.Second)
	if mb, _ := b.m.Member(a.m.self.ID); len(mb.Meta) != 1 {
		t.Errorf("meta after delete %v", mb.Meta)
	}
	big := string(make([]byte, MaxMetaValueLen+1))
	if err := a.m.SetMeta("x", big); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("SetMeta too large: %v", err)
	}
}

func TestMaxMembers(t *testing.T) {
	n := newSimNet(t, 9)
	cfg := DefaultConfig()
	cfg.MaxMembers = 3
	for _, name := range []string{"a", "b", "c", "d"} {
		n.add(name, cfg)
	}
	n.run(2 * time.Second)
	for _, nd := range n.nodes {
		if got := len(nd.m.Members()); got != 3 {
			t.Errorf("%s tracks %d members, want 3", nd.name, got)
		}
		if nd.m.Stats().IgnoredMembers == 0 {
			t.Errorf("%s: ignored heartbeats not counted", nd.name)
		}
	}
}

// Unit tests on one Machine fed by hand.

func newTestMachine(t *testing.T) *Machine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.Name, cfg.Started = uuid.MustParse("00000000-0000-0000-0000-00000000000a"), "a", epoch
	m, err := New(cfg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func heartbeat(name string, inc uint64, sus ...suspicion) []byte {
	return (&message{Type: typeHeartbeat, Name: name, Started: epoch, Incarnation: inc, Suspicions: sus}).encode(nil)
}

func TestDeadComesBackOnlyWithHigherIncarnation(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	now := epoch
	m.Step(b, heartbeat("b", 3), now)
	for i := 0; i < 40; i++ {
		now = now.Add(simTick)
		m.Tick(now)
	}
	if mb, _ := m.Member(b); mb.State != Dead {
		t.Fatalf("state %v", mb.State)
	}
	m.Ready()
	m.Step(b, heartbeat("b", 3), now)
	if mb, _ := m.Member(b); mb.State != Dead {
		t.Fatalf("a heartbeat at the same incarnation revived a dead member")
	}
	rd := m.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].To != b {
		t.Fatalf("want one ping telling b it is dead, got %v", rd.Messages)
	}
	if msg, _ := decode(rd.Messages[0].Payload); msg.Type != typePing || msg.Incarnation != 3 {
		t.Fatalf("notice %+v", msg)
	}
	m.Step(b, heartbeat("b", 4), now)
	mb, _ := m.Member(b)
	if mb.State != Alive {
		t.Fatalf("state %v after a higher incarnation", mb.State)
	}
	if ev := m.Ready().Events; len(ev) != 1 || ev[0].Kind != EventJoined {
		t.Fatalf("events %v", ev)
	}
}

func TestRefute(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	m.Tick(epoch)
	m.Ready()
	m.Step(b, heartbeat("b", 0, suspicion{ID: m.self.ID, Incarnation: 0}), epoch)
	if m.self.Incarnation != 1 || m.Stats().Refutations != 1 {
		t.Fatalf("incarnation %d", m.self.Incarnation)
	}
	m.Step(b, heartbeat("b", 0, suspicion{ID: m.self.ID, Incarnation: 0}), epoch) // already refuted
	m.Tick(epoch.Add(simTick))
	rd := m.Ready()
	if len(rd.Messages) != 1 {
		t.Fatalf("want the refuting heartbeat at once, got %d messages", len(rd.Messages))
	}
	if msg, _ := decode(rd.Messages[0].Payload); msg.Incarnation != 1 {
		t.Fatalf("heartbeat incarnation %d", msg.Incarnation)
	}
	// A ping from a suspecting member is refuted and acked with the new
	// incarnation.
	m.Step(b, (&message{Type: typePing, To: m.self.ID, Seq: 9, Incarnation: 1}).encode(nil), epoch)
	rd = m.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].To != b {
		t.Fatalf("want an ack, got %v", rd.Messages)
	}
	if msg, _ := decode(rd.Messages[0].Payload); msg.Type != typeAck || msg.Seq != 9 || msg.Incarnation != 2 || msg.Target != m.self.ID {
		t.Fatalf("ack %+v", msg)
	}
	// A ping meant for another member is ignored.
	m.Step(b, (&message{Type: typePing, To: b, Seq: 10, Incarnation: 5}).encode(nil), epoch)
	if len(m.Ready().Messages) != 0 || m.self.Incarnation != 2 {
		t.Fatal("acted on a ping addressed to another member")
	}
}

func TestIndirectProbe(t *testing.T) {
	// c hears b, a does not: a probes the quiet b through c, which
	// relays b's acks, so b is never suspected, let alone declared dead.
	n := cluster(t, 10, "a", "b", "c")
	a, b := n.nodes[0], n.nodes[1]
	n.cut[[2]uuid.UUID{b.m.self.ID, a.m.self.ID}] = true
	n.run(20 * time.Second)
	if a.count(EventDied, b.m.self.ID) != 0 || a.count(EventSuspected, b.m.self.ID) != 0 {
		t.Fatalf("want b kept alive by indirect acks without suspicion, events %v", a.events)
	}
	if st := a.m.Stats(); st.Suspicions != 0 || st.FalseSuspicions != 0 || b.m.Stats().Refutations != 0 {
		t.Fatalf("stats %+v, b refuted %d times (probes are no suspicions)", st, b.m.Stats().Refutations)
	}
}

func TestStepErrors(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	for _, tc := range []struct {
		payload []byte
		want    error
	}{
		{nil, ErrMalformed},
		{[]byte{1}, ErrMalformed},
		{[]byte{9, 1}, ErrVersion},
		{[]byte{1, 200}, ErrUnknownType},
		{make([]byte, MaxPayloadSize+1), ErrTooLarge},
		{heartbeat("b", 1)[:10], ErrMalformed},
		{heartbeat("bad name", 1), ErrMalformed},
	} {
		if err := m.Step(b, tc.payload, epoch); !errors.Is(err, tc.want) {
			t.Errorf("Step(%x) = %v, want %v", tc.payload, err, tc.want)
		}
	}
	if got := m.Stats().Malformed; got != 7 {
		t.Errorf("Malformed = %d", got)
	}
	if len(m.Members()) != 1 {
		t.Error("a malformed payload changed the members")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.ID, ok.Name, ok.Started = uuid.New(), "node-1", epoch
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no id":      func(c *Config) { c.ID = uuid.Nil },
		"no name":    func(c *Config) { c.Name = "" },
		"bad name":   func(c *Config) { c.Name = "a/b" },
		"no started": func(c *Config) { c.Started = time.Time{} },
		"order":      func(c *Config) { c.DeadTimeout = c.SuspectTimeout },
		"meta":       func(c *Config) { c.Meta = map[string]string{"": "x"} },
		"members":    func(c *Config) { c.MaxMembers = 1 },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Any traffic counts as a heartbeat: a member whose heartbeats are all lost
// but whose other traffic is observed stays alive.
func TestObserveCountsAsHeartbeat(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	now := epoch
	m.Step(b, heartbeat("b", 0), now)
	for range 100 {
		now = now.Add(simTick)
		m.Observe(b, now)
		m.Tick(now)
	}
	if mb, _ := m.Member(b); mb.State != Alive {
		t.Fatalf("state %v", mb.State)
	}
	for range 40 {
		now = now.Add(simTick)
		m.Tick(now)
	}
	m.Ready()
	m.Observe(b, now) // a dead member still talking is told so
	rd := m.Ready()
	if mb, _ := m.Member(b); mb.State != Dead || len(rd.Messages) != 1 || rd.Messages[0].To != b {
		t.Fatalf("state %v, messages %v", mb.State, rd.Messages)
	}
	m.Observe(uuid.New(), now) // unknown: ignored
	if len(m.Members()) != 2 {
		t.Fatal("Observe added a member")
	}
}

// Two live processes misconfigured with one name: the older is marked left
// (replaced) everywhere but in its own view, and its heartbeats are counted
// as name conflicts.
func TestNameConflict(t *testing.T) {
	n := cluster(t, 11, "a", "b")
	dup := n.add("a", DefaultConfig())
	n.run(3 * time.Second)
	old := n.nodes[0]
	b := n.nodes[1]
	if mb, _ := b.m.Member(old.m.self.ID); mb.State != Left {
		t.Errorf("b sees the older %q as %v, want left", mb.Name, mb.State)
	}
	if b.m.Stats().NameConflicts == 0 || old.m.Stats().NameConflicts == 0 {
		t.Errorf("conflicts not counted: b %+v, old %+v", b.m.Stats(), old.m.Stats())
	}
	if mb, _ := old.m.Member(dup.m.self.ID); mb.State != Alive {
		t.Errorf("the older member sees the newer as %v", mb.State)
	}
}
