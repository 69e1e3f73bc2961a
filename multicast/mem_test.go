package multicast

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/testutil"
)

var testKeyring = func() *Keyring {
	var k [KeySize]byte
	for i := range k {
		k[i] = byte(i * 7)
	}
	kr, err := NewKeyring(map[uint8][KeySize]byte{1: k}, 1)
	if err != nil {
		panic(err)
	}
	return kr
}()

func testConfig() Config {
	c := DefaultConfig()
	c.ClusterName = "test"
	c.Keyring = testKeyring
	return c
}

// node is a transport with its deliveries collected.
type node struct {
	Transport
	mu     sync.Mutex
	msgs   map[uuid.UUID][]Message
	events []Event
	done   chan struct{}
}

func startNode(t *testing.T, n *MemNetwork, cfg Config) *node {
	t.Helper()
	tr, err := n.Join(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{Transport: tr, msgs: make(map[uuid.UUID][]Message), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range tr.Messages() {
			nd.mu.Lock()
			nd.msgs[m.From] = append(nd.msgs[m.From], m)
			nd.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev := range tr.Events() {
			nd.mu.Lock()
			nd.events = append(nd.events, ev)
			nd.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); close(nd.done) }()
	return nd
}

func (nd *node) count(from uuid.UUID) int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.msgs[from])
}

func (nd *node) received(from uuid.UUID) []Message {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return append([]Message(nil), nd.msgs[from]...)
}

func (nd *node) eventsOf(kind EventKind) []Event {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	var out []Event
	for _, ev := range nd.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (nd *node) stop() {
	nd.Close()
	<-nd.done
}

func startNodes(t *testing.T, n *MemNetwork, count int, mod func(*Config)) []*node {
	t.Helper()
	var nodes []*node
	for range count {
		cfg := testConfig()
		if mod != nil {
			mod(&cfg)
		}
		nodes = append(nodes, startNode(t, n, cfg))
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.stop()
		}
	})
	// Every member has heard every other (a status: a new sender).
	for i, nd := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("node %d to hear the %d others", i, count-1), func() bool {
			return len(nd.eventsOf(EventNewSender)) >= count-1
		})
	}
	return nodes
}

// waitFor polls cond until it holds (testutil.WaitFor).
var waitFor = testutil.WaitFor

func payload(i int, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

// checkInOrder verifies that msgs are exactly payload(0..n-1), in order.
func checkInOrder(t *testing.T, who string, msgs []Message, n, size int) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("%s: %d messages, want %d", who, len(msgs), n)
	}
	var last uint64
	for i, m := range msgs {
		if got := binary.BigEndian.Uint64(m.Payload); got != uint64(i) {
			t.Fatalf("%s: message %d carries %d", who, i, got)
		}
		if len(m.Payload) != max(size, 8) || string(m.Payload) != string(payload(i, size)) {
			t.Fatalf("%s: message %d corrupted", who, i)
		}
		if m.Seq <= last {
			t.Fatalf("%s: seq %d after %d", who, m.Seq, last)
		}
		last = m.Seq
	}
}

func broadcastN(t *testing.T, tr Transport, n, size int, opt SendOptions) uint64 {
	t.Helper()
	var seq uint64
	for i := range n {
		s, err := tr.Broadcast(context.Background(), payload(i, size), opt)
		if err != nil {
			t.Errorf("broadcast %d: %v", i, err)
			return 0
		}
		seq = s
	}
	return seq
}

func TestMemLossDuplicationReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(1)
		nodes := startNodes(t, net, 4, nil)
		net.SetLoss(0.10)
		net.SetDuplicate(0.05)
		net.SetReorder(0.10)
		const per = 5000
		var wg sync.WaitGroup
		for _, s := range nodes[:2] {
			wg.Go(func() { broadcastN(t, s, per, 40, SendOptions{}) })
		}
		wg.Wait()
		for i, r := range nodes {
			for j, s := range nodes[:2] {
				if r == s {
					continue
				}
				waitFor(t, 2*time.Minute, fmt.Sprintf("node %d to deliver node %d's messages", i, j), func() bool { return r.count(s.LocalID()) >= per })
			}
		}
		// Kept sleep, virtual (synctest): nothing to wait for, the test
		// asserts that a second of repairs and duplicates adds no delivery.
		time.Sleep(time.Second)
		for i, r := range nodes {
			for j, s := range nodes[:2] {
				if r != s {
					checkInOrder(t, fmt.Sprintf("node %d from %d", i, j), r.received(s.LocalID()), per, 40)
				}
			}
			if ev := r.eventsOf(EventBehind); len(ev) > 0 {
				t.Errorf("node %d: unexpected EventBehind %v", i, ev)
			}
		}
		st := nodes[2].Stats()
		if st.NaksSent == 0 || st.Rejected[reasonDuplicate] == 0 {
			t.Errorf("expected NAKs and duplicates under loss: %+v", st)
		}
		t.Logf("network dropped %d datagrams; receiver stats: naks=%d dup=%d", net.Dropped(), st.NaksSent, st.Rejected[reasonDuplicate])
	})
}

func TestMemFragmentedUnderLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(2)
		nodes := startNodes(t, net, 3, func(c *Config) { c.Compression = CompressionNone })
		net.SetLoss(0.05)
		net.SetReorder(0.1)
		const n, size = 20, 100_000
		broadcastN(t, nodes[0], n, size, SendOptions{})
		for _, r := range nodes[1:] {
			waitFor(t, time.Minute, "large messages", func() bool { return r.count(nodes[0].LocalID()) >= n })
			checkInOrder(t, "receiver", r.received(nodes[0].LocalID()), n, size)
		}
	})
}

// lastDataDropper drops, once per receiver in to, the data packet with
// sequence number seq from sender, and then the next count status packets
// of sender.
func lastDataDropper(sender uuid.UUID, to uuid.UUID, seq uint64, statuses int) func(from, dst uuid.UUID, p PacketInfo) bool {
	var mu sync.Mutex
	droppedData := false
	return func(from, dst uuid.UUID, p PacketInfo) bool {
		mu.Lock()
		defer mu.Unlock()
		if from != sender || dst != to {
			return false
		}
		if p.Kind == "data" && p.Seq == seq && !droppedData {
			droppedData = true
			return true
		}
		if droppedData && p.Kind == "status" && statuses > 0 {
			statuses--
			return true
		}
		return false
	}
}

func testLastLost(t *testing.T, statuses int) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(3)
		nodes := startNodes(t, net, 2, nil)
		a, b := nodes[0], nodes[1]
		const n = 50
		net.SetDropFunc(lastDataDropper(a.LocalID(), b.LocalID(), n, statuses))
		broadcastN(t, a, n, 30, SendOptions{})
		waitFor(t, 5*time.Second, "the lost last message", func() bool { return b.count(a.LocalID()) >= n })
		checkInOrder(t, "b", b.received(a.LocalID()), n, 30)
		if b.Stats().NaksSent == 0 {
			t.Error("no NAK sent")
		}
	})
}

func TestMemLastMessageLost(t *testing.T)          { testLastLost(t, 0) }
func TestMemLastMessageAndStatusLost(t *testing.T) { testLastLost(t, 2) }

func TestMemSenderKilledSurvivorsRepairTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(4)
		nodes := startNodes(t, net, 3, nil)
		a, b, c := nodes[0], nodes[1], nodes[2]
		const n, cut = 200, 150
		// b loses everything a sends once a's sequence passes cut: the tail
		// of the stream and every status of a that would reveal it.
		var mu sync.Mutex
		var aHigh uint64
		net.SetDropFunc(func(from, to uuid.UUID, p PacketInfo) bool {
			mu.Lock()
			defer mu.Unlock()
			if from == a.LocalID() {
				aHigh = max(aHigh, p.HighSeq)
				return to == b.LocalID() && aHigh > cut
			}
			return false
		})
		broadcastN(t, a, n, 30, SendOptions{})
		waitFor(t, 5*time.Second, "c to deliver all", func() bool { return c.count(a.LocalID()) >= n })
		a.stop() // killed: it will answer nothing
		b.Forget(a.LocalID())
		c.Forget(a.LocalID())
		waitFor(t, 10*time.Second, "b to repair a's tail from c", func() bool { return b.count(a.LocalID()) >= n })
		checkInOrder(t, "b", b.received(a.LocalID()), n, 30)
		if c.Stats().Retransmissions == 0 {
			t.Error("c retransmitted nothing")
		}
	})
}

func TestMemRingOverflowBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(5)
		nodes := startNodes(t, net, 3, func(c *Config) {
			c.RetransmitBuffer = 64 << 10
			c.Compression = CompressionNone
		})
		a, c := nodes[0], nodes[2]
		net.Isolate(c.LocalID())
		const n = 300
		broadcastN(t, a, n, 1000, SendOptions{})
		// Everything was sent while c was cut off: b has it all.
		waitFor(t, 10*time.Second, "b to deliver all", func() bool { return nodes[1].count(a.LocalID()) >= n })
		net.Heal()
		waitFor(t, 20*time.Second, "EventBehind", func() bool { return len(c.eventsOf(EventBehind)) > 0 })
		ev := c.eventsOf(EventBehind)[0]
		if ev.From != a.LocalID() || ev.Seq <= 1 || ev.Seq > n {
			t.Fatalf("event %+v", ev)
		}
		// What was still held is delivered, in order, after the skip.
		waitFor(t, 10*time.Second, "the held tail", func() bool {
			m := c.received(a.LocalID())
			return len(m) > 0 && m[len(m)-1].Seq == n
		})
		got := c.received(a.LocalID())
		if got[0].Seq != ev.Seq {
			t.Errorf("delivery resumed at %d, event says %d", got[0].Seq, ev.Seq)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq != got[i-1].Seq+1 {
				t.Fatalf("gap after skip: %d then %d", got[i-1].Seq, got[i].Seq)
			}
		}
	})
}

