package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeAdmin answers GET /status with the given statuses in turn (the last
// one repeatedly) and counts POST /drain.
func fakeAdmin(t *testing.T, steps []nodeStatus) (addr string, drains *int) {
	t.Helper()
	var mu sync.Mutex
	i, n := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/drain":
			n++
			w.Write([]byte("draining\n"))
		case r.URL.Path == "/status":
			st := steps[min(i, len(steps)-1)]
			i++
			json.NewEncoder(w).Encode(st)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &n
}

func TestStatusWaitShowsTransferProgress(t *testing.T) {
	t.Setenv("HANODE_ADMIN", "")
	addr, _ := fakeAdmin(t, []nodeStatus{
		{Node: "n2", Phase: "joining"},
		{Node: "n2", Phase: "transferring", TransferTotal: 200},
		{Node: "n2", Phase: "transferring", TransferReceived: 100, TransferTotal: 200},
		{Node: "n2", Phase: "ready", Ready: true, Sessions: 200},
	})
	var out, errb strings.Builder
	if code := runMain([]string{"hanode", "status", "--wait", "--poll", "1ms", "--admin", addr}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"n2: joining", "0/200 (0%)", "100/200 (50%)", "ready, holding 200 sessions"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDrainWaitFollowsUntilDrained(t *testing.T) {
	t.Setenv("HANODE_ADMIN", "")
	addr, drains := fakeAdmin(t, []nodeStatus{
		{Node: "n1", Phase: "draining", InFlight: 2, PendingDeltas: 5},
		{Node: "n1", Phase: "draining", InFlight: 0, PendingDeltas: 1},
		{Node: "n1", Phase: "draining"},
	})
	var out, errb strings.Builder
	if code := runMain([]string{"hanode", "drain", "--wait", "--poll", "1ms", "--admin", addr}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if *drains != 1 {
		t.Fatalf("POST /drain sent %d times", *drains)
	}
	for _, want := range []string{"2 requests in flight, 5 deltas pending", "0 requests in flight, 1 deltas pending", "drained"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A node that never finishes: the wait gives up with an error.
	addr, _ = fakeAdmin(t, []nodeStatus{{Node: "n1", Phase: "draining", InFlight: 1}})
	out.Reset()
	errb.Reset()
	if code := runMain([]string{"hanode", "drain", "--wait", "--poll", "1ms", "--timeout", "20ms", "--admin", addr}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "gave up") {
		t.Fatalf("exit %d, stderr %q: want a give-up error", code, errb.String())
	}
}
