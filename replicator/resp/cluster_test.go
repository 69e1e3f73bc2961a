package resp

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// startCluster starts nodes on an in-memory multicast network.
func startCluster(t *testing.T, names ...string) (*multicast.MemNetwork, []*cluster.Node) {
	t.Helper()
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		t.Fatal(err)
	}
	mn := multicast.NewMemNetwork(7)
	var nodes []*cluster.Node
	for _, name := range names {
		cfg := cluster.Config{
			Node: name, Keyring: kr,
			HeartbeatInterval: 100 * time.Millisecond, JoinTimeout: 400 * time.Millisecond,
			AntiEntropyInterval: 500 * time.Millisecond, SyncTimeout: 300 * time.Millisecond,
			TransferTimeout: 5 * time.Second,
			Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := mn.Join(cluster.TransportConfig(cfg))
		if err != nil {
			t.Fatal(err)
		}
		n, err := cluster.StartOn(cfg, tr, ln)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	waitFor(t, 10*time.Second, "members see each other", func() error {
		for _, n := range nodes {
			alive := 0
			for _, m := range n.Members() {
				if m.State == "alive" {
					alive++
				}
			}
			if !n.Ready() || alive != len(nodes) {
				return fmt.Errorf("%s: ready %v, %d alive", n.Node(), n.Ready(), alive)
			}
		}
		return nil
	})
	return mn, nodes
}

// waitFor polls cond until it returns nil (testutil.Eventually).
var waitFor = testutil.Eventually

func execOn(t *testing.T, e *Engine, c *Client, line string) string {
	t.Helper()
	var w Reply
	e.Exec(c, split(t, line), &w)
	return render(t, w.B)
}

// Keys are replicated records: written on one node, read on the other,
// their TTL expiring on both at once; one HSET field is one attribute's
// change; with sync consistency +OK means a peer has the write, and a
// write no peer acknowledged is an error reply.
func TestReplicatedKeys(t *testing.T) {
	mn, nodes := startCluster(t, "a", "b")
	ea, err := NewEngine(nodes[0], Config{Consistency: replicator.Sync})
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := NewEngine(nodes[1], Config{})
	ca, cb := ea.NewClient("a"), eb.NewClient("b")
	on := func(e *Engine, c *Client, line string) string { return execOn(t, e, c, line) }
	eventuallyReply := func(e *Engine, c *Client, line, want string) {
		t.Helper()
		waitFor(t, 5*time.Second, line, func() error {
			if got := on(e, c, line); got != want {
				return fmt.Errorf("got %s, want %s", got, want)
			}
			return nil
		})
	}

	if got := on(ea, ca, "SET k v PX 1500"); got != "OK" {
		t.Fatalf("sync SET: %s", got)
	}
	eventuallyReply(eb, cb, "GET k", `"v"`)
	if got := on(eb, cb, "PTTL k"); !strings.HasPrefix(got, ":") || got == ":-1" || got == ":-2" {
		t.Fatalf("PTTL on b: %s", got)
	}
	// Expiry: once a sees the key gone, b does too (the same deadline).
	eventuallyReply(ea, ca, "GET k", "nil")
	if got := on(eb, cb, "GET k"); got != "nil" {
		t.Fatalf("expired on a, on b: %s", got)
	}

	// One HSET field is one attribute's write.
	on(ea, ca, "HSET h a 1 b 2")
	eventuallyReply(eb, cb, "HGET h b", `"2"`)
	before := nodes[1].Get(replicator.KeyPrefix + "h").Attrs.Map()
	on(ea, ca, "HSET h a 3")
	eventuallyReply(eb, cb, "HGET h a", `"3"`)
	after := nodes[1].Get(replicator.KeyPrefix + "h").Attrs.Map()
	if after["hb"].Stamp != before["hb"].Stamp || after["ha"].Stamp == before["ha"].Stamp {
		t.Fatalf("HSET of field a rewrote b: before %+v after %+v", before, after)
	}

	// Delete on one node, write again at once on the other.
	on(ea, ca, "SET k2 one")
	eventuallyReply(eb, cb, "GET k2", `"one"`)
	if got := on(ea, ca, "DEL k2"); got != ":1" {
		t.Fatal(got)
	}
	eventuallyReply(eb, cb, "EXISTS k2", ":0")
	if got := on(eb, cb, "SET k2 two"); got != "OK" {
		t.Fatal(got)
	}
	eventuallyReply(ea, ca, "GET k2", `"two"`)
	// Concurrent writes to different fields of one hash merge.
	on(ea, ca, "HSET m x 1")
	on(eb, cb, "HSET m y 2")
	eventuallyReply(ea, ca, "HGETALL m", `["x" "1" "y" "2"]`)
	eventuallyReply(eb, cb, "HGETALL m", `["x" "1" "y" "2"]`)

	// No peer to acknowledge: the sync write is an error, not +OK.
	mn.Isolate(nodes[0].ID())
	if got := on(ea, ca, "SET k3 v"); !strings.HasPrefix(got, "!ERR") {
		t.Fatalf("sync SET without a peer: %s", got)
	}
	mn.Heal()
	if got := on(ea, ca, "PING"); got != "PONG" {
		t.Fatal(got)
	}
}
