package httpsession

import (
	"testing"

	"github.com/hanode/hanode/replicator"
)

// The Manager's event kinds extend the store's: the shared ones keep the
// store's values and names.
func TestEventKinds(t *testing.T) {
	if EventCreated.String() != replicator.EventCreated.String() || EventDestroyed.String() != replicator.EventDestroyed.String() {
		t.Fatal("created/destroyed differ from the store's")
	}
	seen := map[string]bool{}
	for _, k := range []EventKind{EventCreated, EventDestroyed, EventRenewed, EventTakenOver} {
		if s := k.String(); s == "unknown" || seen[s] {
			t.Errorf("kind %d: %q", k, s)
		} else {
			seen[s] = true
		}
	}
	if EventKind(0).String() != "unknown" {
		t.Error("kind 0 has a name")
	}
}
