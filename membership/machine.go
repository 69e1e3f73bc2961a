package membership

import (
	"encoding/binary"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Bounds of the Machine's own tables.
const (
	maxRelays   = 1024 // pings sent on behalf of other members and awaiting an ack
	leaveCopies = 3    // LEAVE announcements, one per heartbeat interval
	maxRetired  = 4096 // members forgotten after Retention, remembered so that they never come back
	maxNames    = 4096 // newest member known per name
)

// Machine is the membership state machine of one member. It does no I/O and
// reads no clock: see the package documentation for the caller's duties.
// A Machine is not safe for concurrent use; the caller serializes all calls.
type Machine struct {
	cfg     Config
	self    Member
	members map[uuid.UUID]*entry // other members
	rng     *rand.Rand

	out    []Outgoing
	events []Event
	stats  Stats

	lastTick      time.Time
	nextHeartbeat time.Time
	heartbeatDue  bool      // send a heartbeat at the next Tick (new incarnation or Meta)
	graceUntil    time.Time // after a stall of this Machine, no new suspicion before this
	leaveLeft     int       // LEAVE copies still to send
	rotate        int       // rotates the suspicion list when it is longer than MaxSuspicions
	health        int       // local health score, 0 to MaxHealthScore (see Config)
	healthyUntil  time.Time // the score falls by one when a Tick passes this without trouble

	seq    uint32
	probes map[uint32]probe // this member's outstanding pings, by seq
	relays map[uint32]relay // pings sent for another member's PING-REQ, by our seq

	retired      map[uuid.UUID]retiredMember // dead or left members removed after Retention
	retiredOrder []uuid.UUID
	newest       map[string]Member // the newest member (latest Started, then largest ID) seen per name
}

// retiredMember is what is remembered of a member removed from the table.
type retiredMember struct {
	incarnation uint64
	left        bool      // it left (or was replaced): it never comes back
	lastNotice  time.Time // last "you are dead" ping sent to it
}

type entry struct {
	Member
	heard       time.Time // last direct evidence, for failure detection
	suspectedAt time.Time
	wasSuspect  bool // suspected (or declared dead) since last heard: hearing it again means the suspicion was false
	nextProbe   time.Time
	removeAt    time.Time // for Dead and Left
	lastNotice  time.Time // last "you are dead" ping to a Dead member still talking
	replaced    bool      // Left because a newer member of the same name appeared
}

type probe struct {
	target  uuid.UUID
	expires time.Time
}

type relay struct {
	origin    uuid.UUID
	originSeq uint32
	target    uuid.UUID
	expires   time.Time
}

// New returns a Machine for cfg, started at now. Zero fields of cfg take
// their defaults; errors wrap ErrConfig. The first Tick sends the
// first heartbeat.
func New(cfg Config, now time.Time) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Meta == nil {
		cfg.Meta = map[string]string{}
	}
	id := cfg.ID
	m := &Machine{
		cfg: cfg,
		self: Member{
			ID:       id,
			Name:     cfg.Name,
			Started:  cfg.Started,
			State:    Alive,
			Meta:     maps.Clone(cfg.Meta),
			LastSeen: now,
		},
		members: make(map[uuid.UUID]*entry),
		// Seeded from the ID: deterministic for a given ID, different
		// between members.
		rng:    rand.New(rand.NewPCG(binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:]))),
		probes: make(map[uint32]probe),
		relays: make(map[uint32]relay),

		retired: make(map[uuid.UUID]retiredMember),
		newest:  make(map[string]Member),
	}
	m.noteName(m.self)
	m.nextHeartbeat = now
	return m, nil
}

