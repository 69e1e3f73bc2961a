package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// State transfer and anti-entropy run over TCP, in a challenge-response
// handshake: the server speaks first with a fresh nonce, the client sends
// a sealed request whose key covers that nonce, the server answers with a
// sealed stream of session records whose key covers both the server's
// nonce and the request's salt (the client's fresh nonce).
//
//	server:   "HNX2" | nonce (32)
//	client:   sealed stream (label request, bound to the server nonce):
//	          kind (1 byte) [uvarint buckets, buckets × 8-byte digest]
//	server:   sealed stream (label response, bound to server nonce |
//	          request salt): uvarint count, { uvarint length, session
//	          record }* uvarint 0
//
// Both directions are sealed under the cluster key, so a stranger can
// neither read sessions nor feed them in; a recorded request does not
// open under another server nonce and a recorded response does not open
// for another request, so neither can be replayed; the sealed stream's
// end marker makes a truncated transfer an error rather than a short one.
//
// Before the request is authenticated a connection costs a goroutine and
// a few hundred bytes: at most maxPreAuth such connections are kept (a
// new one closes the oldest), each must deliver its whole request within
// handshakeTimeout (an overall deadline: trickling bytes does not extend
// it), and a request chunk larger than maxRequest is refused before
// anything is read or allocated for it. At most maxServing authenticated
// requests are answered at once.
const (
	reqFull    byte = 1 // every session and tombstone
	reqBuckets byte = 2 // sessions of the buckets whose digest differs

	labelRequest  = "hanode state-transfer request v2"
	labelResponse = "hanode state-transfer response v2"
	helloMagic    = "HNX2"
	nonceLen      = multicast.StreamSaltLen

	aeBuckets        = 256
	maxRequest       = 16 + aeBuckets*8
	maxChunk         = 64 << 10
	dialTimeout      = 3 * time.Second
	retryBackoff     = 500 * time.Millisecond
	maxPreAuth       = 64
	maxServing       = 8
	handshakeTimeout = 5 * time.Second
)

var errNoDonor = errors.New("cluster: no member to transfer state from")

// progressConn fails a read or write that makes no progress for timeout.
type progressConn struct {
	net.Conn
	timeout time.Duration
}

func (c progressConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c progressConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// preAuth tracks the connections whose request is not authenticated yet.
type preAuth struct {
	mu    sync.Mutex
	conns []net.Conn // oldest first
}

// add registers c, closing the oldest connection when maxPreAuth are
// waiting already. It reports whether one was closed.
func (p *preAuth) add(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	evicted := false
	if len(p.conns) >= maxPreAuth {
		p.conns[0].Close()
		p.conns = slices.Delete(p.conns, 0, 1)
		evicted = true
	}
	p.conns = append(p.conns, c)
	return evicted
}

func (p *preAuth) remove(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.conns, c); i >= 0 {
		p.conns = slices.Delete(p.conns, i, i+1)
	}
}

func (p *preAuth) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// serveTransfers answers state-transfer and anti-entropy requests.
func (n *Node) serveTransfers() {
	serving := make(chan struct{}, maxServing)
	for {
		c, err := n.ln.Accept()
		if err != nil {
			if n.ctx.Err() == nil {
				n.log.Error("state-transfer listener failed", "err", err)
			}
			return
		}
		if n.preAuth.add(c) {
			n.stats.transferEvicted.Add(1)
		}
		n.goRun(func() {
			defer c.Close()
			authed, err := n.serveOne(c, serving)
			if err == nil {
				return
			}
			n.stats.transferRejected.Add(1)
			// Unauthenticated failures are anyone's doing: a warning at
			// most every 10 s, the others at debug level.
			lvl := slog.LevelWarn
			if !authed {
				last := n.preAuthWarned.Load()
				if now := time.Now().UnixNano(); now-last < int64(10*time.Second) || !n.preAuthWarned.CompareAndSwap(last, now) {
					lvl = slog.LevelDebug
				}
			}
			n.log.Log(n.ctx, lvl, "state-transfer request failed", "remote", c.RemoteAddr().String(), "authenticated", authed, "err", err)
		})
	}
}

// handshakeDeadline is the overall time a client has to send its request.
func (n *Node) handshakeDeadline() time.Duration {
	return min(handshakeTimeout, n.cfg.TransferTimeout)
}

