package main

// The Redis protocol against real clients. The compatibility test runs
// the same redis-cli scripts (testdata/redis/*.redis) against a real
// redis-server and against hanode and requires the same output.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// needTool fails the test when a client or server it drives is missing:
// CI installs them (.ci/run), a silent skip would hide a broken setup.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: apt-get install redis-server redis-tools php-cli php-redis python3-redis nodejs npm (see .ci/run)", n)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProc starts a process that the test kills (SIGKILL) at the end.
func startProc(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = cleanEnv()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), logs.String())
		}
	})
	return cmd
}

// waitRedis waits until something answers PING on port (with password pw).
func waitRedis(t *testing.T, port int, pw string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("PING on port %d", port), func() (bool, string) {
		args := []string{"-p", strconv.Itoa(port)}
		if pw != "" {
			args = append(args, "--no-auth-warning", "-a", pw)
		}
		out, err := exec.Command("redis-cli", append(args, "PING")...).CombinedOutput()
		return err == nil && strings.TrimSpace(string(out)) == "PONG", string(out)
	})
}

// startRedisServer runs a real redis-server without persistence.
func startRedisServer(t *testing.T, extra ...string) int {
	t.Helper()
	needTool(t, "redis-server", "redis-cli")
	port := freePort(t)
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, extra...)
	startProc(t, "redis-server", args...)
	pw := ""
	for i, a := range extra {
		if a == "--requirepass" {
			pw = extra[i+1]
		}
	}
	waitRedis(t, port, pw)
	return port
}

// startHanodeRedis runs hanode with HA off and the Redis protocol on.
func startHanodeRedis(t *testing.T, extra ...string) int {
	t.Helper()
	bin := hanodeBinary(t)
	port := freePort(t)
	args := append([]string{"run", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--admin", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--redis-listen", fmt.Sprintf("127.0.0.1:%d", port)}, extra...)
	startProc(t, bin, args...)
	pw := ""
	for i, a := range extra {
		switch a {
		case "--redis-password":
			pw = extra[i+1]
		case "--redis-password-file":
			b, _ := os.ReadFile(extra[i+1])
			pw = strings.TrimSpace(string(b))
		}
	}
	waitRedis(t, port, pw)
	return port
}

// cliScript runs a script through redis-cli (one command a line, replies
// formatted with their types).
func cliScript(t *testing.T, port int, script string, args ...string) string {
	t.Helper()
	in, err := os.ReadFile(filepath.Join("testdata", "redis", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port), "--no-raw"}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", script, err, out)
	}
	return string(out)
}

func rcli(t *testing.T, port int, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port), "--no-raw"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// diffLines reports the first lines where two outputs differ.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)) && len(out) < 20; i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d: redis-server %q, hanode %q", i+1, x, y))
		}
	}
	return strings.Join(out, "\n")
}

