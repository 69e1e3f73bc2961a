package multicast

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

// ErrMessageTooLarge is returned by Broadcast for a payload above
// Config.MaxMessage; send larger state by state transfer.
var ErrMessageTooLarge = errors.New("multicast: message larger than MaxMessage")

const (
	maxPeers        = 4096    // authenticated senders tracked at once
	maxTombstones   = 1024    // forgotten members remembered, so late packets do not resurrect them
	maxNakAnswer    = 1024    // packets resent for one NAK
	maxGapScan      = 1 << 17 // sequence numbers scanned per gap search
	maxNakBackoff   = 16      // NakDelay multiplier cap
	headSlack       = 64      // packets just past the delivery point are accepted even when the window is full
	goneGiveUpTries = 3       // NAKs before giving up on packets the sender reports gone
)

// outPacket is a datagram the runtime must send.
type outPacket struct {
	to   netip.AddrPort // invalid: the group
	b    []byte
	data bool // a Broadcast packet (counts against the send queue)
}

// ready is what one Step, Tick or Broadcast produced, drained by the runtime.
type ready struct {
	packets    []outPacket
	messages   []Message
	events     []Event
	ackChanged bool
}

// rpkt is a received data packet waiting for delivery.
type rpkt struct {
	flags   packet.Flags
	idx     uint16
	count   uint16
	payload []byte
}

// ringEntry is one of this member's sent packets.
type ringEntry struct {
	seq uint64
	b   []byte
}

// replayWindow accepts each control counter once, within a 64-entry window
// below the highest counter seen.
type replayWindow struct {
	max  uint64
	bits uint64
}

func (w *replayWindow) accept(n uint64) bool {
	if n > w.max {
		shift := n - w.max
		if shift >= 64 {
			w.bits = 1
		} else {
			w.bits = w.bits<<shift | 1
		}
		w.max = n
		return true
	}
	d := w.max - n
	if d >= 64 || w.bits&(1<<d) != 0 {
		return false
	}
	w.bits |= 1 << d
	return true
}

// peer is the per-sender receive state.
type peer struct {
	id       uuid.UUID
	addr     netip.AddrPort // unicast address, learned from its control-channel packets
	started  bool
	next     uint64 // next sequence number to deliver
	high     uint64 // highest sequence number known to exist
	low      uint64 // lowest sequence number the sender still holds (from its status)
	buf      map[uint64]*rpkt
	bufBytes int
	ctrl     replayWindow
	nakAt    time.Time
	nakTries int
	gone     bool      // Forget was called: removed once nothing is missing
	goneAt   time.Time // first tick after Forget

	ackedMine uint64               // highest of our sequence numbers it delivered
	reports   map[uuid.UUID]uint64 // what it delivered, per sender

	fwd      map[uint64][]byte // its sealed data packets, kept to answer "anyone" NAKs
	tokens   float64           // NAK answer budget
	tokensAt time.Time
}

type fwdRef struct {
	id  uuid.UUID
	seq uint64
}

// engine is the protocol core: sealing, fragmentation, ordering, repair.
// It performs no I/O; time comes in with every call, except the wall-clock
// timestamp it puts in the packets it seals (wall, time.Now outside tests).
// Not safe for concurrent use.
type engine struct {
	cfg     Config
	id      uuid.UUID
	wall    func() time.Time
	seal    *sealer
	codec   *codec
	scratch []byte

	nextSeq   uint64 // next data sequence number
	ctrlCtr   uint64 // last control counter used
	ring      []ringEntry
	ringHead  int
	ringBytes int

	peers     map[uuid.UUID]*peer
	tombs     map[uuid.UUID]struct{}
	tombOrder []uuid.UUID
	fwdQueue  []fwdRef
	fwdHead   int
	fwdBytes  int
	fwdCount  int

	lastStatus   time.Time
	statusDirty  bool
	statusOffset int

	newTokens   float64   // key derivations for unknown senders still allowed
	newTokensAt time.Time // when newTokens was last refilled
	staleWarned time.Time // last "stale" warning (one per 10 s)

	out   ready
	stats Stats
}

