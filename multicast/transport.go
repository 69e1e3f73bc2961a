package multicast

import (
	"context"
	"net/netip"

	"github.com/google/uuid"
)

// Transport moves opaque payloads between the members of one cluster.
//
// Broadcast messages are reliable and FIFO per sender: every member
// delivers every sender's messages in sequence order, exactly once,
// repairing gaps with negative acknowledgements; a message a member can no
// longer obtain is reported as an EventBehind instead of being skipped
// silently. Control messages (heartbeats, probes) are unreliable and
// unordered, but still authenticated, encrypted and replay-protected.
//
// Every method is safe for concurrent use. Payload slices passed in are
// copied before the call returns; slices delivered in a Message belong to
// the receiver.
type Transport interface {
	// LocalID is this process's member ID, minted at start: a restarted
	// process is a new member.
	LocalID() uuid.UUID

	// Broadcast queues a reliable message for every member and returns
	// its sequence number (the sequence number of its last fragment).
	// It blocks only while the send queue is full, up to ctx.
	Broadcast(ctx context.Context, payload []byte, opt SendOptions) (seq uint64, err error)

	// SendControl sends an unreliable control message to the group, or to
	// one member when to is not uuid.Nil.
	SendControl(to uuid.UUID, payload []byte) error

	// WaitAcked blocks until at least n members other than this one have
	// delivered this node's message seq (sent with SendOptions.Ack), or
	// ctx ends. It returns how many acknowledged.
	WaitAcked(ctx context.Context, seq uint64, n int) (int, error)

	// Messages delivers received payloads. The channel is closed by Close.
	Messages() <-chan Message

	// Events delivers transport events (a sender seen for the first time,
	// a sender this member fell too far behind). Closed by Close.
	Events() <-chan Event

	// Forget drops all per-sender state of a member that left or died;
	// messages of it that are still missing are no longer repaired from
	// it (other members may still answer).
	Forget(member uuid.UUID)

	// Stats returns counters for metrics.
	Stats() Stats

	// Close stops the transport and releases its sockets.
	Close() error
}

// SendOptions modify one Broadcast.
type SendOptions struct {
	// Ack asks receivers to acknowledge delivery at once (sync
	// consistency); see WaitAcked.
	Ack bool
}

// Message is one delivered payload.
type Message struct {
	From    uuid.UUID      // the sender's member ID
	Seq     uint64         // sender's sequence number (0 for control messages)
	Control bool           // true for SendControl messages
	Payload []byte         // the message as broadcast (owned by the receiver)
	Addr    netip.AddrPort // where it came from (the sender's unicast address)
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventNewSender: a sender was seen for the first time; delivery of
	// its messages starts at Event.Seq (messages before that, sent before
	// this member joined, are never delivered: state transfer covers them).
	EventNewSender EventKind = 1
	// EventBehind: this member cannot obtain a message of Event.From any
	// more (it left every retransmit buffer); delivery from that sender
	// skipped to Event.Seq. The upper layer must repair by state transfer
	// or anti-entropy.
	EventBehind EventKind = 2
)

// Event is a transport event.
type Event struct {
	Kind EventKind // what happened
	From uuid.UUID // the member concerned
	Seq  uint64    // EventNewSender: its first message delivered; EventBehind: where delivery resumed
}

// Stats are monotonically increasing counters, except where noted.
type Stats struct {
	PacketsSent       uint64            // datagrams written (data, repairs and control)
	PacketsReceived   uint64            // datagrams read (own looped-back ones excluded), before any check
	BytesSent         uint64            // bytes of PacketsSent
	BytesReceived     uint64            // bytes of PacketsReceived
	MessagesSent      uint64            // Broadcast and SendControl calls that went out
	MessagesDelivered uint64            // messages put on Messages()
	Retransmissions   uint64            // packets resent because of a NAK
	NaksSent          uint64            // repair requests sent
	Rejected          map[string]uint64 // dropped packets by reason: "malformed", "auth", "cluster", "replay", "oversize", "unknown_key", ...
	SendQueueLen      int               // gauge
	RecvBufferBytes   int               // gauge: receive buffer granted by the kernel
	RecvBufferClamped bool              // the kernel granted less than asked
	SendErrors        uint64            // datagrams the socket failed to send (not in PacketsSent; not in Rejected, which counts inbound drops only)

	// Unicast mode (Config.Peers or Config.Discovery). PacketsSent and
	// BytesSent count each packet once however many peers it went to.
	Unicast         bool              // the transport runs in unicast mode
	PeerDatagrams   map[string]uint64 // datagrams sent per known peer ("IP:port"); a dropped peer disappears
	DiscoveryErrors uint64            // failed resolutions of peer names and the discovery name
}
