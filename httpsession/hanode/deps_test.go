package hanode

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection: the httpsession core stays free of sockets and
// of the cluster runtime; only this runtime sub-package brings them.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hanode/hanode/httpsession").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/hanode/hanode/httpsession/hanode", "github.com/hanode/hanode/replicator/cluster",
			"github.com/hanode/hanode/multicast", "github.com/pelletier/go-toml/v2":
			t.Errorf("httpsession depends on %s", dep)
		}
	}
}
