package resp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator"
)

// render decodes replies into a compact text: OK, !ERR msg, :1, "bulk",
// nil, [a b], {k:v}, for table tests.
func render(t testing.TB, b []byte) string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		s, n := render1(t, b)
		out = append(out, s)
		b = b[n:]
	}
	return strings.Join(out, " | ")
}

func render1(t testing.TB, b []byte) (string, int) {
	t.Helper()
	i := strings.Index(string(b), "\r\n")
	if i < 0 {
		t.Fatalf("truncated reply %q", b)
	}
	line, n := string(b[1:i]), i+2
	switch b[0] {
	case '+':
		return line, n
	case '-':
		return "!" + line, n
	case ':':
		return ":" + line, n
	case '_':
		return "nil", n
	case '$', '=':
		l, _ := strconv.Atoi(line)
		if l < 0 {
			return "nil", n
		}
		return strconv.Quote(string(b[n : n+l])), n + l + 2
	case '*', '~', '%':
		l, _ := strconv.Atoi(line)
		if l < 0 {
			return "nil", n
		}
		cnt := l
		if b[0] == '%' {
			cnt = 2 * l
		}
		var parts []string
		for k := 0; k < cnt; k++ {
			s, m := render1(t, b[n:])
			parts = append(parts, s)
			n += m
		}
		if b[0] == '%' {
			var kv []string
			for k := 0; k < len(parts); k += 2 {
				kv = append(kv, parts[k]+":"+parts[k+1])
			}
			return "{" + strings.Join(kv, " ") + "}", n
		}
		return "[" + strings.Join(parts, " ") + "]", n
	}
	t.Fatalf("unknown reply type %q", b)
	return "", 0
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     testing.TB
	e     *Engine
	store *replicator.Local
	clk   *fakeClock
}

func newHarness(t testing.TB, cfg Config) *harness {
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	cfg.Now = clk.Now
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{})
	e, err := NewEngine(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, e: e, store: store, clk: clk}
}

// split parses a command line: words separated by spaces, "double
// quoted" words with Go escapes.
func split(t testing.TB, line string) [][]byte {
	var args [][]byte
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		if line[0] == '"' {
			s, err := strconv.QuotedPrefix(line)
			if err != nil {
				t.Fatalf("bad quoted word in %q", line)
			}
			u, _ := strconv.Unquote(s)
			args = append(args, []byte(u))
			line = line[len(s):]
			continue
		}
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			i = len(line)
		}
		args = append(args, []byte(line[:i]))
		line = line[i:]
	}
	return args
}

func (h *harness) do(c *Client, line string) string {
	var w Reply
	h.e.Exec(c, split(h.t, line), &w)
	return render(h.t, w.B)
}

// step is one line of a table test: a command and its expected reply, or
// "sleep 1500ms" to move the fake clock.
type step struct{ cmd, want string }

func runSteps(t *testing.T, h *harness, c *Client, steps []step) {
	t.Helper()
	for i, s := range steps {
		if d, ok := strings.CutPrefix(s.cmd, "sleep "); ok {
			dd, err := time.ParseDuration(d)
			if err != nil {
				t.Fatal(err)
			}
			h.clk.Add(dd)
			continue
		}
		if got := h.do(c, s.cmd); got != s.want {
			t.Errorf("step %d: %s\n got %s\nwant %s", i, s.cmd, got, s.want)
		}
	}
}

