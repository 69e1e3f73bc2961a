package cluster

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/replicator"
)

// A cluster on the in-memory multicast network with state transfer over
// in-memory streams runs in a synctest bubble: virtual time, no sockets,
// deterministic scheduling of timers. Two nodes replicate a commit, and a
// third joins by state transfer and holds it.
func TestSynctestJoinAndReplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 11)
		n1 := l.start("n1", nil)
		n2 := l.start("n2", nil)
		waitReady(t, n1, n2)
		const id = "synctestsessionaaaaaaaaaaaaaaaaa"
		put(t, n1, id, "k", "v1", replicator.Async)
		eventually(t, 5*time.Second, "n2 has the commit", func() error {
			if v, ok := attr(n2, id, "k"); !ok || v != "v1" {
				return fmt.Errorf("n2: %q %v", v, ok)
			}
			return nil
		})
		n3 := l.start("n3", nil)
		waitReady(t, n3)
		if v, ok := attr(n3, id, "k"); !ok || v != "v1" {
			t.Fatalf("n3 after its state transfer: %q %v", v, ok)
		}
		if st := n3.Status(); st.TransferReceived < 1 {
			t.Fatalf("n3 received no record by state transfer: %+v", st)
		}
	})
}

// advance lets the virtual time of the synctest bubble that calls it run
// on by d; the nodes' timers fire meanwhile. Only for use inside
// synctest.Test, where it takes no real time: a test that steps through
// time (rather than waiting for a condition with eventually) uses it.
func advance(d time.Duration) { <-time.After(d) }
