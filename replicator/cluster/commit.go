package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Reasons a sync commit fails, as labels of
// hanode_sync_commit_failures_total.
const (
	failTimeout   = iota // no (not every) peer acknowledged within SyncTimeout
	failNoPeer           // no live peer and LoneRefuse
	failQueueFull        // the send queue stayed full: the delta was shed
	failBroadcast        // the transport refused the message
	failCanceled         // the request's context ended during the wait
	numFailReasons
)

var failReasonNames = [numFailReasons]string{"timeout", "no_peer", "send_queue_full", "broadcast_error", "canceled"}

// Commit applies d locally and queues it for replication; with Sync or
// SyncAll it waits, bounded by Config.SyncTimeout, for acknowledgements.
// A Sync (SyncAll) commit that no peer (not every live peer) acknowledged
// in time returns replicator.ErrNotReplicated (d stays applied here and
// queued: the outcome is indeterminate). On a node with no live peer it
// is refused before being applied (LoneRefuse) or applied unreplicated
// (LoneAccept).
func (n *Node) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	if n.ctx.Err() != nil {
		return replicator.CommitResult{}, replicator.ErrClosed
	}
	sync := c != replicator.Async
	if sync && n.cfg.LoneSurvivor == LoneRefuse && n.alivePeerCount() == 0 {
		return replicator.CommitResult{}, n.notReplicated(failNoPeer, d.ID, 0, 1, nil)
	}
	if err := n.replica.Commit(d, n.clock, n.now().UnixNano()); err != nil {
		n.stats.commitErrors.Add(1)
		return replicator.CommitResult{}, err
	}
	n.stats.commits.Add(1)
	b, err := n.enqueue(ctx, d, sync)
	if errors.Is(err, errShed) {
		if !sync {
			return replicator.CommitResult{}, nil
		}
		return replicator.CommitResult{TimedOut: true}, n.notReplicated(failQueueFull, d.ID, 0, 1, nil)
	}
	if err != nil {
		// Applied locally; replication is late but the delta stays queued
		// unless the context ended before it could be queued.
		n.stats.commitErrors.Add(1)
		if sync {
			return replicator.CommitResult{}, n.notReplicated(failCanceled, d.ID, 0, 1, err)
		}
		return replicator.CommitResult{}, err
	}
	if !sync {
		return replicator.CommitResult{}, nil
	}
	return n.waitAcks(ctx, b, c, d.ID)
}