func TestCommands(t *testing.T) {
	tables := map[string][]step{
		"connection": {
			{"PING", "PONG"},
			{"ping hello", `"hello"`},
			{"ECHO hi", `"hi"`},
			{"SELECT 0", "OK"},
			{"SELECT 1", "!ERR hanode serves database 0 only"},
			{"SELECT x", "!ERR value is not an integer or out of range"},
			{"CLIENT SETNAME app1", "OK"},
			{"CLIENT GETNAME", `"app1"`},
			{"CLIENT ID", ":1"},
			{"CLIENT SETINFO LIB-NAME redis-py", "OK"},
			{"CLIENT SETINFO nope x", "!ERR Unrecognized option 'nope'"},
			{"CLIENT KILL", "!ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
			{"COMMAND DOCS get", "[]"},
			{"AUTH secret", "!ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
			{"AUTH default x", "OK"},
			{"FLUSHALL", "!ERR unknown command 'FLUSHALL', with args beginning with: "},
			{"FOO a b", "!ERR unknown command 'FOO', with args beginning with: 'a' 'b' "},
			{"GET", "!ERR wrong number of arguments for 'get' command"},
			{"PING", "PONG"},
		},
		"strings": {
			{"GET k", "nil"},
			{"SET k v", "OK"},
			{"GET k", `"v"`},
			{"SET k v2 NX", "nil"},
			{"SET k v2 XX GET", `"v"`},
			{"SET new v XX", "nil"},
			{"SET new v NX GET", "nil"},
			{"GET new", `"v"`},
			{"SET k v NX XX", "!ERR syntax error"},
			{"SET k v EX 0", "!ERR invalid expire time in 'set' command"},
			{"SET k v EX x", "!ERR value is not an integer or out of range"},
			{"SET k v EX 10 PX 5", "!ERR syntax error"},
			{"SET k v BOGUS", "!ERR syntax error"},
			{"SETNX k x", ":0"},
			{"SETNX k2 x", ":1"},
			{"MGET k k2 missing", `["v2" "x" nil]`},
			{"GETDEL k2", `"x"`},
			{"GETDEL k2", "nil"},
			{"EXISTS k k k2", ":2"},
			{"DEL k new k2", ":2"},
			{"EXISTS k", ":0"},
			{"SET k again", "OK"},
			{"GET k", `"again"`},
			{"UNLINK k", ":1"},
			{`SET bin "a\x00b\r\n"`, "OK"},
			{"GET bin", `"a\x00b\r\n"`},
			{`SET empty ""`, "OK"},
			{"GET empty", `""`},
			{"EXISTS empty", ":1"},
			{"TYPE empty", "string"},
		},
		"ttl": {
			{"SET k v EX 10", "OK"},
			{"TTL k", ":10"},
			{"PTTL k", ":10000"},
			{"sleep 2500ms", ""},
			{"TTL k", ":8"},
			{"PTTL k", ":7500"},
			{"SET k v2 KEEPTTL", "OK"},
			{"PTTL k", ":7500"},
			{"SET k v3", "OK"},
			{"TTL k", ":-1"},
			{"TTL missing", ":-2"},
			{"EXPIRE k 5", ":1"},
			{"EXPIRE k 9 NX", ":0"},
			{"EXPIRE k 9 GT", ":1"},
			{"EXPIRE k 3 LT", ":1"},
			{"EXPIRE k 4 XX", ":1"},
			{"EXPIRE k 4 NX XX", "!ERR NX and XX, GT or LT options at the same time are not compatible"},
			{"EXPIRE missing 5", ":0"},
			{"PERSIST k", ":1"},
			{"PERSIST k", ":0"},
			{"PEXPIRE k 1500", ":1"},
			{"sleep 1499ms", ""},
			{"GET k", `"v3"`},
			{"sleep 1ms", ""},
			{"GET k", "nil"},
			{"EXISTS k", ":0"},
			{"TTL k", ":-2"},
			{"SET k fresh", "OK"},
			{"TTL k", ":-1"},
			{"EXPIREAT k 1800000100", ":1"},
			{"TTL k", ":96"},
			{"PEXPIREAT k 1800000004000", ":1"},
			{"PTTL k", ":-2"},
			{"SET k again", "OK"},
			{"PEXPIREAT k 1800000005000", ":1"},
			{"PTTL k", ":1000"},
			{"EXPIRE k -1", ":1"},
			{"GET k", "nil"},
			{"SETEX s 100 v", "OK"},
			{"TTL s", ":100"},
			{"PSETEX s 1500 v", "OK"},
			{"PTTL s", ":1500"},
			{"SETEX s 0 v", "!ERR invalid expire time in 'setex' command"},
			{"GETEX s PERSIST", `"v"`},
			{"TTL s", ":-1"},
			{"GETEX s EX 50", `"v"`},
			{"TTL s", ":50"},
			{"GETEX s", `"v"`},
			{"GETEX missing EX 5", "nil"},
			{"GETEX s EX 5 PERSIST", "!ERR syntax error"},
			{"SET p v PXAT 1800000008000", "OK"},
			{"PTTL p", ":4000"},
			{"SET p v EXAT 1800000010", "OK"},
			{"TTL p", ":6"},
		},
		"keys": {
			{"DBSIZE", ":0"},
			{"SET a 1", "OK"},
			{"SET ab 2", "OK"},
			{"HSET h f v", ":1"},
			{"SET gone x PX 10", "OK"},
			{"sleep 20ms", ""},
			{"DBSIZE", ":3"},
			{"KEYS a*", `["a" "ab"]`},
			{"KEYS ?b", `["ab"]`},
			{"KEYS [h]", `["h"]`},
			{"KEYS x*", "[]"},
			{"TYPE a", "string"},
			{"TYPE h", "hash"},
			{"TYPE none", "none"},
			{"SCAN 0 MATCH h", `["0" ["h"]]`},
			{"SCAN 0 TYPE hash", `["0" ["h"]]`},
			{"SCAN 0 COUNT 0", "!ERR syntax error"},
			{"SCAN x", "!ERR invalid cursor"},
			{"RENAME a c", "OK"},
			{"GET a", "nil"},
			{"GET c", `"1"`},
			{"RENAME missing x", "!ERR no such key"},
			{"EXPIRE h 100", ":1"},
			{"RENAME h c", "OK"},
			{"TYPE c", "hash"},
			{"TTL c", ":100"},
			{"EXISTS h", ":0"},
			{"RENAME c c", "OK"},
		},
		"hashes": {
			{"HSET h f1 v1 f2 v2", ":2"},
			{"HSET h f1 x f3 v3", ":1"},
			{"HGET h f1", `"x"`},
			{"HGET h nope", "nil"},
			{"HGET missing f", "nil"},
			{"HMGET h f1 nope f3", `["x" nil "v3"]`},
			{"HLEN h", ":3"},
			{"HEXISTS h f2", ":1"},
			{"HEXISTS h nope", ":0"},
			{"HDEL h f2 nope", ":1"},
			{"HLEN h", ":2"},
			{"HMSET h f4 v4", "OK"},
			{"HSET h f5", "!ERR wrong number of arguments for 'hset' command"},
			{"HINCRBY h n 5", ":5"},
			{"HINCRBY h n -7", ":-2"},
			{"HINCRBY h f1 1", "!ERR hash value is not an integer"},
			{"HINCRBY h n x", "!ERR value is not an integer or out of range"},
			{"HSET h big 9223372036854775807", ":1"},
			{"HINCRBY h big 1", "!ERR increment or decrement would overflow"},
			{"HDEL h f1 f3 f4 n big", ":5"},
			{"EXISTS h", ":0"},
			{"HLEN h", ":0"},
			{"HGETALL h", "[]"},
			{"SET s v", "OK"},
			{"HSET s f v", "!WRONGTYPE Operation against a key holding the wrong kind of value"},
			{"HGET s f", "!WRONGTYPE Operation against a key holding the wrong kind of value"},
			{"HSET h2 a 1", ":1"},
			{"GET h2", "!WRONGTYPE Operation against a key holding the wrong kind of value"},
			{"SET h2 v GET", "!WRONGTYPE Operation against a key holding the wrong kind of value"},
			{"SET h2 str", "OK"},
			{"TYPE h2", "string"},
			{"HKEYS h2", "!WRONGTYPE Operation against a key holding the wrong kind of value"},
			{"HSET h3 only 1", ":1"},
			{"HKEYS h3", `["only"]`},
			{"HGETALL h3", `["only" "1"]`},
		},
		"multi": {
			{"MULTI", "OK"},
			{"SET a 1", "QUEUED"},
			{"HSET h f 1", "QUEUED"},
			{"HINCRBY h f 2", "QUEUED"},
			{"GET a", "QUEUED"},
			{"DEL a", "QUEUED"},
			{"EXEC", `[OK :1 :3 "1" :1]`},
			{"EXISTS a", ":0"},
			{"HGET h f", `"3"`},
			{"MULTI", "OK"},
			{"MULTI", "!ERR MULTI calls can not be nested"},
			{"GET", "!ERR wrong number of arguments for 'get' command"},
			{"SET a 1", "QUEUED"},
			{"EXEC", "!EXECABORT Transaction discarded because of previous errors."},
			{"GET a", "nil"},
			{"MULTI", "OK"},
			{"SET a 1", "QUEUED"},
			{"DISCARD", "OK"},
			{"GET a", "nil"},
			{"EXEC", "!ERR EXEC without MULTI"},
			{"DISCARD", "!ERR DISCARD without MULTI"},
			{"MULTI", "OK"},
			{"SET s v", "QUEUED"},
			{"HSET s f v", "QUEUED"},
			{"EXEC", "[OK !WRONGTYPE Operation against a key holding the wrong kind of value]"},
			{"GET s", `"v"`},
		},
	}
	for name, steps := range tables {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			runSteps(t, h, h.e.NewClient("test"), steps)
		})
	}
}

