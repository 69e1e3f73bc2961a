package resp

import (
	"errors"
	"fmt"
	"io"
)

// Limits bound what one connection may send before a command is parsed.
type Limits struct {
	// MaxArgs bounds the elements of one multibulk request (the command
	// name included), so also the keys of one command. Default 4096.
	MaxArgs int
	// MaxBulkBytes bounds one bulk string (one argument). Default 512 KiB.
	MaxBulkBytes int
	// MaxCommandBytes bounds the bulk strings of one request together.
	// Default 4 MiB.
	MaxCommandBytes int
	// MaxInlineBytes bounds one inline (telnet-style) request line.
	// Default 64 KiB, as Redis.
	MaxInlineBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxArgs <= 0 {
		l.MaxArgs = 4096
	}
	if l.MaxBulkBytes <= 0 {
		l.MaxBulkBytes = 512 << 10
	}
	if l.MaxCommandBytes <= 0 {
		l.MaxCommandBytes = 4 << 20
	}
	if l.MaxInlineBytes <= 0 {
		l.MaxInlineBytes = 64 << 10
	}
	return l
}

// ErrProtocol is wrapped by every error of the request guard: the client
// sent a malformed request or one over the limits, and the connection is
// closed after an error reply.
var ErrProtocol = errors.New("resp: protocol error")

const maxHeaderLen = 20 // digits (and sign) of a length line

// guard states
const (
	gStart     = iota // first byte of a request
	gArrayHdr         // digits of "*N"
	gBulkStart        // expecting '$'
	gBulkHdr          // digits of "$N"
	gBulkData         // N bytes and CRLF
	gInline           // an inline line up to '\n'
)

// guard checks the request stream against Limits before the RESP reader
// (redcon's) buffers it: that reader grows its buffer for as long as a
// request is incomplete and trusts lengths, so the guard is what bounds
// memory per connection. It follows the framing of requests only: arrays
// of bulk strings, or inline lines.
type guard struct {
	lim    Limits
	state  int
	hdr    [maxHeaderLen]byte
	hlen   int
	cr     bool  // the header's '\r' was seen
	args   int   // bulk strings left in the current array
	need   int64 // bytes left in the current bulk string, CRLF included
	cmd    int64 // bulk bytes of the current request
	inline int
	words  int  // words of the current inline line (an upper bound of its arguments)
	space  bool // the previous inline byte was a space
	err    error
}

// feed checks p, continuing the stream fed so far. It returns how many
// leading bytes of p are acceptable; when that is less than len(p), err
// says what is wrong with the rest and every later call fails.
func (g *guard) feed(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	for i := 0; i < len(p); {
		c := p[i]
		switch g.state {
		case gStart:
			switch c {
			case '*':
				g.state, g.hlen, g.cr, g.cmd = gArrayHdr, 0, false, 0
			default:
				g.state, g.inline, g.words, g.space = gInline, 0, 0, true
				continue // the byte belongs to the line
			}
			i++
		case gArrayHdr, gBulkHdr:
			n, ok, err := g.header(c)
			if err != nil {
				return g.failAt(i, err)
			}
			i++
			if !ok {
				continue
			}
			if g.state == gArrayHdr {
				switch {
				case n > int64(g.lim.MaxArgs):
					// The line's '\n' is withheld: the reader never sees
					// a complete header that breaks a limit.
					return g.failAt(i-1, fmt.Errorf("request of %d arguments, limit %d", n, g.lim.MaxArgs))
				case n <= 0:
					g.state = gStart // the reader answers *0 and *-1 itself
				default:
					g.args, g.state = int(n), gBulkStart
				}
				continue
			}
			if n < 0 || n > int64(g.lim.MaxBulkBytes) {
				return g.failAt(i-1, fmt.Errorf("bulk string of %d bytes, limit %d", n, g.lim.MaxBulkBytes))
			}
			g.cmd += n
			if g.cmd > int64(g.lim.MaxCommandBytes) {
				return g.failAt(i-1, fmt.Errorf("request larger than %d bytes", g.lim.MaxCommandBytes))
			}
			g.need, g.state = n+2, gBulkData
		case gBulkStart:
			if c != '$' {
				return g.failAt(i, fmt.Errorf("expected '$', got %q", c))
			}
			g.state, g.hlen, g.cr = gBulkHdr, 0, false
			i++
		case gBulkData:
			take := min(int64(len(p)-i), g.need)
			// The CRLF that ends the bulk string is checked byte by byte.
			for k := int64(0); k < take; k++ {
				left := g.need - k
				b := p[i+int(k)]
				if left == 2 && b != '\r' || left == 1 && b != '\n' {
					return g.failAt(i+int(k), errors.New("bulk string not followed by CRLF"))
				}
			}
			i += int(take)
			g.need -= take
			if g.need == 0 {
				g.args--
				if g.args == 0 {
					g.state = gStart
				} else {
					g.state = gBulkStart
				}
			}
		case gInline:
			if c == '\n' {
				g.state = gStart
				i++
				continue
			}
			if g.inline++; g.inline > g.lim.MaxInlineBytes {
				return g.failAt(i, fmt.Errorf("inline request longer than %d bytes", g.lim.MaxInlineBytes))
			}
			if c != ' ' && g.space {
				if g.words++; g.words > g.lim.MaxArgs {
					return g.failAt(i, fmt.Errorf("request of more than %d arguments", g.lim.MaxArgs))
				}
			}
			g.space = c == ' '
			i++
		}
	}
	return len(p), nil
}

func (g *guard) failAt(i int, err error) (int, error) {
	g.err = fmt.Errorf("%w: %v", ErrProtocol, err)
	return i, g.err
}

// header takes one byte of a length line; ok reports a complete line
// with its value.
func (g *guard) header(c byte) (n int64, ok bool, err error) {
	if g.cr {
		if c != '\n' {
			return 0, false, errors.New("length line not ended by CRLF")
		}
		return g.parse()
	}
	if c == '\r' {
		g.cr = true
		return 0, false, nil
	}
	if !(c >= '0' && c <= '9' || c == '-' && g.hlen == 0) || g.hlen == maxHeaderLen {
		return 0, false, fmt.Errorf("invalid length byte %q", c)
	}
	g.hdr[g.hlen] = c
	g.hlen++
	return 0, false, nil
}

func (g *guard) parse() (int64, bool, error) {
	h := g.hdr[:g.hlen]
	neg := len(h) > 0 && h[0] == '-'
	if neg {
		h = h[1:]
	}
	if len(h) == 0 || len(h) > 18 {
		return 0, false, errors.New("invalid length")
	}
	var n int64
	for _, d := range h {
		n = n*10 + int64(d-'0')
	}
	if neg {
		n = -n
	}
	return n, true, nil
}

// guardedReader passes a connection's bytes through a guard. Bytes before
// a violation are returned first (so the commands before it run), then
// the guard's error.
type guardedReader struct {
	r io.Reader
	g guard
}

func (gr *guardedReader) Read(p []byte) (int, error) {
	if gr.g.err != nil {
		return 0, gr.g.err
	}
	n, err := gr.r.Read(p)
	ok, gerr := gr.g.feed(p[:n])
	if gerr != nil && ok == 0 {
		return 0, gerr
	}
	if gerr != nil {
		return ok, nil // the error comes with the next Read
	}
	return n, err
}
