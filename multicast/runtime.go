package multicast

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// ErrClosed is returned by calls on a closed Transport.
var ErrClosed = errors.New("multicast: transport closed")

// link is the datagram layer under the runtime: a UDP socket pair or a
// MemNetwork port.
type link interface {
	// send writes one datagram to a member's unicast address, or to the
	// group when to is the zero AddrPort.
	send(b []byte, to netip.AddrPort) error
	// start begins receiving; recv is called from the link's goroutines
	// with a datagram the callee may keep.
	start(recv func(b []byte, from netip.AddrPort) bool)
	// close stops receiving and waits for the link's goroutines.
	close() error
}

type inbound struct {
	b    []byte
	from netip.AddrPort
}

// runtime wraps the engine with goroutines, clocks and a link.
type runtime struct {
	cfg  Config
	link link

	mu      sync.Mutex // guards eng and ackWake
	eng     *engine
	ackWake chan struct{}

	// stepMu is held from a step or tick of the engine until its output
	// is handled, so that messages and events leave in the engine's
	// order. Taken before mu.
	stepMu sync.Mutex

	msgs   chan Message
	events chan Event
	sq     *sendQueue

	closing   chan struct{} // closed when Close starts: no new sends
	closed    chan struct{} // closed when the flush is over: everything stops
	closeOnce sync.Once
	wg        sync.WaitGroup

	packetsSent atomic.Uint64
	bytesSent   atomic.Uint64
	sendErrors  atomic.Uint64
	recvBuffer  int
	recvClamped bool

	peers  *peerSet           // unicast mode only (unicast.go)
	pclock peerClock          // loop goroutine only
	down   map[uuid.UUID]bool // members reported dead (MemberDown); guarded by mu
}

func newRuntime(cfg Config, l link) *runtime {
	cfg.Logger = deriveLogger(cfg.Logger)
	rt := &runtime{
		cfg:     cfg,
		link:    l,
		eng:     newEngine(cfg),
		ackWake: make(chan struct{}),
		msgs:    make(chan Message, cfg.DeliverQueue),
		events:  make(chan Event, cfg.DeliverQueue),
		sq:      newSendQueue(cfg.SendQueue, cfg.MaxSendRate),
		closing: make(chan struct{}),
		closed:  make(chan struct{}),
	}
	return rt
}

// logKey names this package on its log lines. It is added once, to the
// logger the transport derives from Config.Logger, and it is not
// "subsystem": the caller's logger commonly carries its own.
const logKey = "component"

// deriveLogger returns the logger the transport uses: l with
// logKey=multicast, never repeating a key on one line. A "subsystem" or
// logKey attribute given on a single log call of this package is dropped,
// since the caller's logger or the derived one already holds that key.
func deriveLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return slog.New(lineFilter{l.Handler()}).With(logKey, "multicast")
}

// lineFilter drops per-line attributes that would duplicate a logger key.
type lineFilter struct{ slog.Handler }

func droppedLogKey(k string) bool { return k == "subsystem" || k == logKey }

func (h lineFilter) Handle(ctx context.Context, r slog.Record) error {
	dup := false
	r.Attrs(func(a slog.Attr) bool {
		dup = droppedLogKey(a.Key)
		return !dup
	})
	if !dup {
		return h.Handler.Handle(ctx, r)
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !droppedLogKey(a.Key) {
			nr.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, nr)
}

func (h lineFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return lineFilter{h.Handler.WithAttrs(as)}
}

func (h lineFilter) WithGroup(name string) slog.Handler {
	return lineFilter{h.Handler.WithGroup(name)}
}

func (rt *runtime) start() {
	// The first packet a member sends is a status announcing sequence 0,
	// queued before any Broadcast can be: members already listening start
	// delivering its messages from the first one.
	rt.mu.Lock()
	rt.eng.tick(time.Now())
	for _, p := range rt.eng.drain().packets {
		rt.sq.pushPriority(p)
	}
	rt.mu.Unlock()
	rt.sq.kick()
	rt.link.start(rt.recv)
	rt.wg.Add(2)
	go rt.loop()
	go rt.sender()
}

// recv is called by the link's readers. It steps the engine with the
// datagram and hands over the output on the reader's goroutine: an
// acknowledgement leaves, and a committer waiting for one is woken,
// without a hand-off to another goroutine. It blocks while another
// reader or the tick is stepping, or while the delivery queues are full
// (backpressure to the socket), and reports false once closed.
func (rt *runtime) recv(b []byte, from netip.AddrPort) bool {
	rt.stepMu.Lock()
	defer rt.stepMu.Unlock()
	select {
	case <-rt.closed:
		return false
	default:
	}
	rt.mu.Lock()
	rt.eng.step(b, from, time.Now())
	r := rt.eng.drain()
	rt.mu.Unlock()
	return rt.handle(r)
}

func tickInterval(cfg Config) time.Duration {
	return max(time.Millisecond, min(cfg.NakDelay/2, 10*time.Millisecond))
}

func (rt *runtime) loop() {
	defer rt.wg.Done()
	t := time.NewTicker(tickInterval(rt.cfg))
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			rt.stepMu.Lock()
			rt.mu.Lock()
			rt.eng.tick(now)
			r := rt.eng.drain()
			rt.mu.Unlock()
			ok := rt.handle(r)
			rt.stepMu.Unlock()
			if !ok {
				return
			}
			rt.peerTick(now)
		case <-rt.closed:
			return
		}
	}
}

