package multicast

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("multicast: invalid config")

// Config configures a Transport. Start from DefaultConfig; a zero field
// takes its default (listed in its comment) when the transport starts.
// Every member of a cluster must use the same ClusterName, Group and
// Keyring, and a MaxDatagram no larger than any other member's.
type Config struct {
	// ClusterName identifies the cluster; packets of other clusters on
	// the same group are ignored. Required.
	ClusterName string
	// Group is the IPv4 multicast group and port.
	// Default 239.255.42.99:45588 (site-local scope).
	Group netip.AddrPort
	// Interface is the network interface to join the group on and send
	// from: a name ("eth0") or one of its IPv4 addresses. Required by
	// Listen; there is no wildcard default. Unused by MemNetwork.
	Interface string
	// UnicastPort is the UDP port of the unicast socket that sends the
	// multicasts and receives repairs and acks. Default 0: ephemeral.
	// Not used in unicast mode (Peers or Discovery), whose one socket is
	// on the Group's port.
	UnicastPort uint16
	// TTL is the multicast time-to-live in hops. Default 1 (this LAN).
	TTL int
	// Loopback delivers this process's multicasts to other processes on
	// the same host (several members on one host). DefaultConfig sets it;
	// a process never delivers its own messages to itself either way.
	Loopback bool
	// MaxDatagram is the largest datagram sent, header included, in
	// bytes. Default 1400 (no IP fragmentation on Ethernet). Datagrams
	// larger than this are rejected on receive ("oversize").
	MaxDatagram int
	// MaxMessage is the largest Broadcast payload and the largest
	// decompressed message accepted, in bytes. Default 4 MiB.
	MaxMessage int
	// RecvBuffer is the socket receive buffer asked of the kernel, in
	// bytes. Default 4 MiB. A smaller grant is logged and reported in
	// Stats.RecvBufferClamped (raise net.core.rmem_max).
	RecvBuffer int
	// NakDelay is how long a gap must persist before the first NAK; the
	// delay doubles with each unanswered NAK, up to 16×. Default 20ms.
	NakDelay time.Duration
	// NakAttempts is how many NAKs are sent for a gap before giving up
	// with EventBehind. Default 12 (about 3 s with the default delay).
	NakAttempts int
	// StatusInterval is the status period while traffic is not yet
	// acknowledged by every member. Default 250ms.
	StatusInterval time.Duration
	// StatusIdleInterval is the status period otherwise. Default 1s.
	StatusIdleInterval time.Duration
	// RetransmitBuffer bounds the ring of this member's sent packets
	// kept for repair, and separately the store of other members'
	// recent packets kept to answer "anyone" NAKs, in bytes.
	// Default 16 MiB each.
	RetransmitBuffer int
	// RetransmitPackets bounds the same ring (and store) in packets.
	// Default 32768.
	RetransmitPackets int
	// ReceiveWindow bounds the out-of-order and partially reassembled
	// packets held per sender, in bytes. Must be at least MaxMessage plus
	// its per-datagram overhead. Default 2×MaxMessage.
	ReceiveWindow int
	// SendQueue bounds the bytes queued for sending by Broadcast;
	// Broadcast blocks while it is full. Default 4 MiB. A single message
	// larger than the queue is admitted when the queue is empty.
	SendQueue int
	// MaxSendRate paces sending, in bytes per second, with a burst of
	// 1/50 s of traffic (at least 64 KiB). Default 0: unlimited; set it
	// when slow receivers overrun their receive buffers.
	MaxSendRate int
	// NakAnswerRate bounds the NAK packets answered per requesting
	// member per second (burst: one second's worth). Default 200.
	NakAnswerRate int
	// MaxClockSkew is how far the timestamp of the first packet of a
	// sender this member has never heard may be from this member's clock,
	// either way. Such a packet outside it is refused ("stale", with a
	// warning): it is a replay of old traffic, or the hosts' clocks are
	// that far apart (synchronise them with NTP). Default 10s.
	MaxClockSkew time.Duration
	// Clock is the wall clock whose time this member puts in the packets
	// it seals (the timestamp other members check against MaxClockSkew);
	// nothing else reads it. Default time.Now. Tests set it to simulate a
	// host whose clock is off.
	Clock func() time.Time
	// NewSenderRate bounds the key derivations for packets of unknown
	// senders, per second (burst: one second's worth); beyond it they are
	// refused ("sender_rate"). Default 256.
	NewSenderRate int
	// Compression selects the codec for outgoing messages.
	// Default CompressionS2.
	Compression Compression
	// CompressThreshold is the smallest message compressed, in bytes.
	// Default 256.
	CompressThreshold int
	// DeliverQueue is the capacity of the Messages and Events channels,
	// in entries. Default 1024. While they are full, receiving stalls.
	DeliverQueue int
	// Keyring holds the cluster keys. Required.
	Keyring *Keyring
	// Logger receives warnings (buffer clamps, give-ups). Default: discard.
	Logger *slog.Logger
	// MemberID is this process's member id. Default (uuid.Nil): a new
	// random UUID.
	MemberID uuid.UUID

	// Peers selects unicast mode, for networks that drop multicast: the
	// group is not joined; every packet is sealed once and sent over UDP
	// unicast to each known peer, from and to the Interface's address and
	// the Group's port. Each entry is "host" or "host:port" (see
	// ParsePeer): an IPv4 address or a DNS name (resolved at start and
	// every DiscoveryInterval), the port defaulting to the Group's. The
	// list may name only some members (seeds): members tell each other
	// the addresses they learn. Default: none (multicast).
	Peers []string
	// Discovery selects unicast mode with the peers found in DNS:
	// "dns:NAME", the IPv4 addresses NAME resolves to (a Kubernetes
	// headless Service, a round-robin name), on the Group's port,
	// re-resolved every DiscoveryInterval. Exclusive with Peers.
	// Default: none.
	Discovery string
	// DiscoveryInterval is the period of DNS resolution of Discovery and
	// of the host names in Peers. Default 5s.
	DiscoveryInterval time.Duration
	// Resolver resolves the names of Peers and Discovery.
	// Default net.DefaultResolver.
	Resolver *net.Resolver

	// learnPeers receives the addresses of peers packets (unicast
	// mode; set by Listen).
	learnPeers func([]netip.AddrPort)
}