// Step applies one membership payload received from member from (the sender
// ID authenticated by the transport). Errors wrap ErrMalformed, ErrVersion,
// ErrUnknownType or ErrTooLarge; they are counted in Stats.Malformed and
// leave the Machine unchanged otherwise. Payloads from this member itself
// (multicast loopback) are ignored.
func (m *Machine) Step(from uuid.UUID, payload []byte, now time.Time) error {
	if from == m.self.ID {
		return nil
	}
	msg, err := decode(payload)
	if err != nil {
		m.stats.Malformed++
		return err
	}
	if m.self.State == Left || from == uuid.Nil {
		return nil
	}
	switch msg.Type {
	case typeHeartbeat:
		m.onHeartbeat(from, msg, now)
	case typeLeave:
		m.onLeave(from, now)
	case typePing, typePingReq, typeAck:
		if msg.To == m.self.ID {
			switch msg.Type {
			case typePing:
				m.onPing(from, msg)
			case typePingReq:
				m.onPingReq(from, msg, now)
			case typeAck:
				m.onAck(from, msg, now)
			}
		}
		m.heardFrom(from, now)
	}
	return nil
}

// Observe records other traffic (sessions, acks, repairs) from member from:
// any traffic counts as a heartbeat. It refreshes Alive and Suspect members;
// a Dead member is told that it was declared dead, so that it comes back
// with a higher incarnation. Unknown members are ignored until their first
// heartbeat.
func (m *Machine) Observe(from uuid.UUID, now time.Time) {
	if from == m.self.ID || m.self.State == Left {
		return
	}
	m.heardFrom(from, now)
}

// Tick advances time to now: it sends the heartbeat when due, suspects,
// probes and declares dead silent members, and forgets dead and left members
// after Retention. Call it every 100ms or so, and at least every
// HeartbeatInterval.
func (m *Machine) Tick(now time.Time) {
	if m.self.State == Left {
		if m.leaveLeft > 0 && !now.Before(m.nextHeartbeat) {
			m.sendLeave()
			m.nextHeartbeat = now.Add(m.cfg.HeartbeatInterval)
		}
		return
	}
	// A gap between Ticks longer than two heartbeats means this process was
	// stalled (GC, SIGSTOP, an overloaded host): the silence of the others
	// is then ours. Give received traffic one heartbeat interval to be
	// stepped before suspecting anyone.
	if !m.lastTick.IsZero() && now.Sub(m.lastTick) > 2*m.cfg.HeartbeatInterval {
		m.graceUntil = now.Add(m.cfg.HeartbeatInterval)
	}
	// Local health awareness: a late Tick (this process was stalled, or
	// its host is overloaded) raises the score, which stretches every
	// timeout below; time without trouble lowers it again.
	if !m.lastTick.IsZero() && now.Sub(m.lastTick) > m.cfg.HeartbeatInterval*3/2 {
		m.sick(now)
	} else if m.health > 0 && !now.Before(m.healthyUntil) {
		m.health--
		m.healthyUntil = now.Add(4 * m.cfg.HeartbeatInterval)
	}
	m.lastTick = now
	m.self.LastSeen = now
	if m.heartbeatDue || !now.Before(m.nextHeartbeat) {
		m.sendHeartbeat()
		m.heartbeatDue = false
		m.nextHeartbeat = now.Add(m.cfg.HeartbeatInterval)
	}
	detect := !now.Before(m.graceUntil)
	scale := time.Duration(1 + m.health)
	probeAfter, suspectAfter, deadAfter := scale*m.cfg.ProbeTimeout, scale*m.cfg.SuspectTimeout, scale*m.cfg.DeadTimeout
	for _, id := range m.sortedIDs() {
		e := m.members[id]
		silence := now.Sub(e.heard)
		switch e.State {
		case Alive:
			switch {
			case detect && silence >= suspectAfter:
				e.State = Suspect
				e.suspectedAt = now
				e.wasSuspect = true
				m.stats.Suspicions++
				m.emit(EventSuspected, e)
				m.probe(e, now, 0)
			case detect && silence >= probeAfter && !now.Before(e.nextProbe):
				// Quiet, not suspected yet: a member that answers
				// (its heartbeats were lost or late) is never suspected.
				m.probe(e, now, flagProbe)
			}
		case Suspect:
			if detect && silence >= deadAfter && now.Sub(e.suspectedAt) >= deadAfter-suspectAfter {
				e.State = Dead
				e.removeAt = now.Add(m.cfg.Retention)
				m.emit(EventDied, e)
			} else if !now.Before(e.nextProbe) {
				m.probe(e, now, 0)
			}
		case Dead, Left:
			if !now.Before(e.removeAt) {
				m.retire(e)
				delete(m.members, id)
			}
		}
	}
	for seq, p := range m.probes {
		if !now.Before(p.expires) {
			delete(m.probes, seq)
		}
	}
	for seq, r := range m.relays {
		if !now.Before(r.expires) {
			delete(m.relays, seq)
		}
	}
}

