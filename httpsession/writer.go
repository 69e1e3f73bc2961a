package httpsession

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/hanode/hanode/replicator"
)

// responseWriter commits the session before the first byte of the response.
// It never buffers: every call goes straight to the wrapped writer, and
// Unwrap exposes it to http.ResponseController.
type responseWriter struct {
	rw      http.ResponseWriter
	s       *Session
	r       *http.Request
	began   bool // the session was committed for the response (handler goroutine only)
	failErr error
}

// begin commits the session and writes the cookie headers, once, when the
// handler starts its response. After it, the session refuses changes.
func (w *responseWriter) begin() { w.start(false) }

// finish is begin when the handler has returned: a handler that returns
// without writing after a failed Flush did not answer, so ErrorFunc does.
func (w *responseWriter) finish() { w.start(true) }

// start commits and, when the commit fails, lets ErrorFunc answer, unless
// the handler learned of the failure from Flush, changed nothing since and
// writes its own answer: then nothing is committed again.
func (w *responseWriter) start(handlerReturned bool) {
	if w.began {
		return
	}
	w.began = true
	s := w.s
	s.mu.Lock()
	s.started = true
	var err error
	handed := s.handedErr
	switch {
	case handed != nil && !handlerReturned:
		s.mu.Unlock()
		return
	case handed != nil:
		err = handed
	default:
		_, err = s.commitLocked()
		if rebindOnError(err) {
			s.writeCookieLocked(w.rw.Header())
		}
	}
	s.mu.Unlock()
	if err != nil {
		if handed == nil {
			s.m.cfg.Logger.Warn("httpsession: commit failed", "session", s.Hash(), "err", err)
		}
		w.failErr = fmt.Errorf("httpsession: session commit failed: %w", err)
		s.m.cfg.ErrorFunc(w.rw, w.r, err)
	}
}

// rebindOnError reports whether a failed commit still rebinds the cookie
// to this node: a commit that was not replicated may be applied here, so
// the client's next request must tell the node it reaches that this node
// may hold a change it lacks (see Manager.load's fence).
func rebindOnError(err error) bool {
	return err == nil || errors.Is(err, replicator.ErrNotReplicated)
}

func (w *responseWriter) Header() http.Header { return w.rw.Header() }

func (w *responseWriter) WriteHeader(code int) {
	if !w.began && code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.rw.WriteHeader(code) // informational: the response has not started
		return
	}
	w.begin()
	if w.failErr != nil {
		return
	}
	w.rw.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.begin()
	if w.failErr != nil {
		return 0, w.failErr
	}
	return w.rw.Write(b)
}

// ReadFrom keeps the wrapped writer's sendfile path (io.Copy to the
// response).
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	w.begin()
	if w.failErr != nil {
		return 0, w.failErr
	}
	if rf, ok := w.rw.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.rw}, src)
}

type writerOnly struct{ io.Writer }

// Flush implements http.Flusher; flushing starts the response.
func (w *responseWriter) Flush() {
	w.begin()
	if w.failErr != nil {
		return
	}
	_ = http.NewResponseController(w.rw).Flush()
}

// FlushError is the http.ResponseController form of Flush.
func (w *responseWriter) FlushError() error {
	w.begin()
	if w.failErr != nil {
		return w.failErr
	}
	return http.NewResponseController(w.rw).Flush()
}

// Hijack implements http.Hijacker. The session is committed first; a new
// session's cookie reaches the client only if the hijacking code copies
// the response headers (most WebSocket upgraders accept them).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.begin()
	if w.failErr != nil {
		return nil, nil, w.failErr
	}
	return http.NewResponseController(w.rw).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.rw }