// readRequest runs the server's side of the handshake on c: it sends the
// nonce and reads the sealed request bound to it, within one overall
// deadline. It returns the request and the request stream's salt.
func (n *Node) readRequest(c net.Conn) (req, salt, nonce []byte, err error) {
	c.SetDeadline(time.Now().Add(n.handshakeDeadline()))
	nonce = make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, nil, err
	}
	hello := append([]byte(helloMagic), nonce...)
	if _, err := c.Write(hello); err != nil {
		return nil, nil, nil, fmt.Errorf("send nonce: %w", err)
	}
	sr := multicast.NewBoundSealedReader(n.cfg.Keyring, c, labelRequest, maxRequest, nonce)
	req, err = io.ReadAll(io.LimitReader(sr, maxRequest+1))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read request: %w", err)
	}
	if len(req) == 0 || len(req) > maxRequest {
		return nil, nil, nil, errors.New("bad request size")
	}
	return req, sr.Salt(), nonce, nil
}

// serveOne answers one connection; authed reports whether its request
// was authenticated.
func (n *Node) serveOne(c net.Conn, serving chan struct{}) (authed bool, err error) {
	req, salt, nonce, err := n.readRequest(c)
	n.preAuth.remove(c)
	if err != nil {
		return false, err
	}
	return true, n.answer(c, serving, req, salt, nonce)
}

func (n *Node) answer(c net.Conn, serving chan struct{}, req, salt, nonce []byte) error {
	// Authenticated: wait for a free slot, within the handshake deadline.
	select {
	case serving <- struct{}{}:
		defer func() { <-serving }()
	case <-time.After(n.handshakeDeadline()):
		return errors.New("too many state transfers under way")
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
	c.SetDeadline(time.Time{})
	pc := progressConn{c, n.cfg.TransferTimeout}
	var sessions []*replicator.Session
	switch req[0] {
	case reqFull:
		n.replica.Range(func(s *replicator.Session) bool {
			sessions = append(sessions, s)
			return true
		})
	case reqBuckets:
		theirs, err := decodeDigest(req[1:])
		if err != nil {
			return err
		}
		mine := n.replica.Digest(len(theirs))
		for i := range mine {
			if mine[i] != theirs[i] {
				sessions = append(sessions, n.replica.BucketSessions(i, len(mine))...)
			}
		}
	default:
		return fmt.Errorf("unknown request kind %d", req[0])
	}
	w, err := multicast.NewBoundSealedWriter(n.cfg.Keyring, pc, labelResponse, append(slices.Clip(nonce), salt...))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, maxChunk)
	var buf []byte
	var lenBuf [binary.MaxVarintLen64]byte
	if _, err := bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(sessions)))]); err != nil {
		return err
	}
	for _, s := range sessions {
		buf = replicator.AppendSession(buf[:0], s)
		k := binary.PutUvarint(lenBuf[:], uint64(len(buf)))
		if _, err := bw.Write(lenBuf[:k]); err != nil {
			return err
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	if _, err := bw.Write([]byte{0}); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Close()
}

func decodeDigest(b []byte) ([]uint64, error) {
	cnt, k := binary.Uvarint(b)
	if k <= 0 || cnt == 0 || cnt > aeBuckets || uint64(len(b)-k) != cnt*8 {
		return nil, errors.New("malformed digest")
	}
	b = b[k:]
	out := make([]uint64, cnt)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[i*8:])
	}
	return out, nil
}

// fetch asks the member at addr for sessions and merges them. It returns
// how many records arrived and how many changed the replica.
//
// progress, when not nil, is called with the announced total first and
// then with the running count of records received.
func (n *Node) fetch(ctx context.Context, addr string, full bool, progress func(got, total int64)) (received, changed int, err error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return 0, 0, err
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	c := progressConn{raw, n.cfg.TransferTimeout}

	var hello [len(helloMagic) + nonceLen]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return 0, 0, fmt.Errorf("read the server's nonce: %w", err)
	}
	if string(hello[:len(helloMagic)]) != helloMagic {
		return 0, 0, errors.New("not a state-transfer server of this protocol version")
	}
	nonce := hello[len(helloMagic):]

	req := []byte{reqFull}
	if !full {
		dg := n.replica.Digest(aeBuckets)
		req = binary.AppendUvarint([]byte{reqBuckets}, uint64(len(dg)))
		for _, v := range dg {
			req = binary.BigEndian.AppendUint64(req, v)
		}
	}
	w, err := multicast.NewBoundSealedWriter(n.cfg.Keyring, c, labelRequest, nonce)
	if err != nil {
		return 0, 0, err
	}
	if _, err := w.Write(req); err != nil {
		return 0, 0, err
	}
	if err := w.Close(); err != nil {
		return 0, 0, err
	}

	bind := append(slices.Clip(nonce), w.Salt()...)
	r := bufio.NewReaderSize(multicast.NewBoundSealedReader(n.cfg.Keyring, c, labelResponse, maxChunk, bind), maxChunk)
	limit := uint64(n.cfg.MaxSessionBytes)*2 + 4096
	total, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, 0, fmt.Errorf("read record count: %w", err)
	}
	if progress != nil {
		progress(0, int64(total))
	}
	var buf []byte
	for {
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return received, changed, fmt.Errorf("read record length: %w", err)
		}
		if size == 0 {
			break
		}
		if size > limit {
			return received, changed, fmt.Errorf("record of %d bytes exceeds the limit", size)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return received, changed, fmt.Errorf("read record: %w", err)
		}
		s, _, err := replicator.DecodeSession(buf)
		if err != nil {
			return received, changed, err
		}
		received++
		if n.replica.MergeSession(s) {
			changed++
		}
		if progress != nil && received%1024 == 0 {
			progress(int64(received), int64(total))
		}
	}
	if uint64(received) != total {
		return received, changed, fmt.Errorf("received %d records of the %d announced", received, total)
	}
	if progress != nil {
		progress(int64(received), int64(total))
	}
	// The sealed stream must end right after the terminator.
	if _, err := r.ReadByte(); err != io.EOF {
		return received, changed, errors.New("trailing data after the last record")
	}
	return received, changed, nil
}

