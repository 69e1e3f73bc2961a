package cluster

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
)

// memStreams is an in-memory stream network for state transfer: listeners
// named mem-1, mem-2, ... and a Dial that connects to them with net.Pipe.
// Nothing in it touches the operating system, so a cluster on it and on a
// multicast.MemNetwork runs inside a testing/synctest bubble.
type memStreams struct {
	mu   sync.Mutex
	next int
	ls   map[string]*memListener
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memListener struct {
	addr  memAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

func (m *memStreams) listen() *memListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	l := &memListener{addr: memAddr(fmt.Sprintf("mem-%d", m.next)), conns: make(chan net.Conn), done: make(chan struct{})}
	if m.ls == nil {
		m.ls = map[string]*memListener{}
	}
	m.ls[string(l.addr)] = l
	return l
}

// dial connects to the listener at addr; a missing or closed one refuses.
func (m *memStreams) dial(ctx context.Context, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.ls[addr]
	m.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "mem", Err: syscall.ECONNREFUSED}
	if l == nil {
		return nil, refused
	}
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
	client.Close()
	server.Close()
	return nil, refused
}

func newMemLab(t *testing.T, seed int64) *lab {
	l := newLab(t, seed)
	l.streams = &memStreams{}
	return l
}
