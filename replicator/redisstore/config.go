package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Store. The zero value of every field but Node and
// Addrs is replaced by its documented default.
type Config struct {
	// Node is this node's name, the route suffix of the tokens it issues.
	// Required.
	Node string
	// Addrs are host:port addresses: one is a standalone Redis (or any
	// node of a cluster), several are the seed nodes of a Redis Cluster.
	// Required.
	Addrs []string
	// Username and Password authenticate (AUTH). Default: none.
	Username string
	Password string
	// TLS, when not nil, connects over TLS with this configuration.
	// Default: plain TCP.
	TLS *tls.Config
	// Prefix starts every key the store writes, so several applications
	// can share one Redis. Default "hanode:".
	Prefix string
	// Timeout bounds one operation (a Get that misses the near cache, a
	// commit, the start-up connection). Default 2 s.
	Timeout time.Duration
	// SyncTimeout bounds the WAIT of a Sync or SyncAll commit for Redis
	// replicas to acknowledge the write. Default 100 ms.
	SyncTimeout time.Duration
	// SyncAllReplicas is how many replicas a SyncAll commit waits for.
	// Default 0: the fewest online replicas any master had at the last
	// health check (at least 1).
	SyncAllReplicas int
	// RequireReplica makes the store not ready (Ready false, Err wraps
	// ErrNoReplica) while a master has no online replica: set it when
	// commits use Sync or SyncAll, which then cannot succeed. Default
	// false.
	RequireReplica bool
	// TouchInterval is how often batched accesses (Store.Touch) are
	// written, extending the sessions' TTLs. Default 500 ms.
	TouchInterval time.Duration
	// TombstoneTTL is how long a destroyed session's ID keeps refusing
	// commits (late requests must not bring it back). Default 5 min.
	TombstoneTTL time.Duration
	// CacheSessions bounds the near cache, in sessions: decoded sessions
	// served from memory until Redis reports a change by another client
	// (server-assisted client-side caching, RESP3 CLIENT TRACKING; a
	// lost connection empties it). Default 100,000; negative disables it
	// (every Get is a round trip).
	CacheSessions int
	// MaxSessionBytes caps one session's attributes (names and values),
	// MaxAttrBytes one value. Defaults 1 MiB and 256 KiB, as the replica.
	MaxSessionBytes int
	MaxAttrBytes    int
	// CountInterval is how long the session count (Len) may be reused
	// before a SCAN of every master refreshes it. Default 10 s.
	CountInterval time.Duration
	// HealthInterval is how often every Redis node is pinged for Ready.
	// Default 1 s.
	HealthInterval time.Duration
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
}

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("redisstore: invalid config")

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.Node == "" {
		return fmt.Errorf("%w: node name is required", ErrConfig)
	}
	if len(c.Addrs) == 0 {
		return fmt.Errorf("%w: at least one address (host:port) is required", ErrConfig)
	}
	for _, a := range c.Addrs {
		if a == "" {
			return fmt.Errorf("%w: empty address", ErrConfig)
		}
	}
	if c.Timeout < 0 || c.SyncTimeout < 0 || c.TouchInterval < 0 || c.TombstoneTTL < 0 ||
		c.HealthInterval < 0 || c.CountInterval < 0 || c.SyncAllReplicas < 0 ||
		c.MaxSessionBytes < 0 || c.MaxAttrBytes < 0 {
		return fmt.Errorf("%w: negative duration or size", ErrConfig)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "hanode:"
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 100 * time.Millisecond
	}
	if c.TouchInterval == 0 {
		c.TouchInterval = 500 * time.Millisecond
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = 5 * time.Minute
	}
	if c.CacheSessions == 0 {
		c.CacheSessions = 100_000
	}
	if c.MaxSessionBytes == 0 {
		c.MaxSessionBytes = 1 << 20
	}
	if c.MaxAttrBytes == 0 {
		c.MaxAttrBytes = 256 << 10
	}
	if c.CountInterval == 0 {
		c.CountInterval = 10 * time.Second
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
