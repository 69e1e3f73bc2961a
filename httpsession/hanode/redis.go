package hanode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
	"github.com/hanode/hanode/replicator/redisstore"
)

// Store names of the store setting.
const (
	StoreReplica = "replica" // in-process replica: local with HA off, replicated over the LAN with HA on
	StoreRedis   = "redis"   // Redis or Redis Cluster (store-addrs), whatever ha says
)

// redisBackend adapts the Redis store to backend: its readiness is the
// store's reachability, its only member is this node (the other nodes
// share the sessions through Redis, not through membership).
type redisBackend struct {
	*redisstore.Store
	started  time.Time
	draining atomic.Bool
}

var _ backend = (*redisBackend)(nil)

// openRedisStore connects to the store-addrs. Multicast settings are not
// used; when set they are named in an info line. A snapshot file of the
// replica store (snapshot, opened with key-file) is imported once.
func openRedisStore(cfg *Config, log *slog.Logger) (*redisBackend, error) {
	var ignored []string
	for _, name := range []string{"ha", "group", "interface", "key-file", "ttl", "loopback", "snapshot", "snapshot-interval", "cluster"} {
		if cfg.Snapshot != "" && (name == "snapshot" || name == "key-file" || name == "cluster") {
			continue // used by the import
		}
		if src, _ := cfg.Source(name); src != sourceDefault {
			ignored = append(ignored, name)
		}
	}
	if len(ignored) > 0 {
		log.Info("store = redis: sessions are shared through Redis; these settings are ignored", "ignored", strings.Join(ignored, ","))
	}
	password := cfg.StorePassword
	if cfg.StorePasswordFile != "" {
		b, err := os.ReadFile(cfg.StorePasswordFile)
		if err != nil {
			_, where := cfg.Source("store-password-file")
			return nil, fmt.Errorf("%w: store-password-file (%s): %v", ErrConfig, where, err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	var tlsCfg *tls.Config
	if cfg.StoreTLS {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s, err := redisstore.New(redisstore.Config{
		Node:        cfg.NodeName(),
		Addrs:       cfg.StoreAddrs,
		Password:    password,
		TLS:         tlsCfg,
		SyncTimeout: cfg.SyncTimeout,
		// sync and sync-all cannot succeed while a master has no
		// replica: then the node is not ready, with the reason.
		RequireReplica: cfg.Consistency != replicator.Async,
		Logger:         log.With("subsystem", "redisstore"),
	})
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	if cfg.Snapshot != "" {
		if err := importSnapshot(cfg, s, log); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return &redisBackend{Store: s, started: time.Now()}, nil
}

// importSnapshot moves the sessions of a replica snapshot file (what a
// node on store = replica saved at its last shutdown) into Redis, so that
// users stay logged in across the switch to store = redis. Sessions whose
// ID Redis already holds are skipped (Redis wins), expired ones too. The
// file is then renamed to <snapshot>.imported, so it is imported once: a
// later start must not bring back sessions that ended in Redis since.
func importSnapshot(cfg *Config, st *redisstore.Store, log *slog.Logger) error {
	if _, err := os.Lstat(cfg.Snapshot); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if cfg.KeyFile == "" {
		log.Warn("store = redis: snapshot is set but key-file is not: the snapshot's sessions cannot be opened and are not imported", "snapshot", cfg.Snapshot)
		return nil
	}
	keys, err := multicast.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		_, where := cfg.Source("key-file")
		return fmt.Errorf("%w: key-file (%s): %v", ErrConfig, where, err)
	}
	r := replicator.NewReplica(replicator.DefaultReplicaConfig())
	if _, err := replicator.LoadFile(cfg.Snapshot, r, cfg.Cluster, multicast.SnapshotSealer{Keyring: keys}); err != nil {
		return fmt.Errorf("import the snapshot %s into Redis (remove it to start without its sessions): %w", cfg.Snapshot, err)
	}
	var live []*replicator.Session
	r.Range(func(ss *replicator.Session) bool {
		if !ss.Destroyed {
			live = append(live, ss)
		}
		return true
	})
	n := 0
	for _, ss := range live {
		ok, err := st.Import(context.Background(), ss)
		if err != nil {
			return fmt.Errorf("import the snapshot %s into Redis: %w", cfg.Snapshot, err)
		}
		if ok {
			n++
		}
	}
	done := cfg.Snapshot + ".imported"
	if err := os.Rename(cfg.Snapshot, done); err != nil {
		return fmt.Errorf("import the snapshot %s into Redis: %w", cfg.Snapshot, err)
	}
	log.Info("store = redis: the replica snapshot's sessions were imported into Redis", "snapshot", cfg.Snapshot,
		"imported", n, "skipped", len(live)-n, "renamed_to", done)
	return nil
}

func (r *redisBackend) Ready() bool { return r.Store.Ready() && !r.draining.Load() }
func (r *redisBackend) Drain()      { r.draining.Store(true) }

func (r *redisBackend) Members() []cluster.MemberInfo {
	return []cluster.MemberInfo{{
		ID: r.Node(), Name: r.Node(), Addr: "redis", State: "alive",
		Self: true, Ready: r.Ready(), Started: r.started, LastSeen: time.Now(),
	}}
}

func (r *redisBackend) Status() cluster.Status {
	phase, reason := "ready", ""
	switch {
	case r.draining.Load():
		phase = "draining"
	case !r.Store.Ready():
		phase = "store-unavailable"
		reason = "session store: " + fmt.Sprint(r.Store.Err())
	}
	return cluster.Status{
		Node: r.Node(), ID: r.Node(), Ready: r.Ready(), Draining: r.draining.Load(),
		Sessions: r.Len(), Members: 1, ViewID: "redis", Phase: phase, NotReadyReason: reason,
	}
}