func newEngine(cfg Config) *engine {
	if cfg.MemberID == uuid.Nil {
		cfg.MemberID = uuid.New()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &engine{
		cfg:     cfg,
		id:      cfg.MemberID,
		wall:    cfg.Clock,
		seal:    newSealer(cfg.Keyring, ClusterID(cfg.ClusterName)),
		codec:   newCodec(cfg.Compression, cfg.CompressThreshold, cfg.MaxMessage),
		scratch: make([]byte, 0, MaxUDPPayload),
		nextSeq: 1,
		peers:   make(map[uuid.UUID]*peer),
		tombs:   make(map[uuid.UUID]struct{}),
		stats:   Stats{Rejected: make(map[string]uint64)},
	}
}

func (e *engine) reject(reason string) { e.stats.Rejected[reason]++ }

// drain returns and clears the accumulated output.
func (e *engine) drain() ready {
	r := e.out
	e.out = ready{}
	return r
}

func (e *engine) highSeq() uint64 { return e.nextSeq - 1 }

// fragPayload is the plaintext carried by one full data packet.
func (e *engine) fragPayload() int { return e.cfg.MaxDatagram - Overhead }

// broadcast seals payload into data packets, keeps them in the retransmit
// ring and returns them with the sequence number of the last fragment.
func (e *engine) broadcast(payload []byte, opt SendOptions) (uint64, []outPacket, error) {
	if len(payload) > e.cfg.MaxMessage {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(payload), e.cfg.MaxMessage)
	}
	body, compressed := e.codec.compress(payload)
	per := e.fragPayload()
	n := max(1, (len(body)+per-1)/per)
	var flags packet.Flags
	if compressed {
		flags |= packet.FlagCompressed
	}
	if n > 1 {
		flags |= packet.FlagFragment
	}
	if opt.Ack {
		flags |= packet.FlagAckRequested
	}
	pkts := make([]outPacket, 0, n)
	for i := range n {
		chunk := body[min(i*per, len(body)):min((i+1)*per, len(body))]
		seq := e.nextSeq
		e.nextSeq++
		h := packet.Header{Type: packet.TypeData, Flags: flags, Sender: e.id, Seq: seq, HighSeq: seq, FragIndex: uint16(i), FragCount: uint16(n), Timestamp: e.wall().UnixMilli()}
		b := e.seal.seal(make([]byte, 0, Overhead+len(chunk)), &h, chunk)
		e.ringPush(seq, b)
		pkts = append(pkts, outPacket{b: b, data: true})
	}
	e.stats.MessagesSent++
	e.statusDirty = true
	return e.nextSeq - 1, pkts, nil
}

func (e *engine) ringLen() int { return len(e.ring) - e.ringHead }

func (e *engine) ringPush(seq uint64, b []byte) {
	e.ring = append(e.ring, ringEntry{seq, b})
	e.ringBytes += len(b)
	for e.ringLen() > 1 && (e.ringBytes > e.cfg.RetransmitBuffer || e.ringLen() > e.cfg.RetransmitPackets) {
		e.ringPop()
	}
}

func (e *engine) ringPop() {
	e.ringBytes -= len(e.ring[e.ringHead].b)
	e.ring[e.ringHead] = ringEntry{}
	e.ringHead++
	if e.ringHead > 1024 && e.ringHead*2 > len(e.ring) {
		e.ring = append(e.ring[:0:0], e.ring[e.ringHead:]...)
		e.ringHead = 0
	}
}

// ringLow is the lowest sequence number still in the ring (nextSeq when empty).
func (e *engine) ringLow() uint64 {
	if e.ringLen() == 0 {
		return e.nextSeq
	}
	return e.ring[e.ringHead].seq
}

func (e *engine) ringGet(seq uint64) []byte {
	low := e.ringLow()
	if seq < low || seq >= e.nextSeq {
		return nil
	}
	return e.ring[e.ringHead+int(seq-low)].b
}

// control seals a control-channel packet.
func (e *engine) control(t packet.Type, flags packet.Flags, body []byte) []byte {
	e.ctrlCtr++
	h := packet.Header{Type: t, Flags: flags, Sender: e.id, Seq: e.ctrlCtr, HighSeq: e.highSeq(), FragCount: 1, Timestamp: e.wall().UnixMilli()}
	return e.seal.seal(make([]byte, 0, Overhead+len(body)), &h, body)
}

