package resp

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// Server serves the Redis protocol on a listener: one goroutine per
// connection reads requests with redcon's RESP reader (behind a guard that
// enforces Limits), runs them on the Engine in order and writes the
// replies of each pipelined batch with one write.
type Server struct {
	e *Engine

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

// NewServer returns a server for e.
func NewServer(e *Engine) *Server {
	return &Server{e: e, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
}

// Engine returns the server's engine.
func (s *Server) Engine() *Engine { return s.e }

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("resp: server closed")

// Serve accepts connections on ln until Close, then returns
// ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.mu.Unlock()
	go func() {
		<-s.done
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than stop serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.e.cfg.Logger.Warn("redis listener: accept failed; retrying", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !s.track(nc) {
			continue
		}
		s.wg.Add(1)
		go s.serveConn(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers nc; it refuses (with an error reply) a connection over
// MaxConns.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	if len(s.conns) >= s.e.cfg.MaxConns {
		s.mu.Unlock()
		s.e.stats.refused.Add(1)
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(nc, "-ERR max number of clients reached\r\n")
		nc.Close()
		return false
	}
	s.conns[nc] = struct{}{}
	s.mu.Unlock()
	s.e.stats.accepted.Add(1)
	s.e.stats.conns.Add(1)
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	s.e.stats.conns.Add(-1)
}

// Close stops accepting, closes every connection and waits for their
// goroutines (a command in progress finishes first).
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	defer s.untrack(nc)
	defer nc.Close()
	e := s.e
	c := e.NewClient(nc.RemoteAddr().String())
	gr := &guardedReader{r: nc, g: guard{lim: e.cfg.Limits}}
	rd := redcon.NewReader(gr)
	var w Reply
	for {
		nc.SetReadDeadline(time.Now().Add(e.cfg.IdleTimeout))
		cmds, err := rd.ReadCommands()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
			case errors.As(err, &ne) && ne.Timeout():
				e.stats.idleClosed.Add(1)
			default:
				// A malformed request: an error reply, then close.
				e.stats.protoErrors.Add(1)
				w.Reset()
				w.Error(protocolMessage(err))
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				nc.Write(w.B)
				e.cfg.Logger.Debug("redis protocol error", "remote", c.Addr, "err", err)
			}
			return
		}
		w.Reset()
		quit := false
		for _, cmd := range cmds {
			if e.Exec(c, cmd.Args, &w) {
				quit = true
				break
			}
			if len(w.B) >= flushBytes {
				// A long pipeline of large replies goes out in parts.
				nc.SetWriteDeadline(time.Now().Add(e.cfg.IdleTimeout))
				if _, err := nc.Write(w.B); err != nil {
					return
				}
				w.Reset()
			}
		}
		nc.SetWriteDeadline(time.Now().Add(e.cfg.IdleTimeout))
		if _, err := nc.Write(w.B); err != nil || quit {
			return
		}
		if cap(w.B) > 1<<20 {
			w.B = nil // do not keep a large buffer for an idle connection
		}
	}
}

// flushBytes is the reply size at which a batch's replies are written
// before the batch ends.
const flushBytes = 256 << 10

// protocolMessage turns a reader or guard error into Redis's wording.
func protocolMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, ErrProtocol) {
		msg = msg[len(ErrProtocol.Error())+2:]
	}
	return "ERR Protocol error: " + strings.TrimPrefix(msg, "Protocol error: ")
}
