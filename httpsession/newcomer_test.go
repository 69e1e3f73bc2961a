package httpsession

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/replicator"
)

// TestQuickStartExpiresSessions follows the README's quick start
// (replicator.NewLocal, then New, nothing else): sessions with a 1 s idle
// timeout are gone 2 s later, reported as expired, without anyone calling
// Run.
func TestQuickStartExpiresSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := replicator.NewLocal("local", replicator.ReplicaConfig{})
		defer store.Close()
		var expired int
		mgr, err := New(store, Config{
			IdleTimeout: time.Second,
			Logger:      slog.New(slog.DiscardHandler),
			OnEvent: func(e Event) {
				if e.Kind == EventDestroyed && e.Reason == replicator.ReasonExpired {
					expired++
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		h := mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := mgr.GetInt(r.Context(), "n") + 1
			if err := mgr.Put(r.Context(), "n", n); err != nil {
				t.Error(err)
			}
			fmt.Fprintln(w, n)
		}))
		for range 100 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/counter", nil))
		}
		if store.Len() != 100 {
			t.Fatalf("%d sessions, want 100", store.Len())
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := store.Len(); n != 0 {
			t.Fatalf("%d sessions still held 2 s after a 1 s idle timeout", n)
		}
		if expired != 100 || mgr.Stats().Expired != 100 {
			t.Fatalf("expired events %d, Stats.Expired %d, want 100", expired, mgr.Stats().Expired)
		}
	})
}