func (e *engine) send(to netip.AddrPort, b []byte) {
	e.out.packets = append(e.out.packets, outPacket{to: to, b: b})
}

// sendControl seals an application control message.
func (e *engine) sendControl(to uuid.UUID, payload []byte) (outPacket, error) {
	if len(payload)+Overhead > e.cfg.MaxDatagram {
		return outPacket{}, fmt.Errorf("%w: control message of %d bytes exceeds one datagram (%d)", ErrMessageTooLarge, len(payload), e.cfg.MaxDatagram-Overhead)
	}
	var addr netip.AddrPort
	if to != uuid.Nil {
		p := e.peers[to]
		if p == nil || !p.addr.IsValid() {
			return outPacket{}, fmt.Errorf("%w: %s", ErrUnknownMember, to)
		}
		addr = p.addr
	}
	return outPacket{to: addr, b: e.control(packet.TypeControl, 0, payload)}, nil
}

// ErrUnknownMember is returned when a member's address is not known.
var ErrUnknownMember = errors.New("multicast: unknown member")

// admit decides, before its key is derived, whether a packet of a sender
// whose key is not cached may be authenticated: a known peer (its key was
// flushed by a key rotation) always; a forgotten one never; an unknown
// one only when its (not yet authenticated) timestamp is fresh and the
// derivation budget allows, so that forged sender ids cost at most
// NewSenderRate key derivations per second.
func (e *engine) admit(h *packet.Header, now time.Time) string {
	if _, ok := e.peers[h.Sender]; ok {
		return ""
	}
	if _, dead := e.tombs[h.Sender]; dead {
		return reasonForgotten
	}
	if reason := e.fresh(h, now); reason != "" {
		return reason
	}
	rate := float64(e.cfg.NewSenderRate)
	if e.newTokensAt.IsZero() {
		e.newTokens = rate
	} else if d := now.Sub(e.newTokensAt).Seconds(); d > 0 {
		e.newTokens = min(rate, e.newTokens+d*rate)
	}
	e.newTokensAt = now
	if e.newTokens < 1 {
		return reasonSenderRate
	}
	e.newTokens--
	return ""
}

// fresh checks the timestamp of the first packet of a sender against
// this member's clock.
func (e *engine) fresh(h *packet.Header, now time.Time) string {
	skew := now.Sub(time.UnixMilli(h.Timestamp))
	if skew <= e.cfg.MaxClockSkew && skew >= -e.cfg.MaxClockSkew {
		return ""
	}
	// A repair of an old packet (retransmit flag) reaching a member that
	// never heard its sender is normal while joining: counted, not logged.
	if h.Flags&packet.FlagRetransmit == 0 && (e.staleWarned.IsZero() || now.Sub(e.staleWarned) >= 10*time.Second) {
		e.staleWarned = now
		dir := "behind"
		if skew < 0 {
			dir, skew = "ahead of", -skew
		}
		e.cfg.Logger.Warn(fmt.Sprintf("multicast: refused a packet of a sender not heard before: its timestamp is %s %s this host's clock, more than the %s tolerated; it is a replay of old traffic, or the hosts' clocks are apart (synchronise them with NTP)",
			skew.Round(time.Millisecond), dir, e.cfg.MaxClockSkew),
			"subsystem", "multicast", "peer", h.Sender, "reason", reasonStale)
	}
	return reasonStale
}