func TestAuthAndHello(t *testing.T) {
	h := newHarness(t, Config{Password: "s3cret"})
	c := h.e.NewClient("test")
	runSteps(t, h, c, []step{
		{"GET k", "!NOAUTH Authentication required."},
		{"PING", "!NOAUTH Authentication required."},
		{"AUTH wrong", "!WRONGPASS invalid username-password pair or user is disabled."},
		{"AUTH other s3cret", "!WRONGPASS invalid username-password pair or user is disabled."},
		{"HELLO 3", "!NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"},
		{"AUTH s3cret", "OK"},
		{"GET k", "nil"},
		{"RESET", "RESET"},
		{"GET k", "!NOAUTH Authentication required."},
		{"AUTH default s3cret", "OK"},
		{"RESET", "RESET"},
		{"HELLO 3 AUTH default s3cret SETNAME me", `{"server":"redis" "version":"7.0.15" "proto"::3 "id"::` + strconv.FormatInt(c.ID, 10) + ` "mode":"standalone" "role":"master" "modules":[]}`},
		{"GET k", "nil"},
		{"HSET h a 1", ":1"},
		{"HGETALL h", `{"a":"1"}`},
		{"CLIENT GETNAME", `"me"`},
		{"HELLO 4", "!NOPROTO unsupported protocol version"},
		{"HELLO 2", `["server" "redis" "version" "7.0.15" "proto" :2 "id" :` + strconv.FormatInt(c.ID, 10) + ` "mode" "standalone" "role" "master" "modules" []]`},
		{"GET missing", "nil"},
		{"QUIT", "OK"},
	})
	var w Reply
	if !h.e.Exec(c, split(t, "QUIT"), &w) {
		t.Fatal("QUIT does not close")
	}
}

