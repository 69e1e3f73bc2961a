package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/replicator"
)

// recorder is a proxy on the lab's in-memory streams to target that
// records both directions of the first connection through it.
type recorder struct {
	ln       net.Listener
	mu       sync.Mutex
	toServer bytes.Buffer
	toClient bytes.Buffer
	done     chan struct{}
}

func newRecorder(t *testing.T, l *lab, target string) *recorder {
	t.Helper()
	ln := l.streams.listen()
	r := &recorder{ln: ln, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		defer close(r.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := l.streams.dial(context.Background(), target)
		if err != nil {
			return
		}
		defer s.Close()
		var wg sync.WaitGroup
		wg.Add(2)
		copyRec := func(dst, src net.Conn, rec *bytes.Buffer) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				k, err := src.Read(buf)
				if k > 0 {
					r.mu.Lock()
					rec.Write(buf[:k])
					r.mu.Unlock()
					dst.Write(buf[:k])
				}
				if err != nil {
					dst.Close() // an in-memory stream has no half close
					return
				}
			}
		}
		go copyRec(s, c, &r.toServer)
		go copyRec(c, s, &r.toClient)
		wg.Wait()
	}()
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

// TestTransferRequestReplayRefused: a state-transfer request recorded on
// the wire and sent again is not answered: the server's fresh nonce is
// not the one the recorded request was sealed for. (Before the
// handshake, one recorded request was answered with the full sealed
// state as often as it was sent.)
func TestTransferRequestReplayRefused(t *testing.T) {
	synctest.Test(t, testTransferRequestReplayRefused)
}

func testTransferRequestReplayRefused(t *testing.T) {
	l := newMemLab(t, 41)
	n1, n2 := l.start("n1", nil), l.start("n2", nil)
	waitReady(t, n1, n2)
	put(t, n1, "replaysessionxxxxxxxxxxxxxx", "k", "v", replicator.Async)

	rec := newRecorder(t, l, n1.ln.Addr().String())
	if _, _, err := n2.fetch(context.Background(), rec.addr(), true, nil); err != nil {
		t.Fatalf("recorded transfer failed: %v", err)
	}
	<-rec.done
	request := bytes.Clone(rec.toServer.Bytes())
	if len(request) == 0 || rec.toClient.Len() < 100 {
		t.Fatalf("recorded %d request and %d response bytes", len(request), rec.toClient.Len())
	}
	before := n1.stats.transferRejected.Load()
	for i := range 3 {
		c, err := l.streams.dial(context.Background(), n1.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// An in-memory stream buffers nothing: the request goes out
		// while the server's nonce is read.
		go c.Write(request)
		got, _ := io.ReadAll(c)
		c.Close()
		if len(got) != len(helloMagic)+nonceLen {
			t.Fatalf("replay %d: the server sent %d bytes, want only its %d-byte nonce", i, len(got), len(helloMagic)+nonceLen)
		}
	}
	eventually(t, 5*time.Second, "replays counted as refused", func() error {
		if d := n1.stats.transferRejected.Load() - before; d < 3 {
			return fmt.Errorf("%d refused", d)
		}
		return nil
	})
}

// TestTransferResponseReplayRefused: a recorded state-transfer response,
// played back by an impostor to a later request, is refused (its key
// covers the request's fresh salt) and nothing of it is merged: a
// session destroyed since stays destroyed.
func TestTransferResponseReplayRefused(t *testing.T) {
	synctest.Test(t, testTransferResponseReplayRefused)
}

func testTransferResponseReplayRefused(t *testing.T) {
	l := newMemLab(t, 42)
	n1, n2 := l.start("n1", nil), l.start("n2", nil)
	waitReady(t, n1, n2)
	id := "destroyedlaterxxxxxxxxxxxxx"
	put(t, n1, id, "k", "old", replicator.Async)
	eventually(t, 5*time.Second, "replicated", func() error {
		if _, ok := attr(n2, id, "k"); !ok {
			return fmt.Errorf("absent on n2")
		}
		return nil
	})

	rec := newRecorder(t, l, n1.ln.Addr().String())
	if _, _, err := n2.fetch(context.Background(), rec.addr(), true, nil); err != nil {
		t.Fatalf("recorded transfer failed: %v", err)
	}
	<-rec.done
	response := bytes.Clone(rec.toClient.Bytes())

	if ok, err := replicator.DestroyID(context.Background(), n1, id, time.Now().UnixNano()); !ok || err != nil {
		t.Fatal("kill")
	}
	put(t, n1, "laterwritexxxxxxxxxxxxxxxxx", "k", "new", replicator.Async)
	eventually(t, 5*time.Second, "destroyed on n2", func() error {
		if n2.Get(id) != nil {
			return fmt.Errorf("still live on n2")
		}
		return nil
	})

	// The impostor answers every connection with the recorded bytes.
	imp := l.streams.listen()
	defer imp.Close()
	go func() {
		for {
			c, err := imp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				// It reads the request while it writes: an in-memory
				// stream buffers nothing.
				read := make(chan struct{})
				go func() {
					defer close(read)
					io.Copy(io.Discard, c)
				}()
				c.Write(response)
				<-read
			}()
		}
	}()
	for range 3 {
		got, changed, err := n2.fetch(context.Background(), string(imp.addr), true, nil)
		if err == nil || got != 0 || changed != 0 {
			t.Fatalf("replayed response accepted: %d records, %d changed, err %v", got, changed, err)
		}
		t.Logf("replayed response refused: %v", err)
	}
	if n2.Get(id) != nil {
		t.Fatal("a destroyed session came back")
	}
}