// Gone records evidence from outside the protocol that the process of
// member id no longer exists: its host refused a connection to the port
// the member listened on (the runtime checks quiet members so). A member
// quiet for at least ProbeTimeout (times 1 + Health()) is declared dead at
// once, suspected first if it was not; a member heard more recently is
// left alone, since the refusal may predate its last message. A member
// wrongly declared dead comes back as after a partition (it refutes with
// a higher incarnation).
func (m *Machine) Gone(id uuid.UUID, now time.Time) {
	e := m.members[id]
	if e == nil || m.self.State == Left || (e.State != Alive && e.State != Suspect) {
		return
	}
	if now.Sub(e.heard) < time.Duration(1+m.health)*m.cfg.ProbeTimeout {
		return
	}
	if e.State == Alive {
		e.State = Suspect
		e.suspectedAt = now
		e.wasSuspect = true
		m.stats.Suspicions++
		m.emit(EventSuspected, e)
	}
	e.State = Dead
	e.removeAt = now.Add(m.cfg.Retention)
	m.stats.GoneDeaths++
	m.emit(EventDied, e)
}

// Ready returns, and forgets, the messages to send and the events since the
// last call. The caller owns the returned slices. Send the messages in
// order; a lost message is tolerated.
func (m *Machine) Ready() Ready {
	rd := Ready{Messages: m.out, Events: m.events}
	m.out, m.events = nil, nil
	return rd
}

// SetMeta sets key to value in this member's Meta, or removes key if value
// is empty. A change bumps this member's incarnation (so that peers never
// apply an older Meta after a newer one) and goes out with the next Tick.
// Errors wrap ErrMetaTooLarge; Meta is then unchanged.
func (m *Machine) SetMeta(key, value string) error {
	cur, ok := m.self.Meta[key]
	if (value == "" && !ok) || (ok && cur == value && value != "") {
		return nil
	}
	meta := maps.Clone(m.self.Meta)
	if value == "" {
		delete(meta, key)
	} else {
		meta[key] = value
	}
	if err := checkMeta(meta); err != nil {
		return err
	}
	m.self.Meta = meta
	m.self.Incarnation++
	m.heartbeatDue = true
	return nil
}

// Leave queues a LEAVE announcement: peers remove this member at once
// (EventLeft) instead of waiting for DeadTimeout. The announcement is repeated
// at the next two heartbeat intervals in case one is lost; after Leave the
// Machine sends nothing else and ignores what it receives.
func (m *Machine) Leave() {
	if m.self.State == Left {
		return
	}
	m.self.State = Left
	m.leaveLeft = leaveCopies
	m.sendLeave()
}

