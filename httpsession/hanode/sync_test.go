package hanode

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// failingBackend is a local backend whose commits fail with err (when set)
// and whose readiness and status the test sets.
type failingBackend struct {
	*localBackend
	err      atomic.Pointer[error]
	notReady atomic.Pointer[string] // reason; nil: ready
}

func (f *failingBackend) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	if p := f.err.Load(); p != nil {
		return replicator.CommitResult{TimedOut: true}, *p
	}
	return f.localBackend.Commit(ctx, d, c)
}

func (f *failingBackend) Ready() bool { return f.notReady.Load() == nil && f.localBackend.Ready() }

func (f *failingBackend) Status() cluster.Status {
	st := f.localBackend.Status()
	st.Replication = "ok"
	if p := f.notReady.Load(); p != nil {
		st.Ready, st.Replication, st.NotReadyReason = false, "failing", *p
	}
	return st
}

func newFailingBackend(t *testing.T) *failingBackend {
	f := &failingBackend{localBackend: newLocalBackend("n1")}
	t.Cleanup(func() { f.Close() })
	return f
}

// /readyz answers 503 with the store's reason; /status names it.
func TestReadyzShowsReplicationReason(t *testing.T) {
	store := newFailingBackend(t)
	var draining atomic.Bool
	cfg := &Config{HA: true, Consistency: replicator.Sync, Admin: "127.0.0.1:0"}
	adm := &admin{cfg: cfg, store: store, log: slog.New(slog.DiscardHandler), draining: &draining}
	srv := httptest.NewServer(adm.handler())
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("ready: %d %s", code, body)
	}
	reason := "sync commits not acknowledged by the peers since ..."
	store.notReady.Store(&reason)
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, reason) {
		t.Fatalf("/readyz: %d %q, want 503 with the reason", code, body)
	}
	_, body = get("/status")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st["ready"] != false || st["replication"] != "failing" || st["not_ready_reason"] != reason ||
		st["consistency"] != "sync" || st["lone_survivor"] != "refuse" {
		t.Fatalf("/status: %s", body)
	}
	store.notReady.Store(nil)
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("ready again: %d %s", code, body)
	}
}

// lone-survivor is a setting like every other: flag > HANODE_LONE_SURVIVOR
// > config file > default refuse; a bad value names its source.
func TestLoneSurvivorSetting(t *testing.T) {
	cfg, err := loadConfig(nil, env(nil), "")
	if err != nil || cfg.LoneSurvivor != cluster.LoneRefuse {
		t.Fatalf("default: %v %v", cfg.LoneSurvivor, err)
	}
	file := writeFile(t, "hanode.toml", "lone-survivor = \"accept\"\n", 0o644)
	cfg, err = loadConfig(nil, env(nil), file)
	if err != nil || cfg.LoneSurvivor != cluster.LoneAccept {
		t.Fatalf("file: %v %v", cfg.LoneSurvivor, err)
	}
	cfg, err = loadConfig(nil, env(map[string]string{"HANODE_LONE_SURVIVOR": "refuse"}), file)
	if err != nil || cfg.LoneSurvivor != cluster.LoneRefuse {
		t.Fatalf("env over file: %v %v", cfg.LoneSurvivor, err)
	}
	cfg, err = loadConfig(flagSource{"lone-survivor": "accept"}, env(map[string]string{"HANODE_LONE_SURVIVOR": "refuse"}), "")
	if err != nil || cfg.LoneSurvivor != cluster.LoneAccept {
		t.Fatalf("flag over env: %v %v", cfg.LoneSurvivor, err)
	}
	if src, where := cfg.Source("lone-survivor"); src != sourceFlag || where != "--lone-survivor" {
		t.Fatalf("source %s %s", src, where)
	}
	_, err = loadConfig(nil, env(map[string]string{"HANODE_LONE_SURVIVOR": "maybe"}), "")
	if err == nil || !strings.Contains(err.Error(), "HANODE_LONE_SURVIVOR") || !strings.Contains(err.Error(), "refuse, accept") {
		t.Fatalf("bad value: %v", err)
	}
}