func TestValueLimit(t *testing.T) {
	h := newHarness(t, Config{MaxValueBytes: 8})
	c := h.e.NewClient("test")
	runSteps(t, h, c, []step{
		{"SET k 12345678", "OK"},
		{"SET k 123456789", "!ERR value of 9 bytes is over the limit of 8 bytes"},
		{"HSET h f 123456789", "!ERR value of 9 bytes is over the limit of 8 bytes"},
		{"GET k", `"12345678"`},
	})
}

// The records are replica sessions in their own namespace: an HSET of one
// field is a delta of one attribute, a key's TTL is the record's
// Deadline, and a deleted key leaves an empty record that is reclaimed.
func TestRecordsInTheReplica(t *testing.T) {
	h := newHarness(t, Config{ReclaimAfter: time.Minute})
	c := h.e.NewClient("test")
	h.do(c, "HSET sess:1 a 1 b 2")
	var deltas []*replicator.Delta
	h.e.store = &recordingStore{Store: h.store, deltas: &deltas}
	h.do(c, "HSET sess:1 a 3")
	if len(deltas) != 1 || len(deltas[0].Ops) != 1 || deltas[0].Ops[0].Key != "ha" || string(deltas[0].Ops[0].Value) != "3" {
		t.Fatalf("HSET of one field: %+v", deltas)
	}
	if deltas[0].ID != replicator.KeyPrefix+"sess:1" || !replicator.IsKeyRecord(deltas[0].ID) {
		t.Fatalf("record id %q", deltas[0].ID)
	}
	h.do(c, "EXPIRE sess:1 30")
	s := h.store.Get(replicator.KeyPrefix + "sess:1")
	if want := h.clk.Now().Add(30 * time.Second).UnixNano(); s.Deadline != want {
		t.Fatalf("deadline %d, want %d", s.Deadline, want)
	}
	h.do(c, "DEL sess:1")
	s = h.store.Get(replicator.KeyPrefix + "sess:1")
	if s == nil || liveAttrs(s) != 0 || s.Deadline != h.clk.Now().Add(time.Minute).UnixNano() {
		t.Fatalf("deleted key's record: %+v", s)
	}
	// The replica reclaims it at its deadline and the key can be set again.
	h.store.ExpireNow(h.clk.Now().Add(time.Minute).UnixNano())
	if h.store.Replica().Lookup(replicator.KeyPrefix+"sess:1") != nil {
		t.Fatal("record not reclaimed")
	}
	if got := h.do(c, "SET sess:1 v"); got != "OK" {
		t.Fatal(got)
	}
	// Reads commit nothing.
	n := len(deltas)
	h.do(c, "GET sess:1")
	h.do(c, "HGET nothing f")
	h.do(c, "DEL nothing")
	if len(deltas) != n {
		t.Fatalf("reads committed %d deltas", len(deltas)-n)
	}
}

func liveAttrs(s *replicator.Session) int {
	n := 0
	for _, a := range s.Attrs.All() {
		if !a.Deleted {
			n++
		}
	}
	return n
}

type recordingStore struct {
	Store
	deltas *[]*replicator.Delta
	err    error
	res    replicator.CommitResult
}

