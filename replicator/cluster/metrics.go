package cluster

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/replicator"
)

// WriteMetrics writes the node's metrics in the Prometheus text format.
// Names carry the hanode_ prefix, base units and _total for counters;
// labels never hold session IDs or user names.
func (n *Node) WriteMetrics(w io.Writer) {
	p := promWriter{w: w}
	st := n.tr.Stats()
	p.counter("hanode_multicast_packets_sent_total", "Datagrams sent.", float64(st.PacketsSent))
	p.counter("hanode_multicast_packets_received_total", "Datagrams received.", float64(st.PacketsReceived))
	p.counter("hanode_multicast_sent_bytes_total", "Bytes sent in datagrams.", float64(st.BytesSent))
	p.counter("hanode_multicast_received_bytes_total", "Bytes received in datagrams.", float64(st.BytesReceived))
	p.counter("hanode_multicast_messages_sent_total", "Reliable messages broadcast.", float64(st.MessagesSent))
	p.counter("hanode_multicast_messages_delivered_total", "Reliable messages delivered in order.", float64(st.MessagesDelivered))
	p.counter("hanode_multicast_retransmissions_total", "Packets resent because of a negative acknowledgement.", float64(st.Retransmissions))
	p.counter("hanode_multicast_naks_sent_total", "Negative acknowledgements sent.", float64(st.NaksSent))
	p.counter("hanode_multicast_send_errors_total", "Datagrams the kernel refused to send.", float64(st.SendErrors))
	p.gauge("hanode_multicast_send_queue_length", "Messages waiting in the send queue.", float64(st.SendQueueLen))
	p.gauge("hanode_multicast_receive_buffer_bytes", "Receive buffer granted by the kernel.", float64(st.RecvBufferBytes))
	clamped := 0.0
	if st.RecvBufferClamped {
		clamped = 1
	}
	p.gauge("hanode_multicast_receive_buffer_clamped", "1 when the kernel granted less receive buffer than asked (raise net.core.rmem_max).", clamped)
	reasons := make([]string, 0, len(st.Rejected))
	for r := range st.Rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	p.header("hanode_multicast_rejected_packets_total", "Datagrams dropped, by reason.", "counter")
	if len(reasons) == 0 {
		p.sample("hanode_multicast_rejected_packets_total", `reason="auth"`, 0)
	}
	for _, r := range reasons {
		p.sample("hanode_multicast_rejected_packets_total", fmt.Sprintf("reason=%q", r), float64(st.Rejected[r]))
	}

	if st.Unicast {
		peers := make([]string, 0, len(st.PeerDatagrams))
		for a := range st.PeerDatagrams {
			peers = append(peers, a)
		}
		sort.Strings(peers)
		p.gauge("hanode_multicast_unicast_peers", "Peer addresses this node sends to (unicast mode).", float64(len(peers)))
		p.header("hanode_multicast_peer_datagrams_sent_total", "Datagrams sent to each peer address (unicast mode).", "counter")
		for _, a := range peers {
			p.sample("hanode_multicast_peer_datagrams_sent_total", fmt.Sprintf("peer=%q", a), float64(st.PeerDatagrams[a]))
		}
		p.counter("hanode_multicast_discovery_errors_total", "Failed resolutions of peer names (unicast mode).", float64(st.DiscoveryErrors))
	}

	counts := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range n.Members() {
		counts[m.State]++
	}
	p.header("hanode_members", "Members by state, self included.", "gauge")
	for _, s := range []string{"alive", "suspect", "dead", "left"} {
		p.sample("hanode_members", fmt.Sprintf("state=%q", s), float64(counts[s]))
	}
	alone := 0.0
	if n.stats.noPeersWarned.Load() {
		alone = 1
	}
	p.gauge("hanode_no_peers", "1 when HA is on and no peer has been seen for 30s.", alone)
	n.memMu.Lock()
	ms, health := n.mem.Stats(), n.mem.Health()
	n.memMu.Unlock()
	p.counter("hanode_membership_suspicions_total", "Members this node suspected (silent past the suspect timeout, unanswered probes).", float64(ms.Suspicions))
	p.counter("hanode_membership_false_suspicions_total", "Suspicions proven wrong: the suspected member was heard again with the same ID.", float64(ms.FalseSuspicions))
	p.counter("hanode_membership_refutations_total", "Times this node refuted a suspicion of itself.", float64(ms.Refutations))
	p.gauge("hanode_membership_health_score", "Local health score (0 healthy): failure-detection timeouts are multiplied by 1 + score.", float64(health))
	ready := 0.0
	if n.Ready() {
		ready = 1
	}
	p.gauge("hanode_ready", "1 when the node holds the cluster's sessions and is not draining.", ready)
	p.gauge("hanode_sessions", "Live sessions in the local replica.", float64(n.replica.Len()))
	p.counter("hanode_commits_total", "Session commits on this node.", float64(n.stats.commits.Load()))
	p.counter("hanode_commit_errors_total", "Commits refused or not queued.", float64(n.stats.commitErrors.Load()))
	p.counter("hanode_sync_timeouts_total", "Sync commits whose acknowledgement wait ran out (each failed with an error; also counted in hanode_sync_commit_failures_total).", float64(n.stats.syncTimeouts.Load()))
	p.header("hanode_sync_commit_failures_total", "Sync and sync-all commits that failed with an error because they were not replicated, by reason (timeout, no_peer, send_queue_full, broadcast_error, canceled).", "counter")
	for i, r := range failReasonNames {
		p.sample("hanode_sync_commit_failures_total", fmt.Sprintf("reason=%q", r), float64(n.stats.syncFailures[i].Load()))
	}
	p.counter("hanode_sync_unreplicated_commits_total", "Sync commits accepted without replication by a node with no live peer (lone survivor: accept).", float64(n.stats.loneAccepted.Load()))
	p.counter("hanode_sync_probes_total", "Acknowledgement probes sent while sync replication was failing.", float64(n.stats.probes.Load()))
	failing := 0.0
	if n.cfg.Consistency != replicator.Async && n.replicationProblem() != "" {
		failing = 1
	}
	p.gauge("hanode_replication_failing", "1 when this sync or sync-all node cannot get its commits acknowledged, which makes it not ready.", failing)
	p.counter("hanode_replication_broadcast_errors_total", "Delta messages the transport refused; anti-entropy carries them.", float64(n.stats.broadcastErrors.Load()))
	p.counter("hanode_replication_shed_total", "Deltas not queued because the send queue stayed full; anti-entropy carries them.", float64(n.stats.shed.Load()))
	p.counter("hanode_replication_deltas_sent_total", "Deltas broadcast.", float64(n.stats.deltasSent.Load()))
	p.counter("hanode_replication_batches_sent_total", "Delta batches broadcast.", float64(n.stats.batchesSent.Load()))
	p.counter("hanode_replication_touches_sent_total", "Batched last-access updates broadcast.", float64(n.stats.touchesSent.Load()))
	p.counter("hanode_replication_deltas_applied_total", "Deltas from peers applied.", float64(n.stats.deltasApplied.Load()))
	p.counter("hanode_replication_deltas_rejected_total", "Deltas from peers that could not be decoded or applied.", float64(n.stats.deltasRejected.Load()))
	p.header("hanode_replication_batches_refused_total", "Delta batches not applied because membership never admitted their sender (not_member: such as a restarted node's previous process, replayed; held_full: too many held while waiting for a sender to join).", "counter")
	for _, r := range []string{refusedHeldFull, refusedNotMember} {
		p.sample("hanode_replication_batches_refused_total", fmt.Sprintf("reason=%q", r), float64(n.gate.refusedCounts()[r]))
	}
	p.header("hanode_membership_refused_total", "Membership messages refused, by reason (stale: older than the member's known incarnation or from a dead or left member; retired: a member forgotten after it died or left; older_incarnation: a node's previous process, its name now held by a newer one).", "counter")
	p.sample("hanode_membership_refused_total", `reason="older_incarnation"`, float64(ms.OlderIncarnation))
	p.sample("hanode_membership_refused_total", `reason="retired"`, float64(ms.Retired))
	p.sample("hanode_membership_refused_total", `reason="stale"`, float64(ms.Stale-ms.Retired-ms.OlderIncarnation))
	p.gauge("hanode_replication_last_lag_seconds", "Commit-to-receipt delay of the last delta received from a peer.", float64(n.stats.lagNanos.Load())/1e9)
	n.stats.lag.write(p, "hanode_replication_lag_seconds", "Commit-to-receipt delay of deltas received from peers (the writer's hybrid logical clock against this node's clock: exact on one host, plus the clock skew between hosts).")
	p.counter("hanode_replication_behind_total", "Times this node fell behind a sender and repaired by anti-entropy.", float64(n.stats.behind.Load()))
	p.counter("hanode_state_transfers_total", "Completed state transfers into this node.", float64(n.stats.transfers.Load()))
	p.counter("hanode_state_transfer_failures_total", "Failed state-transfer attempts.", float64(n.stats.transferFailures.Load()))
	p.gauge("hanode_state_transfer_duration_seconds", "Duration of the last state transfer into this node.", float64(n.stats.transferSeconds.Load())/1e9)
	p.gauge("hanode_state_transfer_sessions", "Records received by the last state transfer.", float64(n.stats.transferSessions.Load()))
	p.counter("hanode_state_transfer_requests_failed_total", "State-transfer and anti-entropy requests this node refused or could not answer (bad seal, malformed, cut off).", float64(n.stats.transferRejected.Load()))
	p.counter("hanode_state_transfer_preauth_evicted_total", "Unauthenticated state-transfer connections closed because too many were waiting.", float64(n.stats.transferEvicted.Load()))
	p.counter("hanode_anti_entropy_rounds_total", "Anti-entropy rounds run.", float64(n.stats.aeRounds.Load()))
	p.counter("hanode_anti_entropy_repaired_sessions_total", "Sessions changed by anti-entropy.", float64(n.stats.aeRepaired.Load()))
	p.counter("hanode_sessions_expired_total", "Sessions expired by this node.", float64(n.stats.expired.Load()))
}