// step processes one received datagram.
func (e *engine) step(b []byte, from netip.AddrPort, now time.Time) {
	if len(b) >= 32 && uuid.UUID(b[16:32]) == e.id {
		return // our own multicast looped back (not counted)
	}
	e.stats.PacketsReceived++
	e.stats.BytesReceived += uint64(len(b))
	if len(b) > e.cfg.MaxDatagram {
		e.reject(reasonOversize)
		return
	}
	h, pt, reason := e.seal.open(b, e.scratch, func(h *packet.Header) string { return e.admit(h, now) })
	if reason != "" {
		e.reject(reason)
		return
	}
	if _, dead := e.tombs[h.Sender]; dead {
		e.reject(reasonForgotten)
		return
	}
	p := e.peers[h.Sender]
	if p == nil {
		// First contact (the sender, or this member, is new): only a
		// fresh packet, so that traffic captured earlier cannot be
		// replayed to a member that restarted or joined since.
		if reason := e.fresh(&h, now); reason != "" {
			e.reject(reason)
			return
		}
		if len(e.peers) >= maxPeers {
			e.reject(reasonPeers)
			return
		}
		p = &peer{id: h.Sender, buf: make(map[uint64]*rpkt), reports: make(map[uuid.UUID]uint64), fwd: make(map[uint64][]byte)}
		e.peers[h.Sender] = p
	}
	if h.Type != packet.TypeData {
		if !p.ctrl.accept(h.Seq) {
			e.reject(reasonReplay)
			return
		}
		if from.IsValid() {
			p.addr = from
		}
	} else if !p.addr.IsValid() && h.Flags&packet.FlagRetransmit == 0 && from.IsValid() {
		p.addr = from
	}
	if !p.started {
		p.started = true
		if h.Type == packet.TypeData {
			p.next = h.Seq - uint64(h.FragIndex)
		} else {
			p.next = h.HighSeq + 1
		}
		p.high = p.next - 1
		e.out.events = append(e.out.events, Event{Kind: EventNewSender, From: p.id, Seq: p.next})
	}
	if h.HighSeq > p.high {
		p.high = h.HighSeq
	}
	switch h.Type {
	case packet.TypeData:
		e.onData(p, &h, b, pt, now)
	case packet.TypeControl:
		e.out.messages = append(e.out.messages, Message{From: p.id, Control: true, Payload: append([]byte(nil), pt...), Addr: from})
	case packet.TypeNak:
		nb, err := decodeNak(pt)
		if err != nil {
			e.reject(reasonMalformed)
			return
		}
		e.onNak(p, h.Flags&packet.FlagAnyone != 0, nb, from, now)
	case packet.TypeAck:
		ab, err := decodeAck(pt)
		if err != nil {
			e.reject(reasonMalformed)
			return
		}
		if ab.target == e.id {
			e.noteAcked(p, ab.upTo)
		}
	case packet.TypeStatus:
		sb, err := decodeStatus(pt)
		if err != nil {
			e.reject(reasonMalformed)
			return
		}
		e.onStatus(p, sb)
	case packet.TypePeers:
		e.onPeers(pt)
	}
}

func (e *engine) noteAcked(p *peer, upTo uint64) {
	if upTo > e.highSeq() {
		upTo = e.highSeq()
	}
	if upTo > p.ackedMine {
		p.ackedMine = upTo
		e.out.ackChanged = true
	}
}

func (e *engine) onStatus(p *peer, sb statusBody) {
	p.low = sb.low
	for _, en := range sb.entries {
		if en.sender == e.id {
			e.noteAcked(p, en.delivered)
			continue
		}
		if en.delivered > p.reports[en.sender] {
			p.reports[en.sender] = en.delivered
		}
		// Another member delivered more of a sender than we know exists:
		// the sender's tail was lost to us, possibly with the sender.
		if q := e.peers[en.sender]; q != nil && q != p && q.started && en.delivered > q.high {
			q.high = en.delivered
		}
	}
}

func (e *engine) onData(p *peer, h *packet.Header, sealed, pt []byte, now time.Time) {
	if h.Seq < p.next || p.buf[h.Seq] != nil {
		e.reject(reasonDuplicate)
		return
	}
	if h.FragCount > 1 && int(h.FragCount-1)*e.fragPayloadMin() > e.cfg.MaxMessage+1 {
		e.reject(reasonFragment)
		return
	}
	if h.Seq >= p.next+headSlack && (p.bufBytes+len(pt) > e.cfg.ReceiveWindow || h.Seq-p.next > uint64(e.cfg.RetransmitPackets)*2) {
		e.reject(reasonWindow)
		return
	}
	p.buf[h.Seq] = &rpkt{flags: h.Flags, idx: h.FragIndex, count: h.FragCount, payload: append([]byte(nil), pt...)}
	p.bufBytes += len(pt)
	e.fwdPut(p, h.Seq, sealed)
	e.deliver(p, now)
}

// fragPayloadMin is the smallest fragment payload a member could use.
func (e *engine) fragPayloadMin() int { return 64 }