func (r *recordingStore) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	if r.err != nil {
		return replicator.CommitResult{}, r.err
	}
	cp := *d
	cp.Ops = append([]replicator.Op(nil), d.Ops...)
	*r.deltas = append(*r.deltas, &cp)
	res, err := r.Store.Commit(ctx, d, c)
	if r.res.TimedOut {
		res.TimedOut = true
	}
	return res, err
}

// With sync consistency a write that no peer acknowledged, or that the
// store refused, is an error reply; the connection stays usable.
func TestCommitErrorsAreErrorReplies(t *testing.T) {
	h := newHarness(t, Config{Consistency: replicator.Sync})
	c := h.e.NewClient("test")
	var deltas []*replicator.Delta
	rs := &recordingStore{Store: h.store, deltas: &deltas}
	h.e.store = rs
	rs.res.TimedOut = true
	if got := h.do(c, "SET k v"); !strings.HasPrefix(got, "!ERR not replicated") {
		t.Fatalf("timed out sync: %s", got)
	}
	rs.res.TimedOut = false
	rs.err = fmt.Errorf("cluster: %w", replicator.ErrNotReplicated)
	if got := h.do(c, "SET k v"); got != "!ERR not replicated: no peer acknowledged the write in time; retry it" {
		t.Fatalf("refused sync commit: %s", got)
	}
	rs.err = fmt.Errorf("cluster: %w", errors.New("no peer acknowledged"))
	if got := h.do(c, "HSET h f v"); got != "!ERR write failed: cluster: no peer acknowledged" {
		t.Fatalf("commit error: %s", got)
	}
	if got := h.do(c, "MULTI"); got != "OK" {
		t.Fatal(got)
	}
	h.do(c, "SET a 1")
	if got := h.do(c, "EXEC"); !strings.HasPrefix(got, "!ERR write failed") {
		t.Fatalf("exec: %s", got)
	}
	rs.err = nil
	if got := h.do(c, "SET k v2"); got != "OK" {
		t.Fatalf("after errors: %s", got)
	}
}

// HINCRBY from many connections at once loses no increment: commands of
// one key are serialised on a node.
func TestConcurrentIncrements(t *testing.T) {
	h := newHarness(t, Config{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.e.NewClient("test")
			for i := 0; i < 200; i++ {
				var w Reply
				h.e.Exec(c, [][]byte{[]byte("HINCRBY"), []byte("ctr"), []byte("n"), []byte("1")}, &w)
			}
		}()
	}
	wg.Wait()
	if got := h.do(h.e.NewClient("t"), "HGET ctr n"); got != `"1600"` {
		t.Fatalf("counter %s", got)
	}
}

func TestScanCursor(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.e.NewClient("test")
	want := map[string]bool{}
	var w Reply
	for i := 0; i < 2500; i++ {
		k := fmt.Sprintf("key:%d", i)
		want[k] = true
		w.Reset()
		h.e.Exec(c, [][]byte{[]byte("SET"), []byte(k), []byte("v")}, &w)
	}
	seen := map[string]bool{}
	cursor, calls := "0", 0
	for {
		calls++
		w.Reset()
		h.e.Exec(c, [][]byte{[]byte("SCAN"), []byte(cursor), []byte("COUNT"), []byte("10")}, &w)
		r := render(t, w.B)
		// ["cursor" ["k" ...]]
		r = strings.TrimPrefix(r, "[")
		cur, rest, _ := strings.Cut(r, " ")
		cursor, _ = strconv.Unquote(cur)
		for _, f := range strings.Fields(strings.Trim(rest, "[]")) {
			k, _ := strconv.Unquote(f)
			seen[k] = true
		}
		if cursor == "0" || calls > 10 {
			break
		}
	}
	if len(seen) != len(want) || cursor != "0" || calls < 3 {
		t.Fatalf("scan saw %d of %d keys in %d calls, cursor %s", len(seen), len(want), calls, cursor)
	}
}

func TestMultiQueueIsBounded(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.e.NewClient("test")
	h.do(c, "MULTI")
	var w Reply
	for i := 0; i < maxQueued; i++ {
		w.Reset()
		h.e.Exec(c, [][]byte{[]byte("SET"), []byte("k"), []byte("v")}, &w)
	}
	if got := h.do(c, "SET k v"); !strings.HasPrefix(got, "!ERR MULTI queue full") {
		t.Fatalf("over the bound: %s", got)
	}
	if got := h.do(c, "EXEC"); got != "!EXECABORT Transaction discarded because of previous errors." {
		t.Fatal(got)
	}
	if got := h.do(c, "GET k"); got != "nil" {
		t.Fatal(got)
	}
}
