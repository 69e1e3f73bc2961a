package main

// Real Redis clients of other languages against hanode's Redis protocol:
// redis-py (python3-redis), an express-session app with connect-redis and
// node-redis (npm, installed by .ci/run into testdata/redis/node). The
// Go client (go-redis) is checked in replicator/resp/goredistest.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const clientTestPassword = "client-test-pw"

func TestRESPClientPython(t *testing.T) {
	py := "/usr/bin/python3" // Debian's, where python3-redis is installed
	if _, err := os.Stat(py); err != nil {
		py = "python3"
	}
	needTool(t, py)
	port := startHanodeRedis(t, "--redis-password", clientTestPassword)
	out, err := exec.Command(py, filepath.Join("testdata", "redis", "python", "client.py"), strconv.Itoa(port), clientTestPassword).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "python ok") {
		t.Fatalf("python client: %v\n%s", err, out)
	}
}

func TestRESPClientNode(t *testing.T) {
	needTool(t, "node")
	dir := filepath.Join("testdata", "redis", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "connect-redis")); err != nil {
		t.Fatalf("%s/node_modules missing: run `npm ci` there (.ci/run does)", dir)
	}
	port := startHanodeRedis(t, "--redis-password", clientTestPassword)
	httpPort := freePort(t)
	startProc(t, "node", filepath.Join(dir, "app.js"), strconv.Itoa(port), clientTestPassword, strconv.Itoa(httpPort))
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	get := func(path string) (int, map[string]any) {
		resp, err := c.Get(base + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	eventually(t, 30*time.Second, "the node app listening (its redis client checks passed)", func() (bool, string) {
		code, _ := get("/")
		return code == 200, strconv.Itoa(code)
	})
	var id string
	for n := 2; n <= 4; n++ {
		code, m := get("/")
		if code != 200 || m["n"] != float64(n) {
			t.Fatalf("request %d: %d %v", n, code, m)
		}
		id, _ = m["id"].(string)
	}
	key := "sess:" + id
	if got := rcliAuth(t, port, "EXISTS", key); got != "1" {
		t.Fatalf("session key %s not in hanode: %s", key, got)
	}
	if ttl, _ := strconv.Atoi(rcliAuth(t, port, "TTL", key)); ttl < 500 || ttl > 600 {
		t.Fatalf("session TTL %d, want about 600 s (cookie maxAge)", ttl)
	}
	if !strings.Contains(rcliAuth(t, port, "GET", key), `"n":4`) {
		t.Fatalf("session value: %s", rcliAuth(t, port, "GET", key))
	}
	if code, _ := get("/logout"); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if got := rcliAuth(t, port, "EXISTS", key); got != "0" {
		t.Fatalf("session key after destroy: %s", got)
	}
}

// rcliAuth runs one redis-cli command with the client-test password and
// returns its raw output.
func rcliAuth(t *testing.T, port int, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port), "--no-auth-warning", "-a", clientTestPassword, "--raw"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
