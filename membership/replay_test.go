package membership

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// heartbeatOf returns the heartbeat payload m sends at now.
func heartbeatOf(t *testing.T, m *Machine, now time.Time) []byte {
	t.Helper()
	m.heartbeatDue = true
	m.Tick(now)
	for _, o := range m.Ready().Messages {
		if o.To == uuid.Nil && len(o.Payload) > 1 && msgType(o.Payload[1]) == typeHeartbeat {
			return o.Payload
		}
	}
	t.Fatal("no heartbeat sent")
	return nil
}

func machine(t *testing.T, name string, started time.Time) *Machine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.Name, cfg.Started = uuid.New(), name, started
	m, err := New(cfg, started)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func listed(m *Machine, id uuid.UUID) bool {
	_, ok := m.Member(id)
	return ok
}

// TestReplayedHeartbeatsMakeNoGhosts: heartbeats of a previous
// incarnation of a node (captured before it was killed and restarted)
// never make a member: not on the restarted node itself, not on a node
// that knows the restarted one, not once the dead incarnation was
// forgotten after Retention; an old heartbeat of a live member does not
// count as a sign of life, nor roll back its incarnation or meta.
func TestReplayedHeartbeatsMakeNoGhosts(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	oldC := machine(t, "c", t0)
	captured := heartbeatOf(t, oldC, t0)

	// The restarted c refuses its previous incarnation.
	newC := machine(t, "c", t0.Add(time.Minute))
	now := t0.Add(time.Minute + time.Second)
	if err := newC.Step(oldC.self.ID, captured, now); err != nil {
		t.Fatal(err)
	}
	if listed(newC, oldC.self.ID) || len(newC.Ready().Events) != 0 || newC.Stats().OlderIncarnation != 1 {
		t.Fatalf("restarted c admitted its old incarnation: %+v", newC.Stats())
	}

	// A node that knows the new c refuses the old one.
	a := machine(t, "a", t0)
	if err := a.Step(newC.self.ID, heartbeatOf(t, newC, now), now); err != nil {
		t.Fatal(err)
	}
	a.Ready()
	a.Step(oldC.self.ID, captured, now)
	if listed(a, oldC.self.ID) || len(a.Ready().Events) != 0 {
		t.Fatal("a node that knows the restarted c admitted the old one")
	}

	// A node that knew the old c, saw it die and forgot it after
	// Retention never brings it back from a replay.
	b := machine(t, "b", t0)
	b.Step(oldC.self.ID, captured, t0)
	for at := t0; at.Before(t0.Add(DefaultDeadTimeout + DefaultRetention + 5*time.Second)); at = at.Add(100 * time.Millisecond) {
		b.Tick(at)
	}
	if listed(b, oldC.self.ID) {
		t.Fatal("the dead member is still listed after Retention")
	}
	b.Ready()
	later := t0.Add(DefaultDeadTimeout + DefaultRetention + 6*time.Second)
	b.Step(oldC.self.ID, captured, later)
	rd := b.Ready()
	for _, ev := range rd.Events {
		t.Errorf("replay of a forgotten dead member: event %v", ev.Kind)
	}
	if listed(b, oldC.self.ID) || b.Stats().Retired != 1 {
		t.Fatalf("forgotten dead member resurrected (listed %v, stats %+v)", listed(b, oldC.self.ID), b.Stats())
	}
	// It is told it was declared dead (a real member behind a long
	// partition refutes with a higher incarnation and is admitted then).
	if len(rd.Messages) != 1 || rd.Messages[0].To != oldC.self.ID {
		t.Fatalf("no notice to the forgotten member: %+v", rd.Messages)
	}
	oldC.refute(0)
	if err := b.Step(oldC.self.ID, heartbeatOf(t, oldC, later), later); err != nil || !listed(b, oldC.self.ID) {
		t.Fatalf("a refuted (higher incarnation) heartbeat is not admitted: %v", err)
	}

	// A live member's old heartbeat: no liveness, no rollback.
	d := machine(t, "d", t0)
	oldHB := heartbeatOf(t, d, t0)
	d.SetMeta("ready", "1")
	a.Step(d.self.ID, heartbeatOf(t, d, t0.Add(time.Second)), t0.Add(time.Second))
	stale0 := a.Stats().Stale
	a.Step(d.self.ID, oldHB, t0.Add(2*time.Second))
	got, _ := a.Member(d.self.ID)
	if got.Meta["ready"] != "1" || got.Incarnation != d.self.Incarnation || !got.LastSeen.Equal(t0.Add(time.Second)) || a.Stats().Stale != stale0+1 {
		t.Fatalf("an old heartbeat changed a live member: %+v, stats %+v", got, a.Stats())
	}
}