// deliver hands over every complete message at the head of p's buffer.
func (e *engine) deliver(p *peer, now time.Time) {
	start := p.next
	ackReq := false
	for {
		r := p.buf[p.next]
		if r == nil {
			break
		}
		if r.idx != 0 {
			// The tail of a message whose head was skipped.
			e.dropBuffered(p, p.next)
			p.next++
			continue
		}
		c := uint64(r.count)
		complete, consistent := true, true
		size := len(r.payload)
		for i := uint64(1); i < c; i++ {
			q := p.buf[p.next+i]
			if q == nil {
				complete = false
				break
			}
			if uint64(q.idx) != i || q.count != r.count || q.flags&(packet.FlagCompressed|packet.FlagAckRequested) != r.flags&(packet.FlagCompressed|packet.FlagAckRequested) {
				consistent = false
				break
			}
			size += len(q.payload)
		}
		if !consistent {
			e.reject(reasonFragment)
			e.dropBuffered(p, p.next)
			p.next++
			continue
		}
		if !complete {
			break
		}
		var msg []byte
		if c == 1 {
			msg = r.payload
		} else {
			msg = make([]byte, 0, size)
			for i := range c {
				msg = append(msg, p.buf[p.next+i].payload...)
			}
		}
		for i := range c {
			e.dropBuffered(p, p.next+i)
		}
		p.next += c
		last := p.next - 1
		if size > e.cfg.MaxMessage+1 {
			e.reject(reasonOversize)
			continue
		}
		if r.flags&packet.FlagCompressed != 0 {
			var err error
			if msg, err = e.codec.decompress(msg); err != nil {
				e.reject(reasonDecompress)
				continue
			}
		}
		if r.flags&packet.FlagAckRequested != 0 {
			ackReq = true
		}
		e.out.messages = append(e.out.messages, Message{From: p.id, Seq: last, Payload: msg, Addr: p.addr})
		e.stats.MessagesDelivered++
	}
	if p.next != start {
		e.statusDirty = true
		p.nakTries = 0
		p.nakAt = time.Time{}
	}
	if ackReq {
		ab := ackBody{target: p.id, upTo: p.next - 1}
		e.send(p.addr, e.control(packet.TypeAck, 0, ab.append(nil)))
	}
}

func (e *engine) dropBuffered(p *peer, seq uint64) {
	if r := p.buf[seq]; r != nil {
		p.bufBytes -= len(r.payload)
		delete(p.buf, seq)
	}
}

// fwdPut keeps another member's sealed packet to answer "anyone" NAKs.
func (e *engine) fwdPut(p *peer, seq uint64, sealed []byte) {
	if _, ok := p.fwd[seq]; ok {
		return
	}
	b := append([]byte(nil), sealed...)
	b[4] &^= byte(packet.FlagRetransmit)
	p.fwd[seq] = b
	e.fwdBytes += len(b)
	e.fwdCount++
	e.fwdQueue = append(e.fwdQueue, fwdRef{p.id, seq})
	for e.fwdHead < len(e.fwdQueue) && (e.fwdBytes > e.cfg.RetransmitBuffer || e.fwdCount > e.cfg.RetransmitPackets) {
		ref := e.fwdQueue[e.fwdHead]
		e.fwdQueue[e.fwdHead] = fwdRef{}
		e.fwdHead++
		if q := e.peers[ref.id]; q != nil {
			e.fwdDelete(q, ref.seq)
		}
	}
	if e.fwdHead > 1024 && e.fwdHead*2 > len(e.fwdQueue) {
		e.fwdQueue = append(e.fwdQueue[:0:0], e.fwdQueue[e.fwdHead:]...)
		e.fwdHead = 0
	}
}

func (e *engine) fwdDelete(p *peer, seq uint64) {
	if b, ok := p.fwd[seq]; ok {
		e.fwdBytes -= len(b)
		e.fwdCount--
		delete(p.fwd, seq)
	}
}

