package membership

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Issue 15's target: with the defaults a killed process (its host still
// up, refusing connections: Gone) is declared dead by every survivor within
// 1.5s, whatever the phase of the kill against the heartbeats and ticks,
// and no live member is suspected on the way.
func TestKillDetectedWithin1500ms(t *testing.T) {
	var delays []time.Duration
	for seed := uint64(0); seed < 6; seed++ {
		for off := time.Duration(0); off < DefaultHeartbeatInterval; off += 40 * time.Millisecond {
			n := cluster(t, 1000+seed*100+uint64(off/time.Millisecond), "a", "b", "c", "d")
			n.refuse = true
			n.run(time.Second + off)
			victim := n.nodes[int(seed)%4]
			n.kill(victim)
			killed := n.now
			n.runUntil(5*time.Second, "death", func() bool {
				for _, nd := range n.live() {
					if nd.count(EventDied, victim.m.self.ID) == 0 {
						return false
					}
				}
				return true
			})
			for _, nd := range n.live() {
				at, _ := nd.first(EventDied, victim.m.self.ID)
				delays = append(delays, at.Sub(killed))
				if st := nd.m.Stats(); st.FalseSuspicions != 0 || st.Suspicions != 1 || st.GoneDeaths != 1 {
					t.Errorf("seed %d offset %v: %s stats %+v, want one true suspicion", seed, off, nd.name, st)
				}
			}
		}
	}
	slices.Sort(delays)
	p50, p99, worst := delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1]
	t.Logf("%d detections: p50 %v, p99 %v, max %v", len(delays), p50, p99, worst)
	if worst > 1500*time.Millisecond {
		t.Errorf("slowest detection %v, want <= 1.5s", worst)
	}
}