// handle sends and delivers one batch of engine output. It reports false
// once the transport is closed.
func (rt *runtime) handle(r ready) bool {
	if r.ackChanged {
		rt.mu.Lock()
		close(rt.ackWake)
		rt.ackWake = make(chan struct{})
		rt.mu.Unlock()
	}
	for _, p := range r.packets {
		rt.sq.pushPriority(p)
	}
	if len(r.packets) > 0 {
		rt.writeQueued()
	}
	for _, ev := range r.events {
		select {
		case rt.events <- ev:
		case <-rt.closed:
			return false
		}
	}
	for _, m := range r.messages {
		select {
		case rt.msgs <- m:
		case <-rt.closed:
			return false
		}
	}
	return true
}

// sender writes the queued packets that the goroutines queueing them
// left (writeQueued): those that wait for pacing (MaxSendRate) and those
// beyond maxInline.
func (rt *runtime) sender() {
	defer rt.wg.Done()
	for {
		if !rt.sq.acquireWait(rt.closed) {
			return
		}
		for {
			p, wait, ok := rt.sq.next(false, time.Now())
			if !ok {
				break
			}
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-rt.closed:
					return
				}
			}
			rt.write(p)
		}
	}
}

// maxInline bounds the packets one writeQueued call writes; the sender
// goroutine writes the rest.
const maxInline = 64

// writeQueued writes queued packets from the caller's goroutine unless
// another goroutine is writing (it then writes them too, in order): a
// Broadcast's datagram or an acknowledgement leaves without a hand-off to
// the sender goroutine. A packet that must wait for pacing, and packets
// beyond maxInline, are left to the sender goroutine.
func (rt *runtime) writeQueued() {
	if !rt.sq.acquire() {
		return
	}
	for range maxInline {
		p, _, ok := rt.sq.next(true, time.Now())
		if !ok {
			return
		}
		rt.write(p)
	}
	rt.sq.handOff()
}

// write sends one popped packet and accounts for it.
func (rt *runtime) write(p outPacket) {
	if err := rt.link.send(p.b, p.to); err != nil {
		rt.sendErrors.Add(1)
	} else {
		rt.packetsSent.Add(1)
		rt.bytesSent.Add(uint64(len(p.b)))
	}
	if p.data {
		rt.sq.release(len(p.b))
	}
	rt.sq.sent(p.data)
}

// isClosed reports whether Close has started.
func (rt *runtime) isClosed() bool {
	select {
	case <-rt.closing:
		return true
	default:
		return false
	}
}

func (rt *runtime) LocalID() uuid.UUID { return rt.eng.id }

func (rt *runtime) Broadcast(ctx context.Context, payload []byte, opt SendOptions) (uint64, error) {
	if rt.isClosed() {
		return 0, ErrClosed
	}
	if len(payload) > rt.cfg.MaxMessage {
		return 0, ErrMessageTooLarge
	}
	per := rt.cfg.MaxDatagram - Overhead
	frags := max(1, (len(payload)+1+per-1)/per)
	need := len(payload) + 1 + frags*Overhead
	if err := rt.sq.reserve(ctx, need, rt.closing); err != nil {
		return 0, err
	}
	rt.mu.Lock()
	seq, pkts, err := rt.eng.broadcast(payload, opt)
	if err != nil {
		rt.mu.Unlock()
		rt.sq.release(need)
		return 0, err
	}
	used := 0
	for _, p := range pkts {
		used += len(p.b)
	}
	rt.sq.pushData(pkts, need-used)
	rt.mu.Unlock()
	rt.writeQueued()
	return seq, nil
}