func TestRESPCompatibility(t *testing.T) {
	real := startRedisServer(t)
	ha := startHanodeRedis(t)
	for _, sc := range []struct {
		script string
		args   []string
	}{
		{"compat.redis", nil},
		{"compat3.redis", []string{"-3"}}, // RESP3 after HELLO 3
	} {
		want := cliScript(t, real, sc.script, sc.args...)
		got := cliScript(t, ha, sc.script, sc.args...)
		if got != want {
			t.Errorf("%s %v: replies differ from redis-server's:\n%s", sc.script, sc.args, diffLines(want, got))
		}
		if n := strings.Count(want, "\n"); n < 10 {
			t.Fatalf("%s: only %d reply lines from redis-server", sc.script, n)
		}
	}
	// SCAN with MATCH, COUNT and TYPE, iterated to the end by redis-cli
	// --scan; KEYS and DBSIZE: the same sets of keys.
	for _, p := range []int{real, ha} {
		for i := 0; i < 300; i++ {
			if i%3 == 0 {
				rcli(t, p, "HSET", fmt.Sprintf("scan:h:%d", i), "f", "v")
			} else {
				rcli(t, p, "SET", fmt.Sprintf("scan:s:%d", i), "v")
			}
		}
	}
	sorted := func(s string) string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		sort.Strings(l)
		return strings.Join(l, "\n")
	}
	for _, args := range [][]string{
		{"--scan"},
		{"--scan", "--pattern", "scan:h:*"},
	} {
		want, got := sorted(rcli(t, real, args...)), sorted(rcli(t, ha, args...))
		if want != got || want == "" {
			t.Errorf("%v: %d keys from redis-server, %d from hanode", args, strings.Count(want, "\n")+1, strings.Count(got, "\n")+1)
		}
	}
	// SCAN by hand, with COUNT.
	scanAll := func(port int, opts ...string) string {
		var keys []string
		cursor := "0"
		for i := 0; i < 1000; i++ {
			out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port), "--raw", "SCAN", cursor}, opts...)...).Output()
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			cursor = lines[0]
			for _, k := range lines[1:] {
				if k != "" {
					keys = append(keys, k)
				}
			}
			if cursor == "0" {
				break
			}
		}
		sort.Strings(keys)
		return strings.Join(slices.Compact(keys), "\n")
	}
	for _, opts := range [][]string{{"MATCH", "scan:s:1*", "COUNT", "5"}, {"TYPE", "hash", "COUNT", "50"}} {
		if w, g := scanAll(real, opts...), scanAll(ha, opts...); w != g || w == "" {
			t.Errorf("SCAN %v: redis-server %q, hanode %q", opts, w, g)
		}
	}
	if w, g := sorted(rcli(t, real, "--raw", "KEYS", "scan:*:2*")), sorted(rcli(t, ha, "--raw", "KEYS", "scan:*:2*")); w != g || !strings.Contains(w, "scan:h:201") {
		t.Errorf("KEYS differ:\n%s", diffLines(w, g))
	}
	if w, g := rcli(t, real, "DBSIZE"), rcli(t, ha, "DBSIZE"); w != g || w != "(integer) 300" {
		t.Errorf("DBSIZE: redis-server %s, hanode %s", w, g)
	}
	// What only hanode answers differently, by design or by version.
	for _, c := range []struct {
		args []string
		want string // prefix
	}{
		{[]string{"SELECT", "1"}, "(error) ERR hanode serves database 0 only"},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "x"}, "OK"},
		{[]string{"CLIENT", "ID"}, "(integer) "},
		{[]string{"COMMAND", "COUNT"}, "(integer) "},
		{[]string{"COMMAND", "DOCS", "GET"}, "(empty array)"},
		{[]string{"INFO"}, "# Server"},
		{[]string{"HELLO", "3"}, "1# \"server\" => \"redis\""},
	} {
		if got := rcli(t, ha, c.args...); !strings.HasPrefix(got, c.want) {
			t.Errorf("%v: %q, want %q...", c.args, got, c.want)
		}
	}
	if got := rcli(t, ha, "INFO"); !strings.Contains(got, "redis_version:") {
		t.Errorf("INFO without redis_version: %s", got)
	}
}

func TestRESPAuthCompatibility(t *testing.T) {
	const pw = "s3cret-pw"
	real := startRedisServer(t, "--requirepass", pw)
	pwFile := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ha := startHanodeRedis(t, "--redis-password-file", pwFile)
	want, got := cliScript(t, real, "auth.redis"), cliScript(t, ha, "auth.redis")
	if got != want || !strings.Contains(want, "NOAUTH") || !strings.Contains(want, "WRONGPASS") {
		t.Errorf("AUTH replies differ from redis-server's:\n%s\nredis-server:\n%s", diffLines(want, got), want)
	}
}

// A non-loopback --redis-listen without a password is refused at start.
func TestRESPListenNeedsPassword(t *testing.T) {
	bin := hanodeBinary(t)
	cmd := exec.Command(bin, "run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--redis-listen", "0.0.0.0:6379")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "redis-listen 0.0.0.0:6379 (--redis-listen) is reachable from other hosts and no password is set") {
		t.Fatalf("started, or unclear error: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "config", "check")
	cmd.Env = append(cleanEnv(), "HANODE_REDIS_LISTEN=10.1.2.3:6379")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HANODE_REDIS_LISTEN") {
		t.Fatalf("config check: %v\n%s", err, out)
	}
}