// flushFor broadcasts the batch b that a sync commit waits on, from the
// committer's goroutine: no hand-off to the flusher and no batching
// timer. It is group commit: one sync batch is in flight at a time, from
// its broadcast until a first peer acknowledges it. Commits that arrive
// meanwhile gather in the next batch, which the first of them sends as
// soon as the flight lands, so that they share one message and one
// acknowledgement; an idle node sends at once. It returns when b was
// broadcast (by this call or an earlier one) or ctx ended.
func (n *Node) flushFor(ctx context.Context, b *batch) {
	select {
	case n.flushTok <- struct{}{}:
	case <-b.done:
		return
	case <-ctx.Done():
		return
	}
	defer func() { <-n.flushTok }()
	if n.takePending(b) == nil { // an earlier flush took it: b.done is closed
		return
	}
	n.broadcast(b)
	if b.err == nil {
		// The flight: the token is held until the first acknowledgement
		// (or the end of this commit's wait, at most SyncTimeout; while no
		// peer acknowledges, async batches wait for the token as long).
		n.tr.WaitAcked(ctx, b.seq, 1)
	}
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
			n.log.Warn("send queue full: delta left to anti-entropy", "session", replicator.ShortHash(d.ID))
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
	full := b.size >= batchTarget
	first := len(b.deltas) == 1
	n.sendMu.Unlock()
	// A sync commit flushes its batch itself (flushFor).
	if !ack && (full || first) {
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

func (n *Node) waitAcks(ctx context.Context, b *batch, c replicator.Consistency, id string) (replicator.CommitResult, error) {
	need := 1
	peers := n.alivePeerCount()
	if c == replicator.SyncAll {
		need = peers
	}
	if peers == 0 {
		n.kickFlusher() // b goes out with the flusher's next batch
		if n.cfg.LoneSurvivor == LoneAccept {
			n.stats.loneAccepted.Add(1)
			n.logLimited(slog.LevelWarn, "sync commit accepted unreplicated: no live peer (lone survivor accepts)", "session", replicator.ShortHash(id))
			return replicator.CommitResult{}, nil
		}
		// The last peer went while this commit was applied.
		return replicator.CommitResult{}, n.notReplicated(failNoPeer, id, 0, 1, nil)
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.SyncTimeout)
	defer cancel()
	n.flushFor(wctx, b)
	select {
	case <-b.done:
	case <-wctx.Done():
		return replicator.CommitResult{TimedOut: true}, n.waitFailed(ctx, id, 0, need)
	}
	if b.err != nil {
		return replicator.CommitResult{}, n.notReplicated(failBroadcast, id, 0, need, b.err)
	}
	acks, err := n.tr.WaitAcked(wctx, b.seq, need)
	if err != nil {
		return replicator.CommitResult{Acks: acks, TimedOut: true}, n.waitFailed(ctx, id, acks, need)
	}
	n.replicationRestored("commit acknowledged")
	return replicator.CommitResult{Replicated: true, Acks: acks}, nil
}

// waitFailed classifies an ack wait that ended early: the request's own
// context, or the sync timeout.
func (n *Node) waitFailed(ctx context.Context, id string, acks, need int) error {
	if err := ctx.Err(); err != nil {
		return n.notReplicated(failCanceled, id, acks, need, err)
	}
	n.stats.syncTimeouts.Add(1)
	return n.notReplicated(failTimeout, id, acks, need, nil)
}

// notReplicated counts, logs and returns the error of a sync commit that
// failed for reason. Every reason but a canceled request marks the node's
// replication as failing: it is not Ready until a peer acknowledges again.
func (n *Node) notReplicated(reason int, id string, acks, need int, cause error) error {
	n.stats.syncFailures[reason].Add(1)
	var msg string
	switch reason {
	case failTimeout:
		msg = fmt.Sprintf("%d of %d acknowledgements within %s", acks, need, n.cfg.SyncTimeout)
		n.logLimited(slog.LevelWarn, "sync commit not acknowledged in time: the request fails", "session", replicator.ShortHash(id),
			"acks", acks, "need", need, "timeout", n.cfg.SyncTimeout)
	case failNoPeer:
		msg = "no live peer to acknowledge it (lone survivor refuses)"
		n.logLimited(slog.LevelWarn, "sync commit refused: no live peer can acknowledge it", "session", replicator.ShortHash(id))
	case failQueueFull:
		msg = "send queue full"
		n.logLimited(slog.LevelWarn, "sync commit not replicated: send queue full", "session", replicator.ShortHash(id))
	case failBroadcast:
		msg = "broadcast failed: " + cause.Error()
		n.logLimited(slog.LevelWarn, "sync commit not replicated: broadcast failed", "session", replicator.ShortHash(id), "err", cause)
	case failCanceled:
		msg = "request ended before the acknowledgements: " + cause.Error()
		n.log.Debug("sync commit wait ended with its request", "session", replicator.ShortHash(id), "err", cause)
		return fmt.Errorf("%w: %s", replicator.ErrNotReplicated, msg)
	}
	n.replicationFailing(failReasonNames[reason])
	return fmt.Errorf("%w: %s", replicator.ErrNotReplicated, msg)
}

// replicationFailing records that sync replication failed. On a node
// whose configured consistency is Sync or SyncAll, readiness then fails
// until an acknowledgement arrives (a commit's or a probe's).
func (n *Node) replicationFailing(reason string) {
	if n.cfg.Consistency == replicator.Async {
		return
	}
	n.replMu.Lock()
	defer n.replMu.Unlock()
	n.replReason = reason
	if n.replFailingSince.IsZero() {
		n.replFailingSince = n.now()
		n.log.Warn("sync replication failing: not ready until a peer acknowledges again", "reason", reason)
	}
}

// replicationRestored clears the failing state after an acknowledgement.
func (n *Node) replicationRestored(how string) {
	n.replMu.Lock()
	defer n.replMu.Unlock()
	if !n.replFailingSince.IsZero() {
		n.log.Info("sync replication restored", "by", how, "after", n.since(n.replFailingSince).Round(time.Millisecond))
		n.replFailingSince = time.Time{}
		n.replReason = ""
	}
}

// replicationProblem says why this node cannot honour its configured
// consistency now ("" when it can, and always for Async): it has no live
// peer and refuses to commit alone, or sync commits went unacknowledged
// and no acknowledgement arrived since.
func (n *Node) replicationProblem() string {
	if n.cfg.Consistency == replicator.Async {
		return ""
	}
	if n.alivePeerCount() == 0 {
		if n.cfg.LoneSurvivor == LoneAccept {
			return ""
		}
		return fmt.Sprintf("no live peer can acknowledge %s commits and this node refuses to commit alone (lone survivor: refuse)", n.cfg.Consistency)
	}
	n.replMu.Lock()
	defer n.replMu.Unlock()
	if !n.replFailingSince.IsZero() {
		return fmt.Sprintf("%s commits not acknowledged by the peers since %s (last failure: %s); waiting for acknowledgements",
			n.cfg.Consistency, n.replFailingSince.UTC().Format(time.RFC3339Nano), n.replReason)
	}
	return ""
}

// replicationState is Status.Replication.
func (n *Node) replicationState() string {
	if n.cfg.Consistency == replicator.Async {
		return "async"
	}
	if n.replicationProblem() != "" {
		return "failing"
	}
	if n.alivePeerCount() == 0 {
		return "lone"
	}
	return "ok"
}

// probeInterval is how often a node whose sync replication fails asks its
// peers for an acknowledgement, to become ready again.
const probeInterval = 250 * time.Millisecond

// checkReplication runs on every membership tick. A sync node that is
// alone counts as failing (it must see an acknowledgement before it is
// ready again); a failing node with live peers sends a probe: an empty
// delta batch that asks for acknowledgements.
func (n *Node) checkReplication(now time.Time) {
	if n.cfg.Consistency == replicator.Async || !n.ready.Load() {
		return
	}
	peers := n.alivePeerCount()
	if peers == 0 {
		if n.cfg.LoneSurvivor == LoneRefuse {
			n.replicationFailing("no_peer")
		}
		return
	}
	n.replMu.Lock()
	failing := !n.replFailingSince.IsZero()
	due := now.Sub(n.lastProbe) >= probeInterval
	if failing && due && !n.probing {
		n.probing = true
		n.lastProbe = now
	} else {
		failing = false
	}
	n.replMu.Unlock()
	if !failing {
		return
	}
	need := 1
	if n.cfg.Consistency == replicator.SyncAll {
		need = peers
	}
	n.goRun(func() {
		defer func() {
			n.replMu.Lock()
			n.probing = false
			n.replMu.Unlock()
		}()
		n.stats.probes.Add(1)
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SyncTimeout)
		defer cancel()
		payload := codec.AppendBatch([]byte{kindDeltas}, nil)
		seq, err := n.tr.Broadcast(ctx, payload, multicast.SendOptions{Ack: true})
		if err != nil {
			return
		}
		if _, err := n.tr.WaitAcked(ctx, seq, need); err == nil {
			n.replicationRestored("probe acknowledged")
		}
	})
}

// logLimited logs at most one line a second; the lines it drops are
// counted in the next one.
func (n *Node) logLimited(level slog.Level, msg string, args ...any) {
	now := n.now().UnixNano()
	last := n.stats.lastFailLog.Load()
	if now-last < int64(time.Second) || !n.stats.lastFailLog.CompareAndSwap(last, now) {
		n.stats.failLogsDropped.Add(1)
		return
	}
	if dropped := n.stats.failLogsDropped.Swap(0); dropped > 0 {
		args = append(args, "similar_lines_dropped", dropped)
	}
	n.log.Log(context.Background(), level, msg, args...)
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
// back-to-back requests share messages, unless the batch is large. A
// sync commit does not wait for the flusher: it sends its batch itself
// (flushFor). Touches go out every touchInterval.
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
			if n.since(last) < idleFlush && !n.batchUrgent() {
				// Wait for company, but no longer than the batch
				// takes to fill: enqueue kicks again once it is full.
				t := time.NewTimer(batchDelay)
			wait:
				for {
					select {
					case <-t.C:
						break wait
					case <-n.kick:
						if n.batchUrgent() {
							break wait
						}
					case <-n.ctx.Done():
						break wait
					}
				}
				t.Stop()
			}
			last = n.now()
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
	n.flushTok <- struct{}{}
	defer func() { <-n.flushTok }()
	if b := n.takePending(nil); b != nil {
		n.broadcast(b)
	}
}

// takePending takes the open batch to broadcast it, opening a new one; it
// returns nil when the batch is empty, or is not want (when want is set).
func (n *Node) takePending(want *batch) *batch {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	b := n.pending
	if len(b.deltas) == 0 || want != nil && b != want {
		return nil
	}
	n.pending = newBatch()
	return b
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
		payload = codec.AppendBatch(payload, b.deltas[start:end])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.seq, err = n.tr.Broadcast(ctx, payload, multicast.SendOptions{Ack: b.ack && end == len(b.deltas)})
		cancel()
		if err == nil {
			n.noteSent(b.seq)
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
		d := replicator.TouchDelta(s, at, n.clock.Now(n.now().UnixNano()))
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