// A member that is merely quiet (heard within ProbeTimeout) is not
// declared dead by Gone: the refusal may be older than its last message.
func TestGoneIgnoredForRecentlyHeard(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	m.Tick(epoch)
	m.Step(b, heartbeat("b", 0), epoch)
	m.Gone(b, epoch.Add(defaultProbeTimeout()-simTick))
	if mb, _ := m.Member(b); mb.State != Alive {
		t.Fatalf("b %v after Gone within ProbeTimeout", mb.State)
	}
	m.Gone(b, epoch.Add(defaultProbeTimeout()))
	if mb, _ := m.Member(b); mb.State != Dead {
		t.Fatalf("b %v after Gone past ProbeTimeout", mb.State)
	}
	m.Gone(b, epoch.Add(time.Hour)) // already dead: no effect
	if st := m.Stats(); st.Suspicions != 1 || st.GoneDeaths != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// defaultProbeTimeout is the ProbeTimeout that DefaultConfig gets.
func defaultProbeTimeout() time.Duration {
	return DefaultConfig().withDefaults().ProbeTimeout
}

// A member stalled for less than SuspectTimeout minus a heartbeat is not
// even suspected (its heartbeats resume before anyone suspects it); the
// stall does not raise anyone's suspicion counter.
func TestShortStallNoSuspicion(t *testing.T) {
	for off := time.Duration(0); off < DefaultHeartbeatInterval; off += 30 * time.Millisecond {
		t.Run(off.String(), func(t *testing.T) {
			n := cluster(t, uint64(off)+77, "a", "b", "c")
			n.run(time.Second + off)
			n.nodes[1].stalledUntil = n.now.Add(DefaultSuspectTimeout - DefaultHeartbeatInterval - simTick)
			n.run(5 * time.Second)
			if s := n.countAll(EventSuspected); s != 0 {
				t.Fatalf("%d suspicions after a short stall:\n%s", s, n.dump())
			}
		})
	}
}

// Suspicions and false suspicions are counted: a member cut off one way
// for longer than SuspectTimeout but shorter than DeadTimeout is suspected,
// then heard again.
func TestFalseSuspicionCounted(t *testing.T) {
	n := cluster(t, 42, "a", "b")
	a, b := n.nodes[0], n.nodes[1]
	n.run(time.Second)
	n.cut[[2]uuid.UUID{b.m.self.ID, a.m.self.ID}] = true
	n.runUntil(2*time.Second, "suspicion", func() bool { return a.count(EventSuspected, b.m.self.ID) == 1 })
	n.cut[[2]uuid.UUID{b.m.self.ID, a.m.self.ID}] = false
	n.run(2 * time.Second)
	st := a.m.Stats()
	if st.Suspicions != 1 || st.FalseSuspicions != 1 || a.count(EventDied, b.m.self.ID) != 0 {
		t.Fatalf("stats %+v, events %v", st, a.events)
	}
	if b.m.Stats().Refutations == 0 {
		t.Error("b was pinged as a suspect but did not refute")
	}
}

// A probe of a quiet member (flagProbe) is acked without refuting; a ping
// of a suspect still makes the target refute.
func TestProbeDoesNotRefute(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	m.Tick(epoch)
	m.Ready()
	m.Step(b, (&message{Type: typePing, To: m.self.ID, Seq: 3, Flags: flagProbe}).encode(nil), epoch)
	rd := m.Ready()
	if len(rd.Messages) != 1 || m.self.Incarnation != 0 || m.Stats().Refutations != 0 {
		t.Fatalf("probe: %d messages, incarnation %d", len(rd.Messages), m.self.Incarnation)
	}
	if msg, _ := decode(rd.Messages[0].Payload); msg.Type != typeAck || msg.Seq != 3 {
		t.Fatalf("ack %+v", msg)
	}
	// A ping-req for this member with the probe flag: the same.
	m.Step(b, (&message{Type: typePingReq, To: m.self.ID, Seq: 4, Target: m.self.ID, Flags: flagProbe}).encode(nil), epoch)
	if m.Ready(); m.self.Incarnation != 0 {
		t.Fatal("a probing ping-req made the target refute")
	}
	// A relayed probe keeps its flag.
	c := uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	m.Step(b, (&message{Type: typePingReq, To: m.self.ID, Seq: 5, Target: c, Flags: flagProbe}).encode(nil), epoch)
	rd = m.Ready()
	if msg, _ := decode(rd.Messages[0].Payload); len(rd.Messages) != 1 || msg.Type != typePing || msg.To != c || msg.Flags != flagProbe {
		t.Fatalf("relayed %+v", msg)
	}
	m.Step(b, (&message{Type: typePing, To: m.self.ID, Seq: 6}).encode(nil), epoch)
	if m.self.Incarnation != 1 {
		t.Fatalf("suspicion ping: incarnation %d, want 1", m.self.Incarnation)
	}
}

// Local health awareness: late Ticks raise the score (at most
// MaxHealthScore), which stretches the timeouts; quiet time lowers it.
func TestHealthAwareness(t *testing.T) {
	m := newTestMachine(t)
	b := uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	now := epoch
	m.Tick(now)
	m.Step(b, heartbeat("b", 0), now)
	for i := 0; i < 3; i++ { // three stalls of 400ms
		now = now.Add(2 * DefaultHeartbeatInterval)
		m.Tick(now)
	}
	if h := m.Health(); h != 3 {
		t.Fatalf("health %d after three late ticks, want 3", h)
	}
	m.Step(b, heartbeat("b", 0), now)
	heard := now
	// With a score of 3 the suspicion waits up to 4 x SuspectTimeout,
	// less the decay: b is not suspected after 1.5 x SuspectTimeout.
	for now.Sub(heard) < 3*DefaultSuspectTimeout/2 {
		now = now.Add(simTick)
		m.Tick(now)
	}
	if mb, _ := m.Member(b); mb.State != Alive {
		t.Fatalf("b is %v %v after its last heartbeat with health %d", mb.State, now.Sub(heard), m.Health())
	}
	for i := 0; i < 100; i++ {
		now = now.Add(simTick)
		m.Tick(now)
	}
	if h := m.Health(); h != 0 {
		t.Fatalf("health %d after 10s without trouble", h)
	}
	for i := 0; i < 3*DefaultMaxHealthScore; i++ {
		now = now.Add(time.Second)
		m.Tick(now)
	}
	if h := m.Health(); h != DefaultMaxHealthScore {
		t.Fatalf("health %d, want the bound %d", h, DefaultMaxHealthScore)
	}
}

func TestCount(t *testing.T) {
	n := cluster(t, 9, "a", "b", "c")
	n.kill(n.nodes[2])
	a := n.nodes[0]
	if c := a.m.Count(Alive); c != 2 {
		t.Fatalf("Count(Alive) = %d, want 2", c)
	}
	n.runUntil(5*time.Second, "death", func() bool { return a.m.Count(Dead) == 1 })
	if c := a.m.Count(Alive); c != 1 {
		t.Fatalf("Count(Alive) = %d after a death, want 1", c)
	}
}
