// Package membership tracks which hanode members are up: heartbeats,
// failure detection with direct and indirect probes, incarnations, views
// and the choice of the coordinator.
//
// It is a pure state machine in the style of etcd's raft: it opens no
// socket, starts no goroutine and reads no clock. Time is an argument;
// received payloads go in through Step, the passing of time through Tick,
// and what to send and what happened come out of Ready. The same inputs
// give the same outputs, so the tests drive a simulated network of Machines
// with a fake clock (see sim_test.go).
//
// # Usage
//
// The runtime that owns the Machine (one goroutine, or a mutex: a Machine
// is not safe for concurrent use) has these duties:
//
//  1. Create the Machine with New. Mint Config.ID with uuid.New at every
//     process start (a restarted process is a new member) and set
//     Config.Started to the process start time. Node names must be unique in
//     the cluster.
//
//  2. Call Tick(now) about every 100ms, and at least every
//     HeartbeatInterval. now should be monotonic (a time.Time read from the
//     clock keeps its monotonic reading). Tick sends heartbeats and runs the
//     failure detector.
//
//  3. Pass every membership payload received to Step(from, payload, now),
//     where from is the sender ID authenticated by the transport. An error
//     means the payload was rejected and counted (Stats.Malformed); log it at
//     debug level and go on.
//
//  4. Call Observe(from, now) for any other traffic from a member (session
//     deltas, acks, repairs): any traffic counts as a heartbeat, so a busy
//     member is never suspected because a heartbeat was lost.
//
//  5. After each Tick, Step or Observe, call Ready and send its Messages in
//     order: To == uuid.Nil means the whole group, otherwise that member
//     only. The transport may lose, duplicate or reorder them; it must
//     authenticate the sender. Payloads never exceed MaxPayloadSize bytes.
//
//  6. Act on Ready's Events, in order. EventDied and EventLeft: the member's
//     sessions are taken over, the transport forgets its per-sender state.
//     EventJoined: a new member (or one back from a partition). EventUpdated:
//     its Meta changed, for example a readiness flag. EventSuspected and
//     EventRecovered are for logs and metrics only: a suspected member stays
//     in the View.
//
//  7. Use View, Oldest and Converged for decisions that need agreement:
//     Oldest is the coordinator (state transfer source), View.ID is what the
//     transport puts in its header, and Converged reports that every member
//     has reported the same view. Members lists everyone, dead and left
//     members included, for display.
//
//  8. To stop gracefully, call Leave, send what Ready returns, keep calling
//     Tick for about two heartbeat intervals (the announcement is repeated
//     in case one is lost) and then close the transport.
//
// # Failure detection
//
// Every member multicasts a heartbeat every HeartbeatInterval carrying its
// name, start time, incarnation, Meta, the ID of its view, and the members
// it suspects or has declared dead. A member silent for SuspectTimeout is
// Suspect: this member pings it directly and asks two other random alive
// members to ping it too (PING-REQ); they forward its ack. Pings are
// repeated every HeartbeatInterval. A suspect still silent after
// DeadTimeout, and suspected for at least DeadTimeout - SuspectTimeout, is
// Dead. Any message from it, or an ack on its behalf, makes it Alive again
// (EventRecovered).
//
// With the defaults (500ms, 1500ms, 3s) a crashed member is declared dead
// 2.5 to 3.1 seconds after it crashed, whatever the phase of the crash
// against its heartbeats and the Ticks. A member stalled for 1s is silent for
// at most 1.5s plus a Tick: it may be suspected, never declared dead. When
// this Machine itself was stalled (two Ticks more than two heartbeats apart)
// the silence of the others is its own: it suspects no one for one more
// heartbeat interval, so that the traffic received meanwhile can be stepped.
// With 20% of messages lost, a false death needs six heartbeats in a row and
// every probe lost; the tests run minutes of such loss with no false death.
//
// # Incarnations
//
// Each member owns an incarnation number that only it increases: to refute a
// suspicion (heard in a heartbeat's suspicion list or in a ping, at an
// incarnation not below its own) and when its Meta changes. Receivers apply a
// member's Meta only from a heartbeat at an incarnation at least as high as
// the last one, so reordered heartbeats never bring back an older Meta.
//
// A Dead member comes back only with a higher incarnation than the one it
// was declared dead at. A message at the old incarnation is counted as stale
// and answered with a ping that tells the member it was declared dead; it
// refutes, and its ack or next heartbeat brings it back (EventJoined). The
// point is that a member declared dead learns it was (its sessions have been
// taken over and it may have missed deltas), and that every member sees the
// same incarnation for the new life. Heartbeats also list dead members, so
// after a partition heals both sides refute at once and views converge
// within about one heartbeat. A member dead for longer than Retention is
// forgotten and its next heartbeat is simply a join.
//
// # Leave and restart
//
// A LEAVE marks the member Left at once (EventLeft). Left is final for that
// ID: a restarted process has a new ID, and later messages from a left ID
// are ignored and counted as stale.
//
// Names are unique in a cluster, so a member heard with the name of another
// member replaces it if its Started is later (then its ID larger): the old
// one is marked Left (EventLeft) at once instead of after DeadTimeout. This
// makes a fast restart (kill -9 and start again within a second) fail over
// the old process's sessions at once. The cost: two live processes
// misconfigured with one name make the older one look left; its further
// heartbeats are counted in Stats.NameConflicts, which the runtime should
// report loudly. A member never marks itself left: a newer member with its
// own name is only counted.
//
// Dead and left members stay listed for Retention, then are forgotten.
//
// # Partitions and views
//
// There is no agreement protocol: every member hears every member directly
// over the group, so views converge once traffic flows. During a partition
// each side declares the other dead and carries on with its own view (and
// its own oldest member); when it heals, members reappear (EventJoined) and
// the views become equal again. View.ID is a hash of the sorted IDs of the
// view's members; each heartbeat carries the sender's, so Converged can tell
// when all agree. Merging the data of the two sides is the replicator's job.
//
// # Bounds
//
// Payloads are at most MaxPayloadSize bytes; names, Meta and suspicion lists
// have fixed limits that keep the largest heartbeat within it. At most
// Config.MaxMembers members are tracked (the dead or left member due to be
// forgotten first is dropped to make room); heartbeats of further members
// are ignored and counted. Pending probes and relayed pings expire after
// DeadTimeout and are bounded.
//
// # Wire format
//
// Binary, big-endian, version byte then type byte, append-only type numbers
// and fields; see wire.go. Decoding is bounds-checked and fuzzed.
package membership
