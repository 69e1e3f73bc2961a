package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

const (
	// batchTarget is the encoded size at which a batch is sent at once
	// instead of waiting for the batching delay: about one datagram.
	batchTarget = 1100
	// batchDelay is the longest a delta waits for company.
	batchDelay = time.Millisecond
	// idleFlush: a delta that finds no flush in the last idleFlush goes
	// out without waiting for company.
	idleFlush = 10 * time.Millisecond
	// maxMessage bounds the encoded deltas of one transport message; a
	// larger batch goes out as several messages (the transport's own
	// limit is 4 MiB).
	maxMessage = 512 << 10
	// maxPending bounds the bytes of deltas waiting for the transport;
	// commits block (bounded by their context) beyond it.
	maxPending = 8 << 20
	// touchInterval is how often batched last-access times go out.
	touchInterval = time.Second
	// maxQueueWait bounds how long a commit waits for room in a full send
	// queue; then its delta is shed: it stays applied here and reaches the
	// peers by anti-entropy.
	maxQueueWait = 2 * time.Second
)

// errShed: the send queue stayed full; the delta is applied locally only.
var errShed = errors.New("cluster: send queue full")

// Commit applies d locally and queues it for replication; with Sync or
// SyncAll it waits, bounded by Config.SyncTimeout, for acknowledgements.
func (n *Node) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	if n.ctx.Err() != nil {
		return replicator.CommitResult{}, replicator.ErrClosed
	}
	if err := n.replica.Commit(d, n.clock, time.Now().UnixNano()); err != nil {
		n.stats.commitErrors.Add(1)
		return replicator.CommitResult{}, err
	}
	n.stats.commits.Add(1)
	b, err := n.enqueue(ctx, d, c != replicator.Async)
	if errors.Is(err, errShed) {
		return replicator.CommitResult{TimedOut: c != replicator.Async}, nil
	}
	if err != nil {
		// Applied locally; replication is late but the delta stays queued
		// unless the context ended before it could be queued.
		n.stats.commitErrors.Add(1)
		return replicator.CommitResult{}, err
	}
	if c == replicator.Async {
		return replicator.CommitResult{}, nil
	}
	return n.waitAcks(ctx, b, c)
}

// enqueue adds d to the open batch, coalescing with a pending delta of the
// same session. It blocks while too much is pending.
func (n *Node) enqueue(ctx context.Context, d *replicator.Delta, ack bool) (*batch, error) {
	size := estimate(d)
	var shed <-chan time.Time
	for {
		n.sendMu.Lock()
		b := n.pending
		if b.size+size <= maxPending || len(b.deltas) == 0 {
			break
		}
		n.sendMu.Unlock()
		n.kickFlusher()
		if shed == nil {
			t := time.NewTimer(maxQueueWait)
			defer t.Stop()
			shed = t.C
		}
		select {
		case <-b.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-shed:
			n.stats.shed.Add(1)
			n.log.Warn("send queue full: delta left to anti-entropy", "session", replicator.ShortID(d.ID))
			return nil, errShed
		}
	}
	b := n.pending
	if i, ok := b.byID[d.ID]; ok {
		coalesce(b.deltas[i], d)
	} else {
		b.byID[d.ID] = len(b.deltas)
		b.deltas = append(b.deltas, d)
	}
	b.size += size
	b.ack = b.ack || ack
	full := b.size >= batchTarget || b.ack
	first := len(b.deltas) == 1
	n.sendMu.Unlock()
	if full || first {
		n.kickFlusher()
	}
	return b, nil
}

// coalesce folds the later delta nd of the same session into d: a later
// set or delete of a key replaces an earlier one, other operations are
// kept in order, metadata is the later one's.
func coalesce(d, nd *replicator.Delta) {
	for _, op := range nd.Ops {
		if op.Kind == replicator.OpSet || op.Kind == replicator.OpDel {
			k := 0
			for _, o := range d.Ops {
				if (o.Kind == replicator.OpSet || o.Kind == replicator.OpDel) && o.Key == op.Key {
					continue
				}
				d.Ops[k] = o
				k++
			}
			d.Ops = d.Ops[:k]
		}
		d.Ops = append(d.Ops, op)
	}
	d.Owner, d.Epoch, d.Version, d.HLC = nd.Owner, nd.Epoch, nd.Version, nd.HLC
	d.LastAccess, d.IdleTimeout, d.Deadline = nd.LastAccess, nd.IdleTimeout, nd.Deadline
}

func estimate(d *replicator.Delta) int {
	s := 64 + len(d.ID) + len(d.Owner)
	for _, op := range d.Ops {
		s += 8 + len(op.Key) + len(op.Value)
	}
	return s
}

