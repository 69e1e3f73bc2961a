package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/scripts/netlab"
)

// phpApp runs testdata/redis/php/index.php with PHP's built-in server on
// host h, its sessions in the hanode of that host (phpredis's session
// handler pointed at 127.0.0.1:6379, the host's own loopback).
func phpApp(t *testing.T, h *netlab.Host) string {
	t.Helper()
	needTool(t, "php")
	dir, err := filepath.Abs(filepath.Join("testdata", "redis", "php"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command("php",
		"-d", "session.save_handler=redis",
		"-d", "session.save_path=tcp://127.0.0.1:6379",
		"-d", "session.gc_maxlifetime=600",
		"-S", h.Addr(8000), "-t", dir)
	cmd.Env = cleanEnv()
	h.StartCmd(cmd)
	return "http://" + h.Addr(8000) + "/index.php"
}

// phpGet sends a request with the session cookie (when set) and returns
// the body's fields: session ID, counter, user.
func phpGet(t *testing.T, url, cookie string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "PHPSESSID", Value: cookie})
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f := strings.Fields(string(b))
	if resp.StatusCode != 200 || len(f) != 3 {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, b)
	}
	return f
}

// TestRESPFailoverPHP: a PHP app next to hanode on two hosts keeps its
// sessions in the local hanode over the Redis protocol. A session made
// through host 1 goes on through host 2 after host 1's hanode is killed
// with SIGKILL.
func TestRESPFailoverPHP(t *testing.T) {
	needTool(t, "php", "redis-cli")
	lab := netlab.New(t, "redisfo")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	h1, h2 := lab.AddHost("h1"), lab.AddHost("h2")
	redisArgs := []string{"--ha", "--interface", "eth0", "--key-file", key, "--redis-listen", "127.0.0.1:6379", "--consistency", "sync"}
	n1 := startNode(t, bin, h1, "h1", redisArgs...)
	n2 := startNode(t, bin, h2, "h2", redisArgs...)
	waitReady(t, 60*time.Second, n1, n2)
	eventually(t, 30*time.Second, "h1 sees h2", func() (bool, string) {
		_, body, err := n1.adminGet("/members")
		return err == nil && strings.Count(string(body), `"alive"`) == 2, string(body)
	})
	app1, app2 := phpApp(t, h1), phpApp(t, h2)
	for _, u := range []string{app1, app2} {
		eventually(t, 20*time.Second, "php up at "+u, func() (bool, string) {
			resp, err := httpClient.Get(u)
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	}

	// Sessions through host 1: counter to 3, a user name set.
	type user struct{ id, name string }
	var users []user
	for i := 0; i < 20; i++ {
		f := phpGet(t, app1+"?user=u"+fmt.Sprint(i), "")
		id := f[0]
		for k := 2; k <= 3; k++ {
			if g := phpGet(t, app1, id); g[0] != id || g[1] != fmt.Sprint(k) {
				t.Fatalf("session %d on h1: %v", i, g)
			}
		}
		users = append(users, user{id, "u" + fmt.Sprint(i)})
	}
	// With --consistency sync every +OK was acknowledged by h2: the data
	// is there before the kill, with nothing to wait for.
	args := []string{"-p", "6379", "--raw", "EXISTS"}
	for _, u := range users {
		args = append(args, "PHPREDIS_SESSION:"+u.id)
	}
	out, err := h2.Run("redis-cli", args...)
	if err != nil || strings.TrimSpace(out) != "20" {
		t.Fatalf("h2 holds %q of the 20 sessions (%v)", out, err)
	}

	// The admin listing shows the key records by hash, like sessions.
	_, body, err := n2.adminGet("/sessions")
	if err != nil || !strings.Contains(string(body), replicator.ShortHash(replicator.KeyPrefix+"PHPREDIS_SESSION:"+users[0].id)) {
		t.Fatalf("h2's /sessions lacks the key record of session 0 (%v): %.300s", err, body)
	}

	n1.proc.Kill() // SIGKILL

	for i, u := range users {
		f := phpGet(t, app2, u.id)
		if f[0] != u.id || f[1] != "4" || f[2] != u.name {
			t.Errorf("session %d through h2 after h1's hanode died: %v, want %s 4 %s", i, f, u.id, u.name)
		}
	}
	// The TTL that phpredis set (session.gc_maxlifetime) came along.
	ttl, err := h2.Run("redis-cli", "-p", "6379", "--raw", "TTL", "PHPREDIS_SESSION:"+users[0].id)
	if err != nil || strings.TrimSpace(ttl) == "-1" || strings.TrimSpace(ttl) == "-2" {
		t.Errorf("TTL on h2: %q %v", ttl, err)
	}
	if out, err := exec.Command("php", "-m").Output(); err != nil || !strings.Contains(string(out), "redis") {
		t.Errorf("php-redis not loaded: %v", err)
	}

	// h1's hanode restarts: from the moment it listens, until its state
	// transfer is done, it answers LOADING, never "no such key" (a PHP
	// session handler would start an empty session and overwrite the
	// user's); then it holds the session.
	n1 = startNode(t, bin, h1, "h1", redisArgs...)
	key0 := "PHPREDIS_SESSION:" + users[0].id
	var loading, refused int
	eventually(t, 60*time.Second, "restarted h1 holds session 0", func() (bool, string) {
		if n1.proc.Exited() {
			t.Fatalf("h1 exited: %s", n1.proc.Logs())
		}
		out, _ := h1.Run("redis-cli", "-p", "6379", "EXISTS", key0)
		out = strings.TrimSpace(out)
		switch {
		case strings.Contains(out, "LOADING"):
			loading++
		case out == "1":
			return true, out
		case strings.Contains(out, "onnect"): // not listening yet
			refused++
		default:
			t.Fatalf("restarted h1 answered EXISTS %s with %q before it held it (%d LOADING before)", key0, out, loading)
		}
		return false, out
	})
	waitReady(t, 30*time.Second, n1)
	t.Logf("restarted h1: %d EXISTS refused to connect, %d answered LOADING, then 1", refused, loading)
}
