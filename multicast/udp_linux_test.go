package multicast

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
)

// requireLoopbackMulticast checks that lo can carry multicast: up, with
// the MULTICAST flag and a 224.0.0.0/4 route. The project's test script
// provides that inside `unshare -rn`:
//
//	ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo
//
// Without it the test fails, unless HANODE_NO_NETNS=1 says so on purpose.
func requireLoopbackMulticast(t *testing.T) {
	t.Helper()
	why := ""
	ifi, err := net.InterfaceByName("lo")
	switch {
	case err != nil:
		why = "no lo interface: " + err.Error()
	case ifi.Flags&net.FlagUp == 0:
		why = "lo is down"
	case ifi.Flags&net.FlagMulticast == 0:
		why = "lo has no MULTICAST flag"
	case !hasLoMulticastRoute():
		why = "no 224.0.0.0/4 route on lo"
	}
	if why == "" {
		return
	}
	msg := "real-multicast test needs a network namespace: " + why +
		"; run `unshare -rn sh -c 'ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo; go test ./multicast/'`" +
		" (set HANODE_NO_NETNS=1 to skip knowingly)"
	if os.Getenv("HANODE_NO_NETNS") == "1" {
		t.Skip(msg)
	}
	t.Fatal(msg)
}

func hasLoMulticastRoute() bool {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// Destination and mask are little-endian hex: 224.0.0.0/4.
		if len(fs) >= 8 && fs[0] == "lo" && fs[1] == "000000E0" && fs[7] == "000000F0" {
			return true
		}
	}
	return false
}

func udpConfig(group string) Config {
	c := testConfig()
	c.Interface = "lo"
	c.Group = netip.MustParseAddrPort(group)
	c.Loopback = true
	return c
}

func recvOne(t *testing.T, tr Transport, d time.Duration) (Message, bool) {
	t.Helper()
	select {
	case m := <-tr.Messages():
		return m, true
	case <-time.After(d):
		return Message{}, false
	}
}

func TestUDPLoopback(t *testing.T) {
	requireLoopbackMulticast(t)
	const port = "45599"
	a, err := Listen(udpConfig("239.255.42.99:" + port))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen(udpConfig("239.255.42.99:" + port))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Another group on the same port must see none of it.
	other, err := Listen(udpConfig("239.255.42.100:" + port))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	for i := range 20 {
		if _, err := a.Broadcast(context.Background(), payload(i, 2000), SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := b.Broadcast(context.Background(), []byte("from b"), SendOptions{Ack: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []Message
	for len(got) < 20 {
		m, ok := recvOne(t, b, 5*time.Second)
		if !ok {
			t.Fatalf("b received %d of 20 messages", len(got))
		}
		if m.From == a.LocalID() && !m.Control {
			got = append(got, m)
		}
	}
	checkInOrder(t, "b", got, 20, 2000)
	if got[0].Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("sender address %v", got[0].Addr)
	}
	m, ok := recvOne(t, a, 5*time.Second)
	if !ok || string(m.Payload) != "from b" {
		t.Fatalf("a got %q, %v", m.Payload, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := b.WaitAcked(ctx, seq, 1); err != nil || n != 1 {
		t.Fatalf("WaitAcked = %d, %v", n, err)
	}
	if err := a.SendControl(b.LocalID(), []byte("unicast")); err != nil {
		t.Fatal(err)
	}
	if m, ok := recvOne(t, b, 5*time.Second); !ok || !m.Control || string(m.Payload) != "unicast" {
		t.Fatalf("control: %+v %v", m, ok)
	}

	if m, ok := recvOne(t, other, 300*time.Millisecond); ok {
		t.Fatalf("a member of another group received %+v", m)
	}
	st := other.Stats()
	if st.Rejected["other_group"] != 0 && st.MessagesDelivered != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.PacketsReceived != 0 {
		t.Fatalf("other group's transport processed %d packets", st.PacketsReceived)
	}
	sa := a.Stats()
	if sa.RecvBufferBytes <= 0 {
		t.Errorf("receive buffer not reported: %+v", sa)
	}
	t.Logf("receive buffer granted %d bytes (clamped %v)", sa.RecvBufferBytes, sa.RecvBufferClamped)
}

func TestListenRequiresInterface(t *testing.T) {
	c := testConfig()
	if _, err := Listen(c); err == nil || !strings.Contains(err.Error(), "interface") {
		t.Fatalf("Listen without Interface: %v", err)
	}
	c.Interface = "no-such-if0"
	if _, err := Listen(c); err == nil {
		t.Fatal("Listen on a missing interface succeeded")
	}
	c.Interface = "0.0.0.0"
	if _, err := Listen(c); err == nil {
		t.Fatal("Listen on the wildcard address succeeded")
	}
}

// syncBuffer is a log sink read while goroutines write (testutil).
type syncBuffer = testutil.SyncBuffer

// TestUDPCloseFlushes: messages broadcast right before Close reach the
// peer over real sockets, and the transport's log lines repeat no key of
// the caller's logger.
func TestUDPCloseFlushes(t *testing.T) {
	requireLoopbackMulticast(t)
	const group = "239.255.42.101:45601"
	b, err := Listen(udpConfig(group))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var logs syncBuffer
	ca := flushConfig(udpConfig(group))
	ca.Logger = slog.New(slog.NewJSONHandler(&logs, nil)).With("subsystem", "cluster")
	a, err := Listen(ca)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case ev := <-b.Events():
			seen = ev.Kind == EventNewSender && ev.From == a.LocalID()
		case <-deadline:
			t.Fatal("b did not see a")
		}
	}
	go func() {
		for range a.Messages() {
		}
	}()
	broadcastThenClose(t, a)
	var got []Message
	for len(got) < flushMessages {
		m, ok := recvOne(t, b, 5*time.Second)
		if !ok {
			t.Fatalf("b received %d of %d messages broadcast before Close", len(got), flushMessages)
		}
		if m.From == a.LocalID() && !m.Control {
			got = append(got, m)
		}
	}
	checkInOrder(t, "b", got, flushMessages, flushSize)
	if st := a.Stats(); st.SendErrors != 0 {
		t.Errorf("send errors: %d", st.SendErrors)
	}
	out := strings.TrimSpace(logs.String())
	if !strings.Contains(out, "joined group") {
		t.Fatalf("no join log line: %q", out)
	}
	for _, line := range strings.Split(out, "\n") {
		checkUniqueKeys(t, line)
	}
}