func (n *Node) waitAcks(ctx context.Context, b *batch, c replicator.Consistency) (replicator.CommitResult, error) {
	need := 1
	peers := len(n.alivePeers())
	if c == replicator.SyncAll {
		need = peers
	}
	if peers == 0 {
		return replicator.CommitResult{}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.SyncTimeout)
	defer cancel()
	select {
	case <-b.done:
	case <-wctx.Done():
		n.stats.syncTimeouts.Add(1)
		return replicator.CommitResult{TimedOut: true}, nil
	}
	if b.err != nil {
		return replicator.CommitResult{}, b.err
	}
	acks, err := n.tr.WaitAcked(wctx, b.seq, need)
	if err != nil {
		n.stats.syncTimeouts.Add(1)
		n.log.Warn("sync commit not acknowledged in time", "acks", acks, "need", need, "timeout", n.cfg.SyncTimeout)
		return replicator.CommitResult{Acks: acks, TimedOut: true}, nil
	}
	return replicator.CommitResult{Replicated: true, Acks: acks}, nil
}

// Touch records an access; last-access times go out in batches.
func (n *Node) Touch(id string, now int64) {
	n.replica.Touch(id, now)
	n.sendMu.Lock()
	n.touches[id] = now
	n.sendMu.Unlock()
}

func (n *Node) kickFlusher() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// flushLoop broadcasts batches. A delta that finds the flusher idle (no
// flush for idleFlush) goes out at once: light load gets the lowest lag.
// Otherwise deltas gather for batchDelay so that those of concurrent or
// back-to-back requests share messages, unless a sync commit waits or the
// batch is large. Touches go out every touchInterval.
//
// The idle threshold is well above batchDelay on purpose: with it equal,
// a burst of sequential commits each slower than batchDelay (as under the
// race detector) went out one message per delta, which multiplied the
// transport's per-message work (loading 5,000 × 4 KB sessions: 20 s
// against 3 s).
func (n *Node) flushLoop() {
	touch := time.NewTicker(touchInterval)
	defer touch.Stop()
	var last time.Time
	for {
		select {
		case <-n.ctx.Done():
			n.flushNow()
			return
		case <-touch.C:
			n.flushTouches()
		case <-n.kick:
			if time.Since(last) < idleFlush && !n.batchUrgent() {
				t := time.NewTimer(batchDelay)
				select {
				case <-t.C:
				case <-n.ctx.Done():
				}
				t.Stop()
			}
			last = time.Now()
			n.flushNow()
		}
	}
}

// batchUrgent reports whether the open batch must go without waiting.
func (n *Node) batchUrgent() bool {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	return n.pending.ack || n.pending.size >= batchTarget
}

// flushNow broadcasts the open batch, if any.
func (n *Node) flushNow() {
	n.sendMu.Lock()
	b := n.pending
	if len(b.deltas) == 0 {
		n.sendMu.Unlock()
		return
	}
	n.pending = newBatch()
	n.sendMu.Unlock()
	n.broadcast(b)
}

func (n *Node) broadcast(b *batch) {
	var err error
	for start := 0; start < len(b.deltas) && err == nil; {
		payload := make([]byte, 1, min(b.size, maxMessage)+64)
		payload[0] = kindDeltas
		end := start + 1
		for size := estimate(b.deltas[start]); end < len(b.deltas); end++ {
			size += estimate(b.deltas[end])
			if size > maxMessage {
				break
			}
		}
		payload = replicator.AppendBatch(payload, b.deltas[start:end])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.seq, err = n.tr.Broadcast(ctx, payload, multicast.SendOptions{Ack: b.ack && end == len(b.deltas)})
		cancel()
		if err == nil {
			n.stats.batchesSent.Add(1)
			n.stats.deltasSent.Add(uint64(end - start))
		}
		start = end
	}
	b.err = err
	if err != nil {
		n.stats.broadcastErrors.Add(1)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		n.log.Error("broadcast failed; peers will repair by anti-entropy", "deltas", len(b.deltas), "err", err)
	}
	close(b.done)
}

// flushTouches broadcasts the batched last-access times.
func (n *Node) flushTouches() {
	n.sendMu.Lock()
	if len(n.touches) == 0 {
		n.sendMu.Unlock()
		return
	}
	ts := n.touches
	n.touches = make(map[string]int64, len(ts))
	n.sendMu.Unlock()
	b := newBatch()
	for id, at := range ts {
		s := n.replica.Get(id)
		if s == nil {
			continue
		}
		d := &replicator.Delta{
			ID: id, Owner: s.Owner, Epoch: s.Epoch, Version: s.Version, HLC: n.clock.Now(time.Now().UnixNano()),
			Created: s.Created, LastAccess: at, IdleTimeout: s.IdleTimeout, Deadline: s.Deadline,
			Ops: []replicator.Op{{Kind: replicator.OpTouch}},
		}
		b.deltas = append(b.deltas, d)
		b.size += estimate(d)
		if b.size >= 32*batchTarget {
			n.broadcast(b)
			b = newBatch()
		}
	}
	n.stats.touchesSent.Add(uint64(len(ts)))
	if len(b.deltas) > 0 {
		n.broadcast(b)
	}
}

// touchOnly reports whether d only records an access.
func touchOnly(d *replicator.Delta) bool {
	for _, op := range d.Ops {
		if op.Kind != replicator.OpTouch {
			return false
		}
	}
	return true
}
