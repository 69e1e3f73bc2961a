package httpsession

import (
	"testing"

	"github.com/hanode/hanode/replicator"
)

// TestWithLocalStore runs the core flows against the real local store.
func TestWithLocalStore(t *testing.T) {
	st := replicator.NewLocal("n1", replicator.DefaultReplicaConfig())
	n := startApp(t, st, nil)
	c := newClient(t)
	c.get(n, "/?op=put&k=cart&v=3")
	c.get(n, "/?op=putint&k=n&v=7")
	old := c.token(n)
	if _, body := c.get(n, "/?op=get&k=cart"); body != "3" {
		t.Fatalf("get %q", body)
	}
	c.get(n, "/?op=login&v=alice")
	nw := c.token(n)
	if nw == old || st.Get(idOf(t, old)) != nil {
		t.Fatal("renew")
	}
	if _, body := c.get(n, "/?op=getint&k=n"); body != "7" {
		t.Fatalf("after renew %q", body)
	}
	if ids := st.SessionsOf("alice"); len(ids) != 1 || ids[0] != idOf(t, nw) {
		t.Fatalf("principal index %v", ids)
	}
	c.get(n, "/?op=remove&k=cart")
	if _, body := c.get(n, "/?op=keys"); body != "n" {
		t.Fatalf("keys %q", body)
	}
	c.get(n, "/?op=destroy")
	if st.Len() != 0 || c.token(n) != "" {
		t.Fatal("destroy")
	}
}
