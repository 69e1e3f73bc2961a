package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Stopping every node at once (maintenance) keeps the sessions when each
// writes a snapshot on its graceful stop and loads it at start.
func TestMassRestartKeepsSessionsWithSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 21)
		dir := t.TempDir()
		snap := func(name string) func(*Config) {
			return func(c *Config) { c.SnapshotFile = filepath.Join(dir, name+".snap") }
		}
		names := []string{"n1", "n2", "n3"}
		var nodes []*Node
		for _, name := range names {
			nodes = append(nodes, l.start(name, snap(name)))
		}
		waitReady(t, nodes...)
		want := map[string]map[string]string{}
		for i := range 300 {
			id := fmt.Sprintf("mass%06dxxxxxxxxxxxxxxxx", i)
			v := fmt.Sprint(i)
			put(t, nodes[i%3], id, "v", v, replicator.Async)
			want[id] = map[string]string{"v": v}
		}
		eventually(t, 10*time.Second, "replicated", func() error { return sameState(nodes, want) })
		for _, n := range nodes {
			if err := n.Close(); err != nil {
				t.Fatalf("close %s: %v", n.Node(), err)
			}
		}
		// Everybody is gone: a new generation starts from the snapshots.
		l.net = newMemLab(t, 22).net
		var again []*Node
		for _, name := range names {
			again = append(again, l.start(name, snap(name)))
		}
		waitReady(t, again...)
		if err := sameState(again, want); err != nil {
			t.Fatal(err)
		}
	})
}

func TestForeignOrCorruptSnapshotIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, 23)
		dir := t.TempDir()
		file := filepath.Join(dir, "n1.snap")
		n := l.start("n1", func(c *Config) { c.SnapshotFile = file; c.ClusterName = "other" })
		waitReady(t, n)
		put(t, n, "foreignsessionxxxxxxxxxxxx", "k", "v", replicator.Async)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}

		cfg := testConfig("n1", l.kr)
		cfg.SnapshotFile = file
		if _, err := newNode(cfg); err == nil || !errors.Is(err, replicator.ErrForeignSnapshot) || !strings.Contains(err.Error(), file) {
			t.Fatalf("foreign snapshot: err = %v, want a refusal naming the file", err)
		}

		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x40
		bad := filepath.Join(dir, "corrupt.snap")
		if err := os.WriteFile(bad, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.ClusterName = "other"
		cfg.SnapshotFile = bad
		if _, err := newNode(cfg); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("corrupt snapshot: err = %v, want a refusal", err)
		}

		// A missing file is a first start, not an error.
		cfg.SnapshotFile = filepath.Join(dir, "absent.snap")
		if _, err := newNode(cfg); err != nil {
			t.Fatalf("missing snapshot: %v", err)
		}
	})
}
