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
	// MaxNameLen bytes of ASCII letters, digits, '-' and '_' (ValidName).
	// Required.
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
	// Default: 200ms.
	HeartbeatInterval time.Duration

	// ProbeTimeout is the silence after which a member is probed, pinged
	// directly and through two other members, every HeartbeatInterval; a
	// member that answers is not suspected. Default: three heartbeat
	// intervals (600ms), at most SuspectTimeout.
	ProbeTimeout time.Duration

	// SuspectTimeout is the silence after which a member that answered no
	// probe is suspected (and told so in its pings, so that it refutes). It
	// should cover at least three lost heartbeats. Default: 1.2s.
	SuspectTimeout time.Duration

	// DeadTimeout is the silence after which a suspected member that answered
	// no probe is declared dead. A member is also suspected for at least
	// DeadTimeout - SuspectTimeout before it is declared dead. Default: 2s.
	// A member whose process is known to be gone (Machine.Gone) is
	// declared dead as soon as it has been quiet for ProbeTimeout.
	DeadTimeout time.Duration

	// MaxHealthScore bounds this member's local health score (Lifeguard's
	// local health awareness): the score rises by one when this member's
	// own Ticks come late (its process was stalled) and when it has to
	// refute a suspicion of itself (others found it slow), and falls by one
	// every four heartbeat intervals without either. ProbeTimeout,
	// SuspectTimeout and DeadTimeout are multiplied by 1 + score: a member
	// that is itself slow waits longer before it accuses others. Default: 8.
	MaxHealthScore int

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
	DefaultHeartbeatInterval = 200 * time.Millisecond
	DefaultSuspectTimeout    = 1200 * time.Millisecond
	DefaultDeadTimeout       = 2 * time.Second
	DefaultMaxHealthScore    = 8
	DefaultRetention         = 30 * time.Second
	DefaultMaxMembers        = 256
)

// DefaultConfig returns a Config for a LAN with every default set; the
// caller sets ID, Name and Started. With these defaults a member whose
// process ended (and whose host the runtime finds refusing connections,
// see Machine.Gone) is declared dead 0.6 to 0.8 seconds after it stopped;
// a member that went silent otherwise (host down, network cut) 2 to 2.2
// seconds after its last heartbeat. A member stalled for up to about 1.8
// seconds is suspected at most, never declared dead, and one stalled for
// less than about 1 second is not even suspected.
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval: DefaultHeartbeatInterval,
		SuspectTimeout:    DefaultSuspectTimeout,
		DeadTimeout:       DefaultDeadTimeout,
		MaxHealthScore:    DefaultMaxHealthScore,
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
	if c.MaxHealthScore == 0 {
		c.MaxHealthScore = d.MaxHealthScore
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = min(3*c.HeartbeatInterval, c.SuspectTimeout)
	}
	c.Meta = maps.Clone(c.Meta)
	return c
}

// Validate reports whether c, with its zero fields taking their defaults, is
// usable. Errors wrap ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.ID == uuid.Nil:
		return bad("ID is required")
	case c.Started.IsZero():
		return bad("Started is required")
	case c.HeartbeatInterval < 0 || c.ProbeTimeout < 0 || c.SuspectTimeout < 0 || c.DeadTimeout < 0 || c.Retention < 0 || c.MaxMembers < 0 || c.MaxHealthScore < 0:
		return bad("durations, MaxMembers and MaxHealthScore must not be negative")
	case c.ProbeTimeout > c.SuspectTimeout:
		return bad("ProbeTimeout (%v) must not be longer than SuspectTimeout (%v)", c.ProbeTimeout, c.SuspectTimeout)
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
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