// Members returns every known member, self included, sorted by name and
// then ID. Dead and left members are listed for Retention.
func (m *Machine) Members() []Member {
	ms := make([]Member, 0, len(m.members)+1)
	ms = append(ms, m.self.clone())
	for _, e := range m.members {
		ms = append(ms, e.Member.clone())
	}
	slices.SortFunc(ms, func(a, b Member) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return ms
}

// Count returns how many other members (self excluded) are in state st,
// without copying any (Members copies every member and its Meta).
func (m *Machine) Count(st State) int {
	c := 0
	for _, e := range m.members {
		if e.State == st {
			c++
		}
	}
	return c
}

// Member returns the member with the given ID, self included, and whether it
// is known.
func (m *Machine) Member(id uuid.UUID) (Member, bool) {
	if id == m.self.ID {
		return m.self.clone(), true
	}
	if e, ok := m.members[id]; ok {
		return e.Member.clone(), true
	}
	return Member{}, false
}

// View returns this member's view: Alive and Suspect members, self included
// unless it has left, sorted by ID.
func (m *Machine) View() View {
	var v View
	if m.self.State != Left {
		v.Members = append(v.Members, m.self.clone())
	}
	for _, e := range m.members {
		if e.State == Alive || e.State == Suspect {
			v.Members = append(v.Members, e.Member.clone())
		}
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return slices.Compare(a.ID[:], b.ID[:]) })
	h := fnv.New64a()
	for _, mb := range v.Members {
		h.Write(mb.ID[:])
	}
	v.ID = h.Sum64()
	return v
}

// Converged reports whether every other member of the view last reported
// the same view ID as this member's.
func (m *Machine) Converged() bool {
	v := m.View()
	for _, mb := range v.Members {
		if mb.ID != m.self.ID && mb.View != v.ID {
			return false
		}
	}
	return true
}

// Oldest returns the oldest member of the view (earliest Started, then
// smallest ID), self included: the coordinator. A suspected member stays
// the coordinator until it is declared dead. After Leave, self is not a
// candidate; if no member remains the zero Member is returned.
func (m *Machine) Oldest() Member {
	var best *Member
	v := m.View()
	for i := range v.Members {
		if best == nil || older(&v.Members[i], best) {
			best = &v.Members[i]
		}
	}
	if best == nil {
		return Member{}
	}
	return *best
}

// Stats returns counters since New.
func (m *Machine) Stats() Stats { return m.stats }

// --- message handling ---

// retire remembers a dead or left member that is removed from the table,
// so that a replay of its old heartbeats never brings it back.
func (m *Machine) retire(e *entry) {
	if _, ok := m.retired[e.ID]; !ok {
		m.retiredOrder = append(m.retiredOrder, e.ID)
		if len(m.retiredOrder) > maxRetired {
			delete(m.retired, m.retiredOrder[0])
			m.retiredOrder = m.retiredOrder[1:]
		}
	}
	m.retired[e.ID] = retiredMember{incarnation: e.Incarnation, left: e.State == Left}
}

// noteName records mb as the newest member of its name if it is.
func (m *Machine) noteName(mb Member) {
	cur, ok := m.newest[mb.Name]
	if ok && !older(&cur, &mb) {
		return
	}
	if !ok && len(m.newest) >= maxNames {
		for name := range m.newest { // forget one arbitrary name
			delete(m.newest, name)
			break
		}
	}
	m.newest[mb.Name] = Member{ID: mb.ID, Name: mb.Name, Started: mb.Started}
}

// refuseNew reports whether the heartbeat of a member not in the table
// must be refused: a member removed after it died (unless it comes back
// with a higher incarnation) or left, or an older process of a name that
// a newer member holds (a restarted node's previous incarnation). Such
// heartbeats are replays of old traffic or the last words of a replaced
// process: admitting them would create a ghost member.
func (m *Machine) refuseNew(from uuid.UUID, msg *message, now time.Time) bool {
	if r, ok := m.retired[from]; ok {
		if r.left || msg.Incarnation <= r.incarnation {
			m.stats.Stale++
			m.stats.Retired++
			if !r.left && (r.lastNotice.IsZero() || now.Sub(r.lastNotice) >= m.cfg.HeartbeatInterval) {
				// A member declared dead behind a long partition is
				// told so: it refutes with a higher incarnation, and
				// that heartbeat is admitted. A replayed heartbeat earns
				// a ping that nobody answers.
				r.lastNotice = now
				m.retired[from] = r
				m.send(from, &message{Type: typePing, To: from, Seq: m.nextSeq(), Incarnation: r.incarnation})
			}
			return true
		}
		delete(m.retired, from)
	}
	if cur, ok := m.newest[msg.Name]; ok && cur.ID != from {
		cand := Member{ID: from, Name: msg.Name, Started: msg.Started}
		if older(&cand, &cur) {
			m.stats.Stale++
			m.stats.OlderIncarnation++
			return true
		}
	}
	return false
}