type promWriter struct{ w io.Writer }

func (p promWriter) header(name, help, typ string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p promWriter) sample(name, labels string, v float64) {
	if labels != "" {
		fmt.Fprintf(p.w, "%s{%s} %g\n", name, labels, v)
		return
	}
	fmt.Fprintf(p.w, "%s %g\n", name, v)
}

func (p promWriter) counter(name, help string, v float64) {
	p.header(name, help, "counter")
	p.sample(name, "", v)
}

func (p promWriter) gauge(name, help string, v float64) {
	p.header(name, help, "gauge")
	p.sample(name, "", v)
}

// lagBounds are the upper bounds of the lag histogram's buckets.
var lagBounds = []time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// histogram is a fixed-bucket Prometheus histogram safe for concurrent use.
type histogram struct {
	counts [13]atomic.Uint64 // one per bound, then +Inf
	sum    atomic.Int64      // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0 // the writer's clock ran ahead
	}
	i := sort.Search(len(lagBounds), func(i int) bool { return d <= lagBounds[i] })
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) write(p promWriter, name, help string) {
	p.header(name, help, "histogram")
	var cum uint64
	for i, b := range lagBounds {
		cum += h.counts[i].Load()
		p.sample(name+"_bucket", fmt.Sprintf("le=%q", fmt.Sprint(b.Seconds())), float64(cum))
	}
	cum += h.counts[len(lagBounds)].Load()
	p.sample(name+"_bucket", `le="+Inf"`, float64(cum))
	p.sample(name+"_sum", "", float64(h.sum.Load())/1e9)
	p.sample(name+"_count", "", float64(cum))
}