func (e *engine) onNak(req *peer, anyone bool, nb nakBody, from netip.AddrPort, now time.Time) {
	// What this member can answer from, and the sequence numbers it can
	// hold: a NAK range is clamped to them before it is scanned, so a
	// range of 2^64 numbers costs no more than the store it asks about.
	var src func(uint64) []byte
	var low, high uint64
	switch {
	case nb.target == e.id:
		src = e.ringGet
		low, high = e.ringLow(), e.highSeq()
	case anyone:
		p := e.peers[nb.target]
		if p == nil {
			return
		}
		src = func(s uint64) []byte { return p.fwd[s] }
		high = p.high
		if span := uint64(e.cfg.RetransmitPackets); high > span {
			low = high - span
		}
	default:
		return
	}
	// Per-requester token bucket: NakAnswerRate NAKs per second.
	rate := float64(e.cfg.NakAnswerRate)
	if req.tokensAt.IsZero() {
		req.tokens = rate
	} else {
		req.tokens = min(rate, req.tokens+now.Sub(req.tokensAt).Seconds()*rate)
	}
	req.tokensAt = now
	if req.tokens < 1 {
		e.reject(reasonRate)
		return
	}
	req.tokens--
	to := from
	if !to.IsValid() {
		to = req.addr
	}
	sent, gone := 0, false
	for _, r := range nb.ranges {
		first, last := r.first, min(r.last, high)
		if first < low {
			if nb.target == e.id {
				gone = true // below the ring: tell the requester
			}
			first = low
		}
		for s := first; s <= last && sent < maxNakAnswer; s++ {
			if b := src(s); b != nil {
				rb := append([]byte(nil), b...)
				rb[4] |= byte(packet.FlagRetransmit)
				e.send(to, rb)
				sent++
				e.stats.Retransmissions++
			}
			if s == ^uint64(0) {
				break
			}
		}
	}
	if gone {
		// Tell the requester at once what we no longer hold.
		e.send(to, e.statusPacket())
	}
}

// statusPacket builds a status packet; with many members it reports a
// rotating subset of the senders that fits one datagram.
func (e *engine) statusPacket() []byte {
	sb := statusBody{low: e.ringLow()}
	maxEntries := (e.cfg.MaxDatagram - Overhead - 10) / statusEntryLen
	ids := make([]uuid.UUID, 0, len(e.peers))
	for id, p := range e.peers {
		if p.started {
			ids = append(ids, id)
		}
	}
	sortUUIDs(ids)
	n := min(len(ids), maxEntries)
	if n > 0 {
		off := e.statusOffset % len(ids)
		for i := range n {
			p := e.peers[ids[(off+i)%len(ids)]]
			sb.entries = append(sb.entries, statusEntry{p.id, p.next - 1})
		}
		if len(ids) > maxEntries {
			e.statusOffset += n
		}
	}
	return e.control(packet.TypeStatus, 0, sb.append(make([]byte, 0, 10+n*statusEntryLen)))
}

// tick runs timers: NAKs, give-ups, status, buffer release.
func (e *engine) tick(now time.Time) {
	unacked := false
	for _, p := range e.peers {
		if !p.gone && p.ackedMine < e.highSeq() {
			unacked = true
		}
		e.tickPeer(p, now)
	}
	interval := e.cfg.StatusIdleInterval
	if unacked || e.statusDirty {
		interval = e.cfg.StatusInterval
	}
	if e.lastStatus.IsZero() || now.Sub(e.lastStatus) >= interval {
		e.lastStatus = now
		e.statusDirty = false
		e.send(netip.AddrPort{}, e.statusPacket())
		e.release()
	}
}

// missing returns up to maxNakRanges ranges of sequence numbers of p that
// are known to exist but are not buffered, from p.next on.
func (e *engine) missing(p *peer) []seqRange {
	var rs []seqRange
	end := p.high
	if end-p.next > maxGapScan {
		end = p.next + maxGapScan
	}
	for s := p.next; s <= end && len(rs) < maxNakRanges; s++ {
		if p.buf[s] != nil {
			continue
		}
		r := seqRange{s, s}
		for r.last < end && p.buf[r.last+1] == nil {
			r.last++
		}
		if r.last == end && end < p.high {
			r.last = p.high
		}
		rs = append(rs, r)
		s = r.last
	}
	return rs
}