func TestMemWaitAcked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(6)
		nodes := startNodes(t, net, 3, nil)
		net.SetLoss(0.1)
		for i := range 20 {
			seq, err := nodes[0].Broadcast(context.Background(), payload(i, 20), SendOptions{Ack: true})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, err := nodes[0].WaitAcked(ctx, seq, 2)
			cancel()
			if err != nil || got != 2 {
				t.Fatalf("WaitAcked(%d) = %d, %v", seq, got, err)
			}
		}
		// Nobody can ack a third member: times out with the count so far.
		seq, _ := nodes[0].Broadcast(context.Background(), payload(99, 20), SendOptions{Ack: true})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err := nodes[0].WaitAcked(ctx, seq, 3)
		if err == nil || got != 2 {
			t.Fatalf("WaitAcked for 3 = %d, %v", got, err)
		}
	})
}

func TestMemPartitionHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(7)
		nodes := startNodes(t, net, 4, nil)
		net.Partition([]uuid.UUID{nodes[0].LocalID(), nodes[1].LocalID()}, []uuid.UUID{nodes[2].LocalID(), nodes[3].LocalID()})
		const n = 100
		broadcastN(t, nodes[0], n, 50, SendOptions{})
		broadcastN(t, nodes[2], n, 50, SendOptions{})
		waitFor(t, 5*time.Second, "delivery inside each side", func() bool {
			return nodes[1].count(nodes[0].LocalID()) == n && nodes[3].count(nodes[2].LocalID()) == n
		})
		// Kept sleep, virtual (synctest): the test asserts that nothing
		// crosses the partition for 3 s (statuses and repairs included).
		time.Sleep(3 * time.Second)
		if nodes[2].count(nodes[0].LocalID()) != 0 || nodes[0].count(nodes[2].LocalID()) != 0 {
			t.Fatal("messages crossed the partition")
		}
		net.Heal()
		for _, r := range nodes {
			for _, s := range []*node{nodes[0], nodes[2]} {
				if r != s {
					waitFor(t, 10*time.Second, "delivery after heal", func() bool { return r.count(s.LocalID()) >= n })
					checkInOrder(t, "after heal", r.received(s.LocalID()), n, 50)
				}
			}
		}
	})
}

func TestMemControlAndNewSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(8)
		nodes := startNodes(t, net, 2, nil)
		if ev := nodes[1].eventsOf(EventNewSender); len(ev) != 1 || ev[0].From != nodes[0].LocalID() || ev[0].Seq != 1 {
			t.Fatalf("new-sender events %+v", ev)
		}
		if err := nodes[0].SendControl(uuid.Nil, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].SendControl(nodes[1].LocalID(), []byte("direct")); err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].SendControl(uuid.New(), []byte("nobody")); err == nil {
			t.Fatal("control to an unknown member succeeded")
		}
		waitFor(t, time.Second, "control messages", func() bool { return nodes[1].count(nodes[0].LocalID()) == 2 })
		for _, m := range nodes[1].received(nodes[0].LocalID()) {
			if !m.Control || m.Seq != 0 || !m.Addr.IsValid() {
				t.Errorf("control message %+v", m)
			}
		}
	})
}

func TestMemBroadcastTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(9)
		nodes := startNodes(t, net, 1, func(c *Config) { c.MaxMessage = 1000 })
		if _, err := nodes[0].Broadcast(context.Background(), make([]byte, 1001), SendOptions{}); err == nil {
			t.Fatal("oversized broadcast accepted")
		}
	})
}

func TestMemSendQueueBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(10)
		nodes := startNodes(t, net, 2, func(c *Config) {
			c.SendQueue = 10_000
			c.MaxSendRate = 100_000 // bytes/s
			c.Compression = CompressionNone
		})
		start := time.Now()
		broadcastN(t, nodes[0], 200, 1000, SendOptions{}) // ~215 KB
		if el := time.Since(start); el < time.Second {
			t.Fatalf("215 KB queued in %v at 100 KB/s (64 KiB burst) with a 10 KB queue", el)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = nodes[0].Broadcast(ctx, payload(i, 1000), SendOptions{})
		}
		if err == nil {
			t.Fatal("Broadcast never blocked on a full queue")
		}
		waitFor(t, 10*time.Second, "delivery", func() bool { return nodes[1].count(nodes[0].LocalID()) >= 200 })
	})
}
