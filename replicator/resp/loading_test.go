package resp

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
)

// Until Config.Ready first returns true (a cluster node still joining),
// every command that reads or writes keys is answered LOADING, queued
// ones included (the transaction is then discarded), while connection
// commands are served. Once ready, commands run as usual, and the engine
// does not ask again.
func TestLoadingRefusesKeyCommandsUntilReady(t *testing.T) {
	var ready atomic.Bool
	var asked atomic.Int64
	h := newHarness(t, Config{Ready: func() bool { asked.Add(1); return ready.Load() }})
	c := h.e.NewClient("test")
	const loading = "!LOADING hanode is loading the cluster's sessions"
	runSteps(t, h, c, []step{
		{"PING", "PONG"},
		{"ECHO hi", `"hi"`},
		{"HELLO 2", `[` + strings.Join([]string{`"server"`, `"redis"`, `"version"`, `"` + Version + `"`, `"proto"`, ":2", `"id"`, ":1", `"mode"`, `"standalone"`, `"role"`, `"master"`, `"modules"`, "[]"}, " ") + `]`},
		{"AUTH default x", "OK"},
		{"SELECT 0", "OK"},
		{"CLIENT SETNAME php", "OK"},
		{"GET k", loading},
		{"SET k v", loading},
		{"HGETALL k", loading},
		{"HSET k f v", loading},
		{"EXISTS k", loading},
		{"DEL k", loading},
		{"EXPIRE k 10", loading},
		{"MGET k", loading},
		{"SCAN 0", loading},
		{"KEYS *", loading},
		{"DBSIZE", loading},
		{"MULTI", "OK"},
		{"GET k", loading},
		{"EXEC", "!EXECABORT Transaction discarded because of previous errors."},
		{"NOSUCHCOMMAND", "!ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "},
		{"GET", "!ERR wrong number of arguments for 'get' command"},
	})
	if n := h.store.Len(); n != 0 {
		t.Errorf("the store holds %d records after writes refused while loading", n)
	}
	if got := h.do(c, "INFO"); !strings.Contains(got, `loading:1`) {
		t.Errorf("INFO while loading: %s, want loading:1", got)
	}
	var m bytes.Buffer
	h.e.WriteMetrics(&m)
	if !strings.Contains(m.String(), "\nhanode_redis_loading_refused_total 12\n") {
		t.Errorf("metrics while loading:\n%s", m.String())
	}

	ready.Store(true)
	runSteps(t, h, c, []step{
		{"GET k", "nil"},
		{"SET k v", "OK"},
		{"GET k", `"v"`},
		{"EXISTS k", ":1"},
		{"MULTI", "OK"},
		{"GET k", "QUEUED"},
		{"EXEC", `["v"]`},
		{"DBSIZE", ":1"},
	})
	if got := h.do(c, "INFO"); !strings.Contains(got, `loading:0`) {
		t.Errorf("INFO once ready: %s, want loading:0", got)
	}
	n := asked.Load()
	ready.Store(false) // Ready is asked until it is first true, not after
	if got := h.do(c, "GET k"); got != `"v"` || asked.Load() != n {
		t.Errorf("GET after Ready turned false again: %s (Ready asked %d more times), want \"v\" without asking", got, asked.Load()-n)
	}
}

// COMMAND reports the commands served while loading with the "loading"
// flag, as Redis does.
func TestLoadingFlagInCommandInfo(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.e.NewClient("test")
	for cmd, want := range map[string]bool{"select": true, "info": true, "ping": true, "get": false, "scan": false} {
		got := h.do(c, "COMMAND INFO "+cmd)
		if strings.Contains(got, "loading]") != want {
			t.Errorf("COMMAND INFO %s = %s, loading flag want %v", cmd, got, want)
		}
	}
	if h.e.Loading() {
		t.Error("an engine without Config.Ready is loading")
	}
}