func (m *Machine) onHeartbeat(from uuid.UUID, msg *message, now time.Time) {
	e := m.members[from]
	switch {
	case e == nil:
		if m.refuseNew(from, msg, now) {
			return
		}
		if !m.admit() {
			m.stats.IgnoredMembers++
			return
		}
		e = &entry{
			Member: Member{ID: from, Name: msg.Name, Started: msg.Started, Incarnation: msg.Incarnation,
				State: Alive, Meta: msg.Meta, LastSeen: now, View: msg.View},
			heard: now,
		}
		m.members[from] = e
		m.noteName(e.Member)
		m.emit(EventJoined, e)
		m.replaceByName(e, now)
		// Answer a newcomer with a heartbeat at the next Tick, so that a
		// starting member learns at once that it is not alone.
		m.heartbeatDue = true
	case !msg.Started.Equal(e.Started) || msg.Name != e.Name:
		// An ID is one process: another start time or name under it is
		// not this member.
		m.stale(e)
		return
	case e.State == Left:
		m.stale(e)
		return
	case e.State == Dead:
		if msg.Incarnation <= e.Incarnation {
			m.stale(e)
			m.notice(e, now)
			return
		}
		e.State = Alive
		e.Incarnation, e.Meta, e.View = msg.Incarnation, msg.Meta, msg.View
		e.heard, e.LastSeen = now, now
		m.emit(EventJoined, e)
		m.replaceByName(e, now)
	case msg.Incarnation < e.Incarnation:
		// Older than what we know: reordered or replayed. It proves
		// nothing about the member now.
		m.stale(e)
		return
	default:
		m.heard(e, now)
		if e.State == Suspect {
			e.State = Alive
			m.emit(EventRecovered, e)
		}
		e.Incarnation, e.View = msg.Incarnation, msg.View
		if !maps.Equal(e.Meta, msg.Meta) {
			e.Meta = msg.Meta
			m.emit(EventUpdated, e)
		}
	}
	for _, s := range msg.Suspicions {
		if s.ID == m.self.ID {
			m.refute(s.Incarnation)
		}
	}
}

func (m *Machine) onLeave(from uuid.UUID, now time.Time) {
	e := m.members[from]
	if e == nil || e.State == Left {
		return
	}
	e.State = Left
	e.removeAt = now.Add(m.cfg.Retention)
	m.emit(EventLeft, e)
}

// onPing answers a ping addressed to this member. A ping means the sender
// suspects this member (or declared it dead) at msg.Incarnation.
func (m *Machine) onPing(from uuid.UUID, msg *message) {
	if msg.Flags&flagProbe == 0 {
		m.refute(msg.Incarnation)
	}
	m.send(from, &message{Type: typeAck, To: from, Seq: msg.Seq, Target: m.self.ID, Incarnation: m.self.Incarnation})
}

// onPingReq pings msg.Target on behalf of from and forwards its ack.
func (m *Machine) onPingReq(from uuid.UUID, msg *message, now time.Time) {
	if msg.Target == m.self.ID {
		m.onPing(from, &message{Seq: msg.Seq, Incarnation: msg.Incarnation, Flags: msg.Flags})
		return
	}
	if len(m.relays) >= maxRelays || msg.Target == from || msg.Target == uuid.Nil {
		return
	}
	seq := m.nextSeq()
	m.relays[seq] = relay{origin: from, originSeq: msg.Seq, target: msg.Target, expires: now.Add(m.cfg.DeadTimeout)}
	m.send(msg.Target, &message{Type: typePing, To: msg.Target, Seq: seq, Incarnation: msg.Incarnation, Flags: msg.Flags & flagProbe})
}