// DefaultGroup is the default multicast group and port.
var DefaultGroup = netip.MustParseAddrPort("239.255.42.99:45588")

// DefaultConfig returns a Config with every default filled in; set
// ClusterName, Interface and Keyring.
func DefaultConfig() Config {
	c := Config{Loopback: true}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if !c.Group.IsValid() {
		c.Group = DefaultGroup
	}
	def(&c.TTL, 1)
	def(&c.MaxDatagram, 1400)
	def(&c.MaxMessage, 4<<20)
	def(&c.RecvBuffer, 4<<20)
	defDur(&c.NakDelay, 20*time.Millisecond)
	def(&c.NakAttempts, 12)
	defDur(&c.StatusInterval, 250*time.Millisecond)
	defDur(&c.StatusIdleInterval, time.Second)
	def(&c.RetransmitBuffer, 16<<20)
	def(&c.RetransmitPackets, 32768)
	def(&c.ReceiveWindow, 2*c.MaxMessage)
	def(&c.SendQueue, 4<<20)
	def(&c.NakAnswerRate, 200)
	defDur(&c.MaxClockSkew, 10*time.Second)
	def(&c.NewSenderRate, 256)
	def(&c.CompressThreshold, 256)
	def(&c.DeliverQueue, 1024)
	defDur(&c.DiscoveryInterval, 5*time.Second)
	if c.Compression == CompressionDefault {
		c.Compression = CompressionS2
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field. Zero fields that have a
// default are accepted.
func (c *Config) Validate() error {
	d := *c
	d.setDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case d.ClusterName == "":
		return bad("ClusterName is required")
	case d.Keyring == nil:
		return bad("Keyring is required")
	case !d.Group.Addr().Is4() || !d.Group.Addr().IsMulticast():
		return bad("Group %v is not an IPv4 multicast address", d.Group.Addr())
	case d.Group.Port() == 0:
		return bad("Group needs a port")
	case d.TTL < 0 || d.TTL > 255:
		return bad("TTL %d out of range 0-255", d.TTL)
	case d.MaxDatagram < Overhead+64 || d.MaxDatagram > MaxUDPPayload:
		return bad("MaxDatagram %d out of range %d-%d", d.MaxDatagram, Overhead+64, MaxUDPPayload)
	case d.MaxMessage < 1 || d.MaxMessage > 1<<30:
		return bad("MaxMessage %d out of range 1-1GiB", d.MaxMessage)
	case (d.MaxMessage+1+d.MaxDatagram-Overhead-1)/(d.MaxDatagram-Overhead) > 65535:
		return bad("MaxMessage %d needs more than 65535 fragments of MaxDatagram %d", d.MaxMessage, d.MaxDatagram)
	case d.RecvBuffer < 0:
		return bad("RecvBuffer is negative")
	case d.NakDelay < 0 || d.StatusInterval < 0 || d.StatusIdleInterval < 0 || d.MaxClockSkew < 0:
		return bad("negative interval")
	case d.NakAttempts < 1:
		return bad("NakAttempts must be positive")
	case d.RetransmitBuffer < d.MaxDatagram || d.RetransmitPackets < 1:
		return bad("RetransmitBuffer/RetransmitPackets too small")
	case d.ReceiveWindow < d.MaxMessage+1+d.MaxMessage/(d.MaxDatagram-Overhead)*Overhead:
		return bad("ReceiveWindow %d smaller than one maximal message", d.ReceiveWindow)
	case d.SendQueue < 0 || d.MaxSendRate < 0 || d.NakAnswerRate < 0 || d.NewSenderRate < 0 || d.CompressThreshold < 0 || d.DeliverQueue < 0:
		return bad("negative size or rate")
	case d.Compression > CompressionZstd:
		return bad("unknown Compression %d", d.Compression)
	}
	if err := d.validatePeers(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