// TestTransferPreAuthLimits: unauthenticated clients that announce a
// 64 KiB chunk and stall, that stay idle, or that trickle a byte at a
// time cost bounded memory and goroutines, the tricklers are cut off by
// the overall handshake deadline, and a real transfer still succeeds
// meanwhile. (Before: a 64 KiB buffer per connection before any tag was
// checked, one goroutine per connection without a cap, and a read
// timeout that each trickled byte renewed.)
//
// It runs in real time on loopback TCP, outside synctest: the attackers
// are hundreds of connections that the kernel buffers for, so that the
// heap and goroutine counts are the node's alone (an in-memory stream
// would need a goroutine of the test on each side to do that buffering).
func TestTransferPreAuthLimits(t *testing.T) {
	l := newLab(t, 43)
	n1 := l.start("n1", func(c *Config) { c.TransferTimeout = time.Second })
	waitReady(t, n1)
	for i := range 200 {
		put(t, n1, fmt.Sprintf("preauth%06dxxxxxxxxxxxxxx", i), "k", "v", replicator.Async)
	}
	target := n1.ln.Addr().String()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse
	g0 := runtime.NumGoroutine()

	// A stream header then a 64 KiB chunk length: what made the old
	// server allocate the chunk before it could check anything.
	bigChunk := make([]byte, 0, 41)
	bigChunk = append(bigChunk, "HNS1"...)
	bigChunk = append(bigChunk, 1)
	bigChunk = append(bigChunk, make([]byte, 32)...)
	bigChunk = binary.BigEndian.AppendUint32(bigChunk, 64<<10+16)

	const attackers = 600
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range attackers {
		c, err := net.Dial("tcp4", target)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if i%2 == 0 {
			c.Write(bigChunk)
		}
		conns = append(conns, c)
	}
	// Tricklers: one byte of a plausible header every 50 ms.
	const tricklers = 10
	cut := make(chan time.Duration, tricklers)
	for range tricklers {
		c, err := net.Dial("tcp4", target)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			pace := time.NewTicker(50 * time.Millisecond)
			defer pace.Stop()
			start := time.Now()
			for i := 0; time.Since(start) < 8*time.Second; i++ {
				if _, err := c.Write(bigChunk[i%len(bigChunk) : i%len(bigChunk)+1]); err != nil {
					cut <- time.Since(start)
					return
				}
				<-pace.C
			}
			cut <- -1
		}()
	}
	if p := n1.preAuth.len(); p > maxPreAuth {
		t.Errorf("%d unauthenticated connections held, cap %d", p, maxPreAuth)
	}
	// The server may still be accepting the backlog, and evicted
	// connections' goroutines end as their reads fail: wait for the count
	// to settle below the bound.
	bound := maxPreAuth + tricklers + 16
	eventually(t, 10*time.Second, "every attacking connection accepted", func() error {
		// Each one is held (unauthenticated) or was refused (evicted,
		// oversized chunk, deadline).
		if got := int(n1.stats.transferRejected.Load()) + n1.preAuth.len(); got < attackers+tricklers {
			return fmt.Errorf("%d of %d", got, attackers+tricklers)
		}
		return nil
	})
	// Checked below: no failure here.
	_ = testutil.Wait(10*time.Second, func() error {
		if g := runtime.NumGoroutine() - g0; g > bound {
			return fmt.Errorf("%d more goroutines", g)
		}
		return nil
	})
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := int64(ms.HeapInuse) - int64(heap0)
	g := runtime.NumGoroutine() - g0
	t.Logf("%d attackers + %d tricklers: heap +%d KiB, goroutines +%d, unauthenticated held %d, evicted %d",
		attackers, tricklers, heap/1024, g, n1.preAuth.len(), n1.stats.transferEvicted.Load())
	if heap > 12<<20 {
		t.Errorf("heap grew by %d KiB under %d unauthenticated connections", heap/1024, attackers)
	}
	// The node's goroutines: the pre-auth cap; the test's tricklers.
	if g > bound {
		t.Errorf("%d more goroutines under %d unauthenticated connections", g, attackers)
	}

	// A real member joins meanwhile, while more idle connections arrive.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 400; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if c, err := net.Dial("tcp4", target); err == nil {
				defer c.Close()
			}
		}
	}()
	n2 := l.start("n2", nil)
	waitReady(t, n2)
	close(stop)
	wg.Wait()
	if n2.Len() != 200 {
		t.Fatalf("joiner holds %d sessions, want 200", n2.Len())
	}
	for range tricklers {
		d := <-cut
		if d < 0 || d > 4*time.Second {
			t.Fatalf("a trickling client was held %v (handshake deadline %v)", d, n1.handshakeDeadline())
		}
	}
	if n1.stats.transferEvicted.Load() == 0 {
		t.Error("no eviction counted")
	}
}