func (m *Machine) onAck(from uuid.UUID, msg *message, now time.Time) {
	if p, ok := m.probes[msg.Seq]; ok && p.target == msg.Target {
		delete(m.probes, msg.Seq)
		if e := m.members[msg.Target]; e != nil {
			m.alive(e, msg.Incarnation, now)
		}
		return
	}
	if r, ok := m.relays[msg.Seq]; ok && r.target == msg.Target && from == r.target {
		delete(m.relays, msg.Seq)
		m.send(r.origin, &message{Type: typeAck, To: r.origin, Seq: r.originSeq, Target: r.target, Incarnation: msg.Incarnation})
	}
	if from == msg.Target { // a late or relayed-for-another ack is still direct evidence
		if e := m.members[from]; e != nil {
			m.alive(e, msg.Incarnation, now)
		}
	}
}

// alive applies evidence that e is alive at incarnation inc: heard directly
// or through a probe.
func (m *Machine) alive(e *entry, inc uint64, now time.Time) {
	switch e.State {
	case Left:
		m.stale(e)
	case Dead:
		if inc <= e.Incarnation {
			m.stale(e)
			m.notice(e, now)
			return
		}
		e.State, e.Incarnation = Alive, inc
		e.heard, e.LastSeen = now, now
		m.emit(EventJoined, e)
		m.replaceByName(e, now)
	default:
		m.heard(e, now)
		if inc > e.Incarnation {
			e.Incarnation = inc
		}
		if e.State == Suspect {
			e.State = Alive
			m.emit(EventRecovered, e)
		}
	}
}

// heardFrom applies traffic from id that carries none of its incarnation.
func (m *Machine) heardFrom(id uuid.UUID, now time.Time) {
	e := m.members[id]
	if e == nil {
		return
	}
	switch e.State {
	case Alive, Suspect:
		m.alive(e, e.Incarnation, now)
	case Dead:
		m.stale(e)
		m.notice(e, now)
	case Left:
		m.stale(e)
	}
}

func (m *Machine) stale(e *entry) {
	m.stats.Stale++
	if e.replaced {
		m.stats.NameConflicts++
	}
}

// notice tells a Dead member that is still talking that it was declared
// dead, at most once per heartbeat interval: it refutes with a higher
// incarnation, and its ack brings it back.
func (m *Machine) notice(e *entry, now time.Time) {
	if !e.lastNotice.IsZero() && now.Sub(e.lastNotice) < m.cfg.HeartbeatInterval {
		return
	}
	e.lastNotice = now
	seq := m.nextSeq()
	m.probes[seq] = probe{target: e.ID, expires: now.Add(m.cfg.DeadTimeout)}
	m.send(e.ID, &message{Type: typePing, To: e.ID, Seq: seq, Incarnation: e.Incarnation})
}

// refute bumps this member's incarnation above a suspicion at inc.
func (m *Machine) refute(inc uint64) {
	if inc < m.self.Incarnation {
		return
	}
	m.self.Incarnation = inc + 1
	m.stats.Refutations++
	m.heartbeatDue = true
	// Others found this member slow: it is probably slow to hear them too.
	m.sick(m.lastTick)
}

// sick raises the local health score (see Config.MaxHealthScore).
func (m *Machine) sick(now time.Time) {
	m.health = min(m.health+1, m.cfg.MaxHealthScore)
	m.healthyUntil = now.Add(4 * m.cfg.HeartbeatInterval)
}

// heard records direct evidence that the Alive or Suspect member e is
// alive, counting a false suspicion if it was suspected.
func (m *Machine) heard(e *entry, now time.Time) {
	e.heard, e.LastSeen = now, now
	if e.wasSuspect {
		e.wasSuspect = false
		m.stats.FalseSuspicions++
	}
}

// Health returns this member's local health score: 0 when healthy, up to
// Config.MaxHealthScore; every failure-detection timeout is multiplied by
// 1 + Health().
func (m *Machine) Health() int { return m.health }

