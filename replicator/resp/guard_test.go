package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

func encodeCmd(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

var testLimits = Limits{MaxArgs: 4, MaxBulkBytes: 16, MaxCommandBytes: 24, MaxInlineBytes: 32}

func TestGuard(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ok   int    // bytes accepted
		err  string // substring; "" for none
	}{
		{"command", string(encodeCmd("SET", "k", "v")), len(encodeCmd("SET", "k", "v")), ""},
		{"pipeline", string(encodeCmd("GET", "k")) + string(encodeCmd("PING")), len(encodeCmd("GET", "k")) + len(encodeCmd("PING")), ""},
		{"inline", "PING\r\nGET k\n", 12, ""},
		{"too many args", "*5\r\n", 3, "5 arguments, limit 4"},
		{"bulk too long", "*1\r\n$17\r\n", 8, "17 bytes, limit 16"},
		{"command too long", string(encodeCmd("SET", "0123456789", "0123456789abc")), 34, "larger than 24 bytes"},
		{"negative bulk", "*1\r\n$-1\r\n", 8, "limit 16"},
		{"huge bulk length", "*1\r\n$99999999999999999999\r\n", 26, "invalid length"},
		{"letters in length", "*1x\r\n", 2, "invalid length byte"},
		{"no dollar", "*1\r\n+OK\r\n", 4, "expected '$'"},
		{"missing CRLF after bulk", "*1\r\n$1\r\nab", 9, "not followed by CRLF"},
		{"CR without LF", "*1\r\r", 3, "not ended by CRLF"},
		{"inline too long", strings.Repeat("a", 40), 32, "longer than 32"},
		{"inline too many words", "a b c d e f", 8, "more than 4 arguments"},
		{"empty array passes to the reader", "*0\r\n", 4, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := guard{lim: testLimits}
			// Byte by byte and whole: the same verdict.
			n, err := g.feed([]byte(tc.in))
			g2 := guard{lim: testLimits}
			n2 := 0
			var err2 error
			for i := 0; i < len(tc.in) && err2 == nil; i++ {
				var k int
				k, err2 = g2.feed([]byte{tc.in[i]})
				n2 += k
			}
			if n != tc.ok || n2 != tc.ok {
				t.Errorf("accepted %d (byte by byte %d), want %d", n, n2, tc.ok)
			}
			for _, e := range []error{err, err2} {
				if tc.err == "" && e != nil || tc.err != "" && (e == nil || !strings.Contains(e.Error(), tc.err) || !errors.Is(e, ErrProtocol)) {
					t.Errorf("err %v, want %q", e, tc.err)
				}
			}
		})
	}
}

// readAll reads every command the guarded reader yields from in.
func readAll(in []byte, lim Limits) ([]redcon.Command, error) {
	rd := redcon.NewReader(&guardedReader{r: &chunkReader{b: in, n: 7}, g: guard{lim: lim.withDefaults()}})
	var out []redcon.Command
	for len(out) < 10000 {
		cmds, err := rd.ReadCommands()
		for _, c := range cmds {
			c.Args = cloneArgs(c.Args)
			out = append(out, c)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func cloneArgs(a [][]byte) [][]byte {
	out := make([][]byte, len(a))
	for i := range a {
		out[i] = bytes.Clone(a[i])
	}
	return out
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

// The commands before a bad request run; then the error comes.
func TestGuardedReaderPassesCommandsBeforeTheError(t *testing.T) {
	in := append(encodeCmd("SET", "k", "v"), "*9\r\n"...)
	cmds, err := readAll(in, testLimits)
	if len(cmds) != 1 || string(cmds[0].Args[0]) != "SET" || !errors.Is(err, ErrProtocol) {
		t.Fatalf("cmds %d, err %v", len(cmds), err)
	}
}

// FuzzRequestReader feeds arbitrary bytes through the guard and redcon's
// reader: nothing panics, every command read is within the limits, and a
// well-formed request built from the input reads back exactly.
func FuzzRequestReader(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), "SET", "k")
	f.Add([]byte("PING\r\n"), "HSET", "")
	f.Add([]byte("*1\r\n$99999999999999999\r\n"), "a", "b")
	f.Add([]byte("*-1\r\n*0\r\n\"unbalanced\r\n"), "x\r\n", "\x00")
	f.Fuzz(func(t *testing.T, raw []byte, a, b string) {
		lim := testLimits.withDefaults()
		cmds, _ := readAll(raw, lim)
		for _, c := range cmds {
			if len(c.Args) > lim.MaxArgs {
				t.Fatalf("%d args over the limit", len(c.Args))
			}
			total := 0
			for _, a := range c.Args {
				total += len(a)
			}
			if total > max(lim.MaxCommandBytes, lim.MaxInlineBytes) {
				t.Fatalf("command of %d bytes over the limit", total)
			}
		}
		if len(a)+len(b) > lim.MaxCommandBytes || len(a) > lim.MaxBulkBytes || len(b) > lim.MaxBulkBytes || len(a) == 0 && len(b) == 0 {
			return
		}
		want := encodeCmd(a, b)
		cmds, err := readAll(append(bytes.Clone(want), want...), lim)
		if len(cmds) != 2 || !errors.Is(err, io.EOF) {
			t.Fatalf("well-formed pipeline: %d commands, %v", len(cmds), err)
		}
		for _, c := range cmds {
			if len(c.Args) != 2 || string(c.Args[0]) != a || string(c.Args[1]) != b {
				t.Fatalf("read %q, want %q %q", c.Args, a, b)
			}
		}
	})
}
