package membership

import (
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"
)

// Config configures a Machine. Start from DefaultConfig and set ID, Name and
// Started; zero durations and counts take their defaults in New.
type Config struct {
	// ID identifies this member. Mint a new one (uuid.New) at every process
	// start: a restarted process is a new member. Required.
	ID uuid.UUID

	// Name is the node name, used as the session cookie's route suffix. It
	// must be unique in the cluster: a member that is heard with the name of
	// an older member replaces it (see the package documentation). 1 to
	// MaxNameLen bytes of ASCII letters, digits, '-', '_' and '.'. Required.
	Name string

	// Started is when the process started. The member with the earliest
	// Started (then the smallest ID) is the oldest and coordinates. Clocks
	// only need to agree to within the time between two starts for the
	// choice to be the intuitive one; every member makes the same choice
	// whatever the clocks say. Required.
	Started time.Time

	// Meta holds small key/values gossiped in every heartbeat, for example
	// "transfer" = "10.0.0.1:7946". At most MaxMetaKeys keys and MaxMetaSize
	// bytes in all. Default: empty.
	Meta map[string]string

	// HeartbeatInterval is the time between two heartbeats to the group.
	// Default: 500ms.
	HeartbeatInterval time.Duration

	// SuspectTimeout is the silence after which a member is suspected and
	// probed. It should cover at least two lost heartbeats. Default: 1500ms.
	SuspectTimeout time.Duration

	// DeadTimeout is the silence after which a suspected member that answered
	// no probe is declared dead. A member is also suspected for at least
	// DeadTimeout - SuspectTimeout before it is declared dead. Default: 3s.
	DeadTimeout time.Duration

	// Retention is how long dead and left members stay listed (for display,
	// and so that a dead member comes back only with a higher incarnation)
	// before they are forgotten. Default: 30s.
	Retention time.Duration

	// MaxMembers bounds the members this Machine tracks, itself and dead and
	// left members included. Heartbeats of further members are ignored and
	// counted in Stats.IgnoredMembers. Default: 256.
	MaxMembers int
}

// Defaults of Config.
const (
	DefaultHeartbeatInterval = 500 * time.Millisecond
	DefaultSuspectTimeout    = 1500 * time.Millisecond
	DefaultDeadTimeout       = 3 * time.Second
	DefaultRetention         = 30 * time.Second
	DefaultMaxMembers        = 256
)

// DefaultConfig returns a Config for a LAN with every default set; the
// caller sets ID, Name and Started. With these defaults a crashed member is
// declared dead 2.5 to 3.1 seconds after its last heartbeat, and a member
// stalled for up to about 2 seconds is suspected at most, never declared
// dead.
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval: DefaultHeartbeatInterval,
		SuspectTimeout:    DefaultSuspectTimeout,
		DeadTimeout:       DefaultDeadTimeout,
		Retention:         DefaultRetention,
		MaxMembers:        DefaultMaxMembers,
	}
}

// withDefaults returns c with zero fields set to their defaults and Meta
// copied.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.SuspectTimeout == 0 {
		c.SuspectTimeout = d.SuspectTimeout
	}
	if c.DeadTimeout == 0 {
		c.DeadTimeout = d.DeadTimeout
	}
	if c.Retention == 0 {
		c.Retention = d.Retention
	}
	if c.MaxMembers == 0 {
		c.MaxMembers = d.MaxMembers
	}
	c.Meta = maps.Clone(c.Meta)
	return c
}

// Validate reports whether c, with its zero fields taking their defaults, is
// usable. Errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.ID == uuid.Nil:
		return bad("ID is required")
	case c.Started.IsZero():
		return bad("Started is required")
	case c.HeartbeatInterval < 0 || c.SuspectTimeout < 0 || c.DeadTimeout < 0 || c.Retention < 0 || c.MaxMembers < 0:
		return bad("durations and MaxMembers must not be negative")
	case c.SuspectTimeout <= c.HeartbeatInterval:
		return bad("SuspectTimeout (%v) must be longer than HeartbeatInterval (%v)", c.SuspectTimeout, c.HeartbeatInterval)
	case c.DeadTimeout <= c.SuspectTimeout:
		return bad("DeadTimeout (%v) must be longer than SuspectTimeout (%v)", c.DeadTimeout, c.SuspectTimeout)
	case c.MaxMembers < 2:
		return bad("MaxMembers must be at least 2")
	}
	if err := checkName(c.Name); err != nil {
		return bad("%v", err)
	}
	if err := checkMeta(c.Meta); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