func (rt *runtime) SendControl(to uuid.UUID, payload []byte) error {
	if rt.isClosed() {
		return ErrClosed
	}
	rt.mu.Lock()
	p, err := rt.eng.sendControl(to, payload)
	rt.mu.Unlock()
	if err != nil {
		return err
	}
	rt.sq.pushPriority(p)
	rt.writeQueued()
	return nil
}

func (rt *runtime) WaitAcked(ctx context.Context, seq uint64, n int) (int, error) {
	for {
		rt.mu.Lock()
		c := rt.eng.ackedCount(seq)
		wake := rt.ackWake
		rt.mu.Unlock()
		if c >= n {
			return c, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return c, ctx.Err()
		case <-rt.closed:
			return c, ErrClosed
		}
	}
}

func (rt *runtime) Messages() <-chan Message { return rt.msgs }
func (rt *runtime) Events() <-chan Event     { return rt.events }

func (rt *runtime) Forget(member uuid.UUID) {
	rt.mu.Lock()
	rt.eng.forget(member)
	r := rt.eng.drain()
	rt.mu.Unlock()
	if r.ackChanged {
		rt.mu.Lock()
		close(rt.ackWake)
		rt.ackWake = make(chan struct{})
		rt.mu.Unlock()
	}
}

func (rt *runtime) Stats() Stats {
	rt.mu.Lock()
	s := rt.eng.statsCopy()
	rt.mu.Unlock()
	s.PacketsSent = rt.packetsSent.Load()
	s.BytesSent = rt.bytesSent.Load()
	s.SendQueueLen = rt.sq.len()
	s.RecvBufferBytes = rt.recvBuffer
	s.RecvBufferClamped = rt.recvClamped
	if x, ok := rt.link.(interface{ extraRejected() map[string]uint64 }); ok {
		for k, v := range x.extraRejected() {
			if v > 0 {
				s.Rejected[k] += v
			}
		}
	}
	s.SendErrors = rt.sendErrors.Load()
	if x, ok := rt.link.(interface {
		peerDatagrams() map[string]uint64
		discoveryErrors() uint64
	}); ok {
		s.Unicast = true
		s.PeerDatagrams = x.peerDatagrams()
		s.DiscoveryErrors = x.discoveryErrors()
	}
	return s
}

// closeFlushTimeout bounds how long Close spends sending what is queued.
const closeFlushTimeout = 2 * time.Second

// Close refuses new sends, then flushes the send queue: it waits, up to
// closeFlushTimeout, until every packet queued before it (Broadcast data
// included) was written once, followed by a status packet announcing the
// last sequence number, so that members that lost the tail NAK it (and
// other members can answer once this one is gone). Meanwhile the runtime
// keeps receiving and answers NAKs. Then it stops everything.
func (rt *runtime) Close() error {
	var err error
	rt.closeOnce.Do(func() {
		close(rt.closing)
		rt.flush(time.Now().Add(closeFlushTimeout))
		close(rt.closed)
		err = rt.link.close()
		rt.wg.Wait()
		close(rt.msgs)
		close(rt.events)
	})
	return err
}

// flush waits until the packets queued now have been written, then, if
// this member ever broadcast, sends a last status announcing its highest
// sequence number and waits for it too.
func (rt *runtime) flush(deadline time.Time) {
	rt.writeQueued()
	prio, data := rt.sq.queued()
	if !rt.sq.waitSent(prio, data, deadline) {
		return
	}
	rt.mu.Lock()
	var st []byte
	if rt.eng.highSeq() > 0 {
		st = rt.eng.statusPacket()
	}
	rt.mu.Unlock()
	if st == nil {
		return
	}
	rt.sq.pushPriority(outPacket{b: st})
	rt.writeQueued()
	prio, data = rt.sq.queued()
	rt.sq.waitSent(prio, data, deadline)
}

// sendQueue holds packets waiting to be written: priority packets
// (repairs, NAKs, status, acks, control) first, then Broadcast data,
// whose bytes are bounded by the queue capacity. One writer at a time
// (busy) takes packets in order: the goroutine that queued them
// (writeQueued) or the sender goroutine.
type sendQueue struct {
	mu    sync.Mutex
	prio  []outPacket
	data  []outPacket
	used  int // data bytes reserved or queued
	cap   int
	busy  bool          // a writer holds the queue
	wake  chan struct{} // closed when the sender goroutine has work (kick)
	space chan struct{} // closed when room is released

	// Pacing: a token bucket of rate bytes per second (0: unpaced).
	rate, burst, tokens float64
	last                time.Time

	// Packets ever queued and ever written, per queue. Both queues are
	// FIFO, so the packets queued before a moment have all been written
	// once the written counts reach the queued counts of that moment.
	prioIn, dataIn     uint64
	prioSent, dataSent uint64
	progress           chan struct{} // closed when a packet was written
}

