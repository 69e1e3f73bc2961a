package cluster

// Configuration: Config, its defaults and validation, the lone-survivor
// policy, and the multicast.Config derived from it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// Config configures a Node. Zero values take the defaults named in each
// field's comment.
type Config struct {
	Node        string         // node name, the route suffix; required
	ClusterName string         // default "hanode"; nodes of other clusters are ignored
	Group       netip.AddrPort // multicast group; default 239.255.42.99:45588
	Interface   string         // interface name or IP address to join on; required
	TTL         int            // multicast TTL; default 1
	Loopback    bool           // deliver own multicast to other processes on this host
	// Peers and Discovery select UDP unicast instead of the group, for
	// networks that drop multicast (multicast.Config.Peers and
	// .Discovery): "host[:port]" entries, or "dns:NAME". Default: none.
	Peers       []string
	Discovery   string
	Keyring     *multicast.Keyring     // cluster keys; required
	Consistency replicator.Consistency // default consistency for commits; default Async
	SyncTimeout time.Duration          // bound of a sync wait; default 100ms
	// LoneSurvivor says whether a node with no live peer accepts Sync and
	// SyncAll commits unreplicated (LoneAccept) or refuses them
	// (LoneRefuse, the default); see LoneSurvivorPolicy.
	LoneSurvivor LoneSurvivorPolicy

	// TransferAddr is the TCP address the state-transfer server listens
	// on; default: the interface's IPv4 address, port 0 (any).
	TransferAddr string
	// TransferTimeout is the progress timeout of a state transfer: it
	// fails when no chunk arrives for this long; default 10s.
	TransferTimeout time.Duration
	// JoinTimeout is how long a new node waits to hear peers before it
	// declares itself ready as the first member; default 2s.
	JoinTimeout time.Duration

	// SnapshotFile, when set, is written on graceful shutdown (and every
	// SnapshotInterval) and loaded at start. Default: none.
	SnapshotFile     string
	SnapshotInterval time.Duration // default 0: only on shutdown

	AntiEntropyInterval time.Duration // default 15s
	HeartbeatInterval   time.Duration // default 200ms; failure detection scales with it (dead after 10 intervals of silence, 3 when the process is gone)
	MaxSessionBytes     int           // default 1 MiB

	Logger *slog.Logger // default slog.Default()

	// Dial opens the state-transfer connection to a peer's transfer
	// address (a TCP address unless the node was started with StartOn on
	// another kind of listener). Default: a net.Dialer with a 3 s
	// timeout. Tests dial an in-memory listener with it.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// Clock is this host's wall clock. The node reads the time only
	// through it (commit and touch timestamps, membership, expiry, the
	// durations it logs) and hands it to the transport as
	// multicast.Config.Clock. Default time.Now. The node waits with Go's
	// timers, so a replacement must advance with them: testing/synctest's
	// virtual time does, and so does time.Now plus an offset (a host
	// whose clock is apart from the others').
	Clock func() time.Time
	// Rand is the source of the node's random choices: the jitter of the
	// anti-entropy and repair delays, and the member an anti-entropy
	// round asks. Default: math/rand/v2's global source. It need not be
	// safe for concurrent use (the node serialises its calls); a seeded
	// one (rand.NewPCG) repeats the choices from run to run.
	Rand rand.Source
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("cluster: invalid config")

func (c *Config) setDefaults() {
	if c.ClusterName == "" {
		c.ClusterName = "hanode"
	}
	if !c.Group.IsValid() {
		c.Group = multicast.DefaultGroup
	}
	if c.TTL == 0 {
		c.TTL = 1
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 100 * time.Millisecond
	}
	if c.TransferTimeout == 0 {
		c.TransferTimeout = 10 * time.Second
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 2 * time.Second
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = 15 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = membership.DefaultHeartbeatInterval
	}
	if c.MaxSessionBytes == 0 {
		c.MaxSessionBytes = 1 << 20
	}
	if c.Dial == nil {
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			return d.DialContext(ctx, "tcp4", addr)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.Node == "" {
		return fmt.Errorf("%w: node name is required", ErrConfig)
	}
	if !membership.ValidName(c.Node) {
		return fmt.Errorf("%w: node name %q is not 1 to %d of A-Z a-z 0-9 _ - (membership.ValidName)", ErrConfig, c.Node, membership.MaxNameLen)
	}
	if c.Interface == "" {
		return fmt.Errorf("%w: interface is required (a name such as eth0 or an IPv4 address)", ErrConfig)
	}
	if c.Keyring == nil {
		return fmt.Errorf("%w: a cluster key is required", ErrConfig)
	}
	if !c.Group.Addr().Is4() || !c.Group.Addr().IsMulticast() {
		return fmt.Errorf("%w: group %s is not an IPv4 multicast address", ErrConfig, c.Group)
	}
	return nil
}

// TransportConfig returns the multicast configuration that Start would
// use for cfg, for callers of StartOn.
func TransportConfig(cfg Config) multicast.Config {
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Node)}
	return n.transportConfig()
}

// LoneSurvivorPolicy says what a Sync or SyncAll commit does on a node that
// sees no other live member: the others died, left, or are cut off from it
// (and then suspected). It is the choice between availability and the
// promise that an acknowledged write survives this node's death.
type LoneSurvivorPolicy uint8

const (
	// LoneRefuse (the default) refuses the commit with
	// replicator.ErrNotReplicated before applying it, and the node is not
	// Ready while it is alone: no acknowledged write can be lost when it
	// dies, at the price of refusing writes until a peer is back (like
	// Kafka's acks=all with min.insync.replicas=2).
	LoneRefuse LoneSurvivorPolicy = iota
	// LoneAccept applies the commit locally and reports success with
	// CommitResult.Replicated false: the node stays available alone, and
	// whatever it accepts while alone is lost if it dies before a peer
	// returns (like Tomcat's session replication, which serves on when
	// no member is left to replicate to).
	LoneAccept
)

func (p LoneSurvivorPolicy) String() string {
	switch p {
	case LoneRefuse:
		return "refuse"
	case LoneAccept:
		return "accept"
	}
	return "unknown"
}

// ParseLoneSurvivor parses "refuse" or "accept".
func ParseLoneSurvivor(s string) (LoneSurvivorPolicy, error) {
	switch s {
	case "refuse", "":
		return LoneRefuse, nil
	case "accept":
		return LoneAccept, nil
	}
	return LoneRefuse, fmt.Errorf("%w: lone-survivor must be refuse or accept, not %q", ErrConfig, s)
}
