package cluster

// Snapshots of the replica: loaded at start, saved periodically and at
// Close.

import (
	"errors"
	"fmt"
	"os"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

func (n *Node) loadSnapshot() error {
	cnt, err := replicator.LoadFile(n.cfg.SnapshotFile, n.replica, n.cfg.ClusterName, multicast.SnapshotSealer{Keyring: n.cfg.Keyring})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: snapshot %s refused: %w", n.cfg.SnapshotFile, err)
	}
	n.log.Info("snapshot loaded", "file", n.cfg.SnapshotFile, "sessions", cnt)
	return nil
}

// snapshotLoop saves the snapshot periodically once the node is ready
// (before that, the replica may not hold the cluster's sessions yet and
// would overwrite a better snapshot).
func (n *Node) snapshotLoop() {
	for n.sleep(n.cfg.SnapshotInterval) {
		if !n.ready.Load() {
			continue
		}
		if err := n.saveSnapshot(); err != nil {
			n.log.Error("periodic snapshot failed", "err", err)
		}
	}
}

func (n *Node) saveSnapshot() error {
	if _, err := replicator.SaveFile(n.cfg.SnapshotFile, n.replica, n.cfg.ClusterName, multicast.SnapshotSealer{Keyring: n.cfg.Keyring}); err != nil {
		return fmt.Errorf("cluster: write snapshot: %w", err)
	}
	n.log.Info("snapshot written", "file", n.cfg.SnapshotFile, "sessions", n.replica.Len())
	return nil
}