func newSendQueue(capacity, rate int) *sendQueue {
	q := &sendQueue{cap: capacity, wake: make(chan struct{}), space: make(chan struct{}), progress: make(chan struct{})}
	q.rate = float64(rate)
	q.burst = max(64<<10, q.rate/50)
	q.tokens = q.burst
	q.last = time.Now()
	return q
}

// acquire makes the caller the writer unless another one is writing.
func (q *sendQueue) acquire() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.busy {
		return false
	}
	q.busy = true
	return true
}

// acquireWait waits, for the sender goroutine, until it was kicked while
// packets are queued and no one writes, and makes it the writer; false
// once closed.
func (q *sendQueue) acquireWait(closed <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if !q.busy && len(q.prio)+len(q.data) > 0 {
			q.busy = true
			q.mu.Unlock()
			return true
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-closed:
			return false
		}
	}
}

// handOff releases the queue to the sender goroutine.
func (q *sendQueue) handOff() {
	q.mu.Lock()
	q.busy = false
	q.signal()
	q.mu.Unlock()
}

// kick wakes the sender goroutine.
func (q *sendQueue) kick() {
	q.mu.Lock()
	q.signal()
	q.mu.Unlock()
}

// next pops the next packet for the writer and takes its pacing tokens.
// With nothing queued it releases the queue and reports false. The
// sender goroutine gets a packet that must wait for pacing with the wait;
// an inline writer leaves it queued and hands the queue off instead.
func (q *sendQueue) next(inline bool, now time.Time) (outPacket, time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var p outPacket
	switch {
	case len(q.prio) > 0:
		p = q.prio[0]
	case len(q.data) > 0:
		p = q.data[0]
	default:
		q.busy = false
		return outPacket{}, 0, false
	}
	var wait time.Duration
	if q.rate > 0 {
		q.tokens = min(q.burst, q.tokens+now.Sub(q.last).Seconds()*q.rate)
		q.last = now
		if need := float64(len(p.b)) - q.tokens; need > 0 {
			if inline {
				q.busy = false
				q.signal()
				return outPacket{}, 0, false
			}
			wait = time.Duration(need / q.rate * float64(time.Second))
		}
		q.tokens -= float64(len(p.b))
	}
	if len(q.prio) > 0 {
		q.prio[0] = outPacket{}
		q.prio = q.prio[1:]
	} else {
		q.data[0] = outPacket{}
		q.data = q.data[1:]
	}
	return p, wait, true
}

// queued returns how many priority and data packets were ever queued.
func (q *sendQueue) queued() (prio, data uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.prioIn, q.dataIn
}

// sent records that the sender finished writing a popped packet
// (successfully or not).
func (q *sendQueue) sent(data bool) {
	q.mu.Lock()
	if data {
		q.dataSent++
	} else {
		q.prioSent++
	}
	close(q.progress)
	q.progress = make(chan struct{})
	q.mu.Unlock()
}

// waitSent waits until prio priority and data data packets have been
// written, or until deadline; it reports whether they were.
func (q *sendQueue) waitSent(prio, data uint64, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		q.mu.Lock()
		done := q.prioSent >= prio && q.dataSent >= data
		progress := q.progress
		q.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-progress:
		case <-timer.C:
			return false
		}
	}
}

func (q *sendQueue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// maxPrio bounds the priority queue; beyond it, packets are dropped (the
// protocol repairs lost NAKs, repairs and status on its own).
const maxPrio = 1 << 16

func (q *sendQueue) pushPriority(p outPacket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.prio) >= maxPrio {
		return
	}
	q.prio = append(q.prio, p)
	q.prioIn++
}

// reserve waits until n bytes fit (or the queue is empty), up to ctx.
func (q *sendQueue) reserve(ctx context.Context, n int, closed <-chan struct{}) error {
	for {
		q.mu.Lock()
		if q.used == 0 || q.used+n <= q.cap {
			q.used += n
			q.mu.Unlock()
			return nil
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return ErrClosed
		}
	}
}

// pushData queues reserved packets; extra is reserved bytes not used by them.
func (q *sendQueue) pushData(ps []outPacket, extra int) {
	q.mu.Lock()
	q.data = append(q.data, ps...)
	q.dataIn += uint64(len(ps))
	q.mu.Unlock()
	if extra != 0 {
		q.release(extra)
	}
}

func (q *sendQueue) release(n int) {
	q.mu.Lock()
	q.used -= n
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
}

func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.prio) + len(q.data)
}
