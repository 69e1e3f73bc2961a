package httpsession

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Sessions that the store's timers expire, without any request seeing
// them, are reported as destroyed(expired) events and counted; Iterate
// works over the local store.
func TestStoreExpiryEventsAndIterate(t *testing.T) {
	store := replicator.NewLocal("n1", replicator.ReplicaConfig{})
	var mu sync.Mutex
	var got []Event
	cfg := DefaultConfig()
	cfg.IdleTimeout = time.Minute
	cfg.OnEvent = func(e Event) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}
	m, err := New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Put(r.Context(), "k", "v"); err != nil {
			t.Error(err)
		}
	}))
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	n := 0
	if err := m.Iterate(context.Background(), func(ctx context.Context) error {
		if m.GetString(ctx, "k") != "v" {
			t.Errorf("iterated session lacks k")
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("Iterate saw %d sessions, want 3", n)
	}

	expired := store.ExpireNow(time.Now().Add(2 * time.Minute).UnixNano())
	if len(expired) != 3 {
		t.Fatalf("store expired %d sessions, want 3", len(expired))
	}
	mu.Lock()
	defer mu.Unlock()
	var destroyed int
	for _, e := range got {
		if e.Kind == EventDestroyed && e.Reason == replicator.ReasonExpired {
			destroyed++
		}
	}
	if destroyed != 3 || m.Stats().Expired != 3 {
		t.Fatalf("expiry events = %d, Stats().Expired = %d, want 3 and 3 (events %+v)", destroyed, m.Stats().Expired, got)
	}
}