// probe pings a quiet member (flags flagProbe) or a suspect (flags 0)
// directly and asks two other random alive members to ping it too.
func (m *Machine) probe(e *entry, now time.Time, flags uint64) {
	e.nextProbe = now.Add(m.cfg.HeartbeatInterval)
	seq := m.nextSeq()
	m.probes[seq] = probe{target: e.ID, expires: now.Add(m.cfg.DeadTimeout)}
	m.send(e.ID, &message{Type: typePing, To: e.ID, Seq: seq, Incarnation: e.Incarnation, Flags: flags})
	var helpers []uuid.UUID
	for _, id := range m.sortedIDs() {
		if h := m.members[id]; id != e.ID && h.State == Alive {
			helpers = append(helpers, id)
		}
	}
	m.rng.Shuffle(len(helpers), func(i, j int) { helpers[i], helpers[j] = helpers[j], helpers[i] })
	for _, h := range helpers[:min(2, len(helpers))] {
		m.send(h, &message{Type: typePingReq, To: h, Seq: seq, Target: e.ID, Incarnation: e.Incarnation, Flags: flags})
	}
}

// replaceByName applies the rule that names are unique: of the members
// sharing e's name, the newest (latest Started, then largest ID) stays and
// the others are marked Left as replaced. Self is never marked; a newer
// member with this member's name is counted as a conflict.
func (m *Machine) replaceByName(e *entry, now time.Time) {
	if e.Name == m.self.Name {
		if older(&m.self, &e.Member) {
			m.stats.NameConflicts++
		} else {
			m.replace(e, now)
		}
		return
	}
	for _, id := range m.sortedIDs() {
		o := m.members[id]
		if o == e || o.Name != e.Name || o.State == Left {
			continue
		}
		if older(&o.Member, &e.Member) {
			m.replace(o, now)
		} else {
			m.replace(e, now)
			return
		}
	}
}

func (m *Machine) replace(e *entry, now time.Time) {
	e.State = Left
	e.replaced = true
	e.removeAt = now.Add(m.cfg.Retention)
	m.emit(EventLeft, e)
}

// admit makes room for one more member, forgetting the dead or left member
// due to be forgotten first if the table is full.
func (m *Machine) admit() bool {
	if len(m.members)+1 < m.cfg.MaxMembers {
		return true
	}
	var victim *entry
	for _, e := range m.members {
		if (e.State == Dead || e.State == Left) && (victim == nil || e.removeAt.Before(victim.removeAt)) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	delete(m.members, victim.ID)
	return true
}

// --- output ---

func (m *Machine) sendHeartbeat() {
	msg := &message{
		Type:        typeHeartbeat,
		Name:        m.self.Name,
		Started:     m.self.Started,
		Incarnation: m.self.Incarnation,
		View:        m.View().ID,
		Meta:        m.self.Meta,
	}
	var sus []suspicion
	for _, id := range m.sortedIDs() {
		if e := m.members[id]; e.State == Suspect || e.State == Dead {
			sus = append(sus, suspicion{ID: id, Incarnation: e.Incarnation})
		}
	}
	if len(sus) > MaxSuspicions { // rotate so that every suspect hears of it in turn
		m.rotate = (m.rotate + MaxSuspicions) % len(sus)
		sus = append(sus[m.rotate:], sus[:m.rotate]...)[:MaxSuspicions]
	}
	msg.Suspicions = sus
	m.send(uuid.Nil, msg)
}

func (m *Machine) sendLeave() {
	m.leaveLeft--
	m.send(uuid.Nil, &message{Type: typeLeave, Incarnation: m.self.Incarnation})
}

func (m *Machine) send(to uuid.UUID, msg *message) {
	m.out = append(m.out, Outgoing{To: to, Payload: msg.encode(nil)})
}

func (m *Machine) emit(k EventKind, e *entry) {
	m.events = append(m.events, Event{Kind: k, Member: e.Member.clone()})
}

func (m *Machine) nextSeq() uint32 {
	m.seq++
	return m.seq
}

func (m *Machine) sortedIDs() []uuid.UUID {
	ids := slices.Collect(maps.Keys(m.members))
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

func sortedKeys(mp map[string]string) []string {
	return slices.Sorted(maps.Keys(mp))
}
