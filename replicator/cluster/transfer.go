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
	"net"
	"slices"
	"sync"
	"time"

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
				if now := n.now().UnixNano(); now-last < int64(10*time.Second) || !n.preAuthWarned.CompareAndSwap(last, now) {
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
		buf = codec.AppendSession(buf[:0], s)
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
	raw, err := n.cfg.Dial(ctx, addr)
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
		s, _, err := codec.DecodeSession(buf)
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