// joinAndRepair makes the node ready: it loads the cluster's sessions from
// a ready member (the oldest first), or declares itself the first member
// when nobody else is there. Then it runs anti-entropy rounds.
func (n *Node) joinAndRepair() {
	start := time.Now()
	staleAtStart := n.tr.Stats().Rejected["stale"]
	// Join probe: this node's first heartbeat goes out at start and every
	// member answers a newcomer's heartbeat at its next tick (membership),
	// besides its own heartbeat every interval. A node that hears nobody
	// and no traffic within the probe window (two heartbeat intervals, at
	// least 400ms: a loaded member may answer late) is the first member
	// and is ready at once; one that hears anybody (or has packets refused
	// as stale, see below) waits for the cluster (JoinTimeout) as below.
	probe := min(max(2*n.cfg.HeartbeatInterval, 400*time.Millisecond), n.cfg.JoinTimeout)
	if !n.sleep(probe) {
		return
	}
	first := n.noneHeard() && n.tr.Stats().Rejected["stale"] == staleAtStart
	if first {
		n.log.Info("nobody answered the join probe; starting as the first member", "after", probe)
	}
	for !first && n.ctx.Err() == nil {
		donors := n.readyPeers()
		if len(donors) > 0 {
			if n.transferFrom(donors) == nil {
				break
			}
			if !n.sleep(retryBackoff) {
				return
			}
			continue
		}
		if time.Since(start) >= n.cfg.JoinTimeout && n.isOldest() {
			// Traffic from a sender that membership does not list yet
			// (its heartbeats queued behind a burst) means a cluster is
			// there: wait for it rather than start empty, for a while.
			// So do first packets of unknown senders refused as stale:
			// a cluster whose clocks are apart from this host's (or a
			// replay of old traffic: the wait is bounded).
			stale := n.tr.Stats().Rejected["stale"] - staleAtStart
			if (n.lastSender.Load() > 0 || stale > 0) && len(n.alivePeers()) == 0 &&
				time.Since(start) < 10*n.cfg.JoinTimeout {
				if !n.sleep(100 * time.Millisecond) {
					return
				}
				continue
			}
			if stale > 0 && len(n.alivePeers()) == 0 {
				n.log.Error("starting as the first member although packets of other senders were refused as stale: if this host's clock is apart from the others' by more than the tolerated skew, this node now serves sessions apart from the cluster; synchronise the clocks (NTP) and restart it",
					"stale_packets", stale)
			} else {
				n.log.Info("no ready member found; starting as the first member", "peers", len(n.alivePeers()))
			}
			break
		}
		if !n.sleep(100 * time.Millisecond) {
			return
		}
	}
	if n.ctx.Err() != nil {
		return
	}
	n.ready.Store(true)
	if !n.draining.Load() {
		n.setMeta(metaReady, "1")
	}
	n.log.Info("ready", "sessions", n.replica.Len(), "after", time.Since(start).Round(time.Millisecond))

	for {
		if !n.sleep(jitter(n.cfg.AntiEntropyInterval)) {
			return
		}
		peers := n.readyPeers()
		if len(peers) == 0 {
			continue
		}
		n.requestRepair(peers[mrand.N(len(peers))].ID)
	}
}