func (e *engine) tickPeer(p *peer, now time.Time) {
	if p.gone && p.goneAt.IsZero() {
		p.goneAt = now
	}
	// A forgotten member is kept for a grace period, long enough for the
	// status of other members to reveal a tail of it that we missed.
	buryable := p.gone && now.Sub(p.goneAt) >= 2*e.cfg.StatusIdleInterval
	if !p.started || p.next > p.high {
		p.nakAt, p.nakTries = time.Time{}, 0
		if buryable {
			e.bury(p.id)
		}
		return
	}
	if p.nakAt.IsZero() {
		p.nakAt = now.Add(e.cfg.NakDelay)
		return
	}
	if now.Before(p.nakAt) {
		return
	}
	rs := e.missing(p)
	if len(rs) == 0 {
		p.nakAt, p.nakTries = time.Time{}, 0
		return
	}
	gone := p.low > rs[0].first
	if p.nakTries >= e.cfg.NakAttempts || (gone && p.nakTries >= goneGiveUpTries) {
		e.giveUp(p, rs[0], now)
		return
	}
	anyone := p.nakTries > 0 || p.gone || !p.addr.IsValid()
	to := p.addr
	var flags packet.Flags
	if anyone {
		to = netip.AddrPort{}
		flags = packet.FlagAnyone
	}
	nb := nakBody{target: p.id, ranges: rs}
	e.send(to, e.control(packet.TypeNak, flags, nb.append(nil)))
	e.stats.NaksSent++
	p.nakTries++
	p.nakAt = now.Add(e.cfg.NakDelay * time.Duration(min(1<<p.nakTries, maxNakBackoff)))
}

// giveUp skips the first missing range r of p: the packets are gone.
func (e *engine) giveUp(p *peer, r seqRange, now time.Time) {
	to := r.last + 1
	if p.low > r.first && p.low <= r.last {
		to = p.low
	}
	for s := p.next; s < to; s++ {
		e.dropBuffered(p, s)
	}
	p.next = to
	if p.high < p.next-1 {
		p.high = p.next - 1
	}
	p.nakTries, p.nakAt = 0, time.Time{}
	e.out.events = append(e.out.events, Event{Kind: EventBehind, From: p.id, Seq: to})
	e.cfg.Logger.Warn("multicast: messages lost for good, skipping", "subsystem", "multicast", "peer", p.id, "skipped_to", to)
	e.deliver(p, now)
}

// release frees retransmit-ring and store entries every live member has
// delivered.
func (e *engine) release() {
	stable := e.highSeq()
	live := 0
	for _, p := range e.peers {
		if p.gone || !p.started {
			continue
		}
		live++
		stable = min(stable, p.ackedMine)
	}
	if live > 0 {
		for e.ringLen() > 0 && e.ring[e.ringHead].seq <= stable {
			e.ringPop()
		}
	}
	for _, s := range e.peers {
		if len(s.fwd) == 0 {
			continue
		}
		st := s.next - 1
		for _, q := range e.peers {
			if q == s || q.gone || !q.started {
				continue
			}
			st = min(st, q.reports[s.id])
		}
		for seq := range s.fwd {
			if seq <= st {
				e.fwdDelete(s, seq)
			}
		}
	}
}

// forget marks a member as gone; its state is dropped once nothing of it
// is missing any more (or given up).
func (e *engine) forget(id uuid.UUID) {
	p := e.peers[id]
	if p == nil {
		e.tomb(id)
		return
	}
	p.gone = true
	p.addr = netip.AddrPort{}
	e.out.ackChanged = true
}

func (e *engine) bury(id uuid.UUID) {
	if p := e.peers[id]; p != nil {
		for seq := range p.fwd {
			e.fwdDelete(p, seq)
		}
		delete(e.peers, id)
	}
	e.tomb(id)
}

func (e *engine) tomb(id uuid.UUID) {
	if _, ok := e.tombs[id]; ok {
		return
	}
	e.tombs[id] = struct{}{}
	e.tombOrder = append(e.tombOrder, id)
	if len(e.tombOrder) > maxTombstones {
		delete(e.tombs, e.tombOrder[0])
		e.tombOrder = e.tombOrder[1:]
	}
}

// ackedCount is how many live members delivered our message seq.
func (e *engine) ackedCount(seq uint64) int {
	n := 0
	for _, p := range e.peers {
		if !p.gone && p.ackedMine >= seq {
			n++
		}
	}
	return n
}

func (e *engine) statsCopy() Stats {
	s := e.stats
	s.Rejected = make(map[string]uint64, len(e.stats.Rejected))
	for k, v := range e.stats.Rejected {
		s.Rejected[k] = v
	}
	return s
}

func sortUUIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}
