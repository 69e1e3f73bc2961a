// Package multicast moves opaque payloads between the members of one hanode
// cluster over IPv4 multicast on a LAN: reliable and FIFO per sender,
// authenticated and encrypted, with repair of lost datagrams.
//
// # Using it
//
//  1. Build a Config from DefaultConfig: set ClusterName, Keyring (from
//     LoadKeyFile) and Interface ("eth0" or an address of it; there is no
//     wildcard default).
//  2. Listen(cfg) joins the group and returns a Transport. Tests use
//     NewMemNetwork(seed).Join(cfg) instead: the same protocol over an
//     in-memory network with seeded loss, duplication, reordering and
//     partitions.
//  3. Drain Messages() and Events() continuously, each in its own
//     goroutine; while they are full, receiving stalls (datagrams are then
//     dropped by the kernel and repaired later).
//  4. Broadcast reliable messages (up to MaxMessage, default 4 MiB); it
//     blocks only while the bounded send queue is full. A member does not
//     receive its own messages. With SendOptions{Ack: true}, WaitAcked
//     waits until n other members delivered the message.
//  5. On EventNewSender, delivery of that sender starts at Event.Seq; on
//     EventBehind, messages of that sender were lost for good: repair by
//     state transfer (NewSealedWriter/NewSealedReader over TCP).
//  6. Call Forget when membership declares a member dead or gone, so it no
//     longer holds buffers back; its missing tail is still repaired from
//     the other members for a grace period.
//  7. Close stops everything and closes both channels.
//
// # Protocol
//
// Every datagram (at most MaxDatagram, default 1400 bytes) starts with a
// 60-byte header (internal/packet/packet.go): magic, version, type, flags, key id,
// cluster id, sender UUID, a sequence number or control counter, the
// sender's highest data sequence number, fragment index and count, length,
// and the sender's wall-clock timestamp.
// Type numbers (data=1, control=2, nak=3, ack=4, status=5, peers=6) are
// append-only.
//
// Messages are compressed (S2 by default, zstd optional; only above
// CompressThreshold and only when smaller), split into fragments that each
// take their own sequence number, and sealed with AES-256-GCM under a
// per-sender key HKDF-SHA256(cluster key, salt = cluster id, info = sender
// UUID). The nonce is a 4-byte channel (data or control) and the 8-byte
// counter, so it never repeats, and a retransmission is the original sealed
// datagram: any member holding it can resend it. The header is the
// associated data, except the retransmit flag bit. Tags are verified
// before anything is allocated or decompressed; decompression is capped at
// MaxMessage.
//
// Receivers deliver each sender's messages in sequence order. A gap, seen
// from a later packet or from the highest-sequence field that every packet
// (including status) carries, or from another member's status, is NAKed
// after NakDelay: first to the sender, then to the group with the "anyone"
// flag, so any member that still holds the packets answers (survivors
// repair a dead sender's tail). Every member keeps its own sent packets in
// a bounded ring and other members' recent packets in a bounded store;
// periodic status packets report what each member delivered, and packets
// every member delivered are freed. When no member holds a missing packet
// any more, the receiver skips it and emits EventBehind.
//
// Data below the delivery point is a duplicate (or a replay) and dropped;
// control-channel packets must carry a counter not seen before within a
// 64-entry window. A sender this member has never heard (after a restart
// of either, or on joining) has no such state yet: its first packet is
// accepted only when its authenticated timestamp is within MaxClockSkew
// of this member's clock ("stale" otherwise, with a warning that names
// the difference), so traffic captured earlier cannot be replayed to a
// restarted or new member. Deriving the key of an unknown sender is
// budgeted (NewSenderRate per second, "sender_rate" beyond it) and only
// authenticated senders enter the derived-key cache, so forged sender ids
// cost neither CPU without bound nor the keys of real members. Forged,
// foreign, replayed, stale and oversized packets are dropped and counted
// by reason in Stats.Rejected.
//
// # Unicast mode
//
// On networks that drop multicast, set Config.Peers (static addresses or
// names, "host[:port]", seeds are enough) or Config.Discovery ("dns:NAME").
// Listen then joins no group: one socket on the interface's address and
// the group's port sends every group packet, sealed once, to each known
// peer (sendmmsg), and receives everything. The known peers are the static
// ones, those DNS returns, the members the engine holds (learned from
// their authenticated packets) and the addresses other members announce
// in peers packets (type 6, sealed like the rest, about every second), so
// members that listed only one seed find each other. Call
// MemberLiveness.MemberDown when membership declares a member dead: its
// learned address is then dropped unless it is static or still in DNS.
// Stats.PeerDatagrams counts the datagrams per peer. The protocol is
// otherwise the same.
//
// # Key file
//
// Cluster keys live in a key file (GenerateKeyFile, `hanode keygen`) that
// must be identical on every node and readable only by its owner (mode
// 0600; LoadKeyFile refuses anything else with ErrKeyFilePermissions).
// The format is text, one key per line:
//
//	# comments start with '#', blank lines are ignored
//	key <id 1-255> <base64 of 32 bytes> [primary]
//
// Exactly one key is marked primary (a file with a single key may omit the
// mark). The primary key seals what this node sends; every key in the file
// is accepted on receive, selected by the key id in the packet header.
// Rotation without downtime:
//
//  1. add the new key (a new id, not primary) to the file on every node and
//     restart or reload them;
//  2. move the primary mark to the new key on every node;
//  3. once every node sends with the new key, remove the old line.
package multicast