// requestRepair runs an anti-entropy round with member id, one round at a
// time: a request made while a round runs is folded into one more round
// after it (with the latest member asked for), so that a node that falls
// behind under load does not start a digest and a transfer per event.
func (n *Node) requestRepair(id uuid.UUID) {
	n.repairMu.Lock()
	if n.repairRunning {
		n.repairNext, n.repairAgain = id, true
		n.repairMu.Unlock()
		return
	}
	if n.ctx.Err() != nil {
		n.repairMu.Unlock()
		return
	}
	n.repairRunning = true
	n.repairMu.Unlock()
	n.goRun(func() {
		delay := jitter(2 * n.cfg.HeartbeatInterval)
		for {
			if n.sleep(delay) {
				n.repairFrom(id)
			}
			n.repairMu.Lock()
			if !n.repairAgain || n.ctx.Err() != nil {
				n.repairRunning, n.repairAgain = false, false
				n.repairMu.Unlock()
				return
			}
			id, n.repairAgain = n.repairNext, false
			n.repairMu.Unlock()
			delay = time.Second
		}
	})
}

// transferFrom pulls the full state from the first donor that succeeds.
func (n *Node) transferFrom(donors []membership.Member) error {
	for _, m := range donors {
		addr := m.Meta[metaTransfer]
		t0 := time.Now()
		n.log.Info("state transfer starting", "peer", m.Name, "addr", addr)
		ctx, cancel := context.WithCancel(n.ctx)
		n.transferring.Store(true)
		lastLog := time.Now()
		got, _, err := n.fetch(ctx, addr, true, func(got, total int64) {
			n.xferGot.Store(got)
			n.xferTotal.Store(total)
			if time.Since(lastLog) >= 2*time.Second {
				lastLog = time.Now()
				n.log.Info("state transfer progress", "peer", m.Name, "received", got, "total", total)
			}
		})
		n.transferring.Store(false)
		cancel()
		if err != nil {
			n.stats.transferFailures.Add(1)
			n.log.Warn("state transfer failed; trying another member", "peer", m.Name, "received", got, "err", err)
			continue
		}
		el := time.Since(t0)
		n.stats.transfers.Add(1)
		n.stats.transferSeconds.Store(int64(el))
		n.stats.transferSessions.Store(uint64(got))
		n.log.Info("state transfer done", "peer", m.Name, "records", got, "took", el.Round(time.Millisecond))
		return nil
	}
	return errNoDonor
}

// repairFrom runs one anti-entropy round with a member: it pulls the
// sessions of every bucket whose digest differs. Callers go through
// requestRepair.
func (n *Node) repairFrom(id uuid.UUID) {
	if n.ctx.Err() != nil {
		return
	}
	var addr, name string
	for _, m := range n.alivePeers() {
		if m.ID == id {
			addr, name = m.Meta[metaTransfer], m.Name
		}
	}
	if addr == "" {
		// The sender is gone: repair from any ready member instead.
		peers := n.readyPeers()
		if len(peers) == 0 {
			return
		}
		m := peers[mrand.N(len(peers))]
		addr, name = m.Meta[metaTransfer], m.Name
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*n.cfg.TransferTimeout)
	defer cancel()
	got, changed, err := n.fetch(ctx, addr, false, nil)
	n.stats.aeRounds.Add(1)
	n.stats.aeRepaired.Add(uint64(changed))
	if err != nil {
		n.log.Warn("anti-entropy round failed", "peer", name, "err", err)
		return
	}
	if changed > 0 {
		n.log.Info("anti-entropy repaired sessions", "peer", name, "received", got, "repaired", changed)
	}
}

// readyPeers returns the alive, ready members other than this node,
// oldest first.
func (n *Node) readyPeers() []membership.Member {
	var out []membership.Member
	for _, m := range n.alivePeers() {
		if m.Meta[metaReady] == "1" && m.Meta[metaTransfer] != "" {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return older(out[i], out[j]) })
	return out
}

func older(a, b membership.Member) bool {
	if !a.Started.Equal(b.Started) {
		return a.Started.Before(b.Started)
	}
	return a.ID.String() < b.ID.String()
}

// isOldest reports whether no alive peer is older than this node.
// noneHeard reports whether no other member and no sender at all has been
// heard since start.
func (n *Node) noneHeard() bool {
	n.memMu.Lock()
	others := len(n.mem.Members()) - 1
	n.memMu.Unlock()
	return others == 0 && n.lastSender.Load() == 0
}

func (n *Node) isOldest() bool {
	self := membership.Member{ID: n.id, Started: n.started}
	for _, m := range n.alivePeers() {
		if older(m, self) {
			return false
		}
	}
	return true
}

// sleep waits d or until the node stops; it reports whether to go on.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}
