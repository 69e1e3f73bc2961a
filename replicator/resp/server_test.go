package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/replicator"
)

func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	e, err := NewEngine(replicator.NewLocal("n1", replicator.ReplicaConfig{}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(e)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readReply reads one reply and renders it.
func readReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var buf bytes.Buffer
	if err := copyReply(r, &buf); err != nil {
		t.Fatalf("read reply: %v (so far %q)", err, buf.String())
	}
	return render(t, buf.Bytes())
}

func copyReply(r *bufio.Reader, w *bytes.Buffer) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	w.WriteString(line)
	n := 0
	for _, c := range strings.TrimSpace(line[1:]) {
		n = n*10 + int(c-'0')
	}
	switch line[0] {
	case '$':
		if line[1] == '-' {
			return nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		w.Write(b)
	case '*', '%':
		if line[1] == '-' {
			return nil
		}
		if line[0] == '%' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := copyReply(r, w); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestServerPipelineAndErrors(t *testing.T) {
	s, addr := startServer(t, Config{})
	c, r := dial(t, addr)
	// Three pipelined commands in one write, an unknown one among them.
	var req []byte
	req = append(req, encodeCmd("SET", "k", "v")...)
	req = append(req, encodeCmd("NOPE")...)
	req = append(req, encodeCmd("GET", "k")...)
	req = append(req, "PING\r\n"...) // inline
	c.Write(req)
	for _, want := range []string{"OK", "!ERR unknown command 'NOPE', with args beginning with: ", `"v"`, "PONG"} {
		if got := readReply(t, r); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	var m bytes.Buffer
	s.Engine().WriteMetrics(&m)
	for _, want := range []string{`hanode_redis_commands_total{command="set"} 1`, `hanode_redis_command_errors_total{command="unknown"} 1`, "hanode_redis_connections 1"} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, m.String())
		}
	}
	// A malformed request: an error reply, then the connection closes.
	c.Write([]byte("*1\r\n+bad\r\n"))
	if got := readReply(t, r); !strings.HasPrefix(got, "!ERR Protocol error: expected '$'") {
		t.Fatalf("malformed: %s", got)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed: %v", err)
	}
	// QUIT answers then closes.
	c2, r2 := dial(t, addr)
	c2.Write(encodeCmd("QUIT"))
	if got := readReply(t, r2); got != "OK" {
		t.Fatal(got)
	}
	if _, err := r2.ReadByte(); err != io.EOF {
		t.Fatalf("QUIT did not close: %v", err)
	}
}

func TestServerLimits(t *testing.T) {
	s, addr := startServer(t, Config{MaxConns: 2, IdleTimeout: 200 * time.Millisecond, Limits: Limits{MaxBulkBytes: 1024}})
	c1, r1 := dial(t, addr)
	c1.Write(encodeCmd("PING"))
	readReply(t, r1)
	c2, r2 := dial(t, addr)
	c2.Write(encodeCmd("PING"))
	readReply(t, r2)
	// The third is refused.
	_, r3 := dial(t, addr)
	if got := readReply(t, r3); got != "!ERR max number of clients reached" {
		t.Fatalf("third connection: %s", got)
	}
	// An oversized bulk string: error reply and close.
	c1.Write([]byte("*2\r\n$3\r\nGET\r\n$5000\r\n"))
	if got := readReply(t, r1); !strings.Contains(got, "bulk string of 5000 bytes, limit 1024") {
		t.Fatalf("oversized: %s", got)
	}
	if _, err := r1.ReadByte(); err != io.EOF {
		t.Fatalf("not closed: %v", err)
	}
	// An idle connection is closed after IdleTimeout.
	if _, err := r2.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	var m bytes.Buffer
	testutil.Until(t, 5*time.Second, "no connection left", func() (bool, string) {
		m.Reset()
		s.Engine().WriteMetrics(&m)
		return strings.Contains(m.String(), "hanode_redis_connections 0"), m.String()
	})
	for _, want := range []string{"hanode_redis_connections 0", "hanode_redis_connections_refused_total 1", "hanode_redis_protocol_errors_total 1", "hanode_redis_connections_idle_closed_total 1"} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, m.String())
		}
	}
}

// The reader's own protocol errors (redcon's) are worded once.
func TestProtocolMessage(t *testing.T) {
	cmds, err := readAll([]byte("*0\r\n"), Limits{})
	if len(cmds) != 0 || err == nil {
		t.Fatalf("%d commands, %v", len(cmds), err)
	}
	if got := protocolMessage(err); got != "ERR Protocol error: invalid multibulk length" {
		t.Fatalf("%q", got)
	}
}
