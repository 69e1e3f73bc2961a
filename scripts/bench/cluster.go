package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// NewKeyring returns a fresh one-key cluster keyring.
func NewKeyring() *multicast.Keyring {
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		panic(err)
	}
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		panic(err)
	}
	return kr
}

// Cluster is an in-process hanode cluster: over a multicast.MemNetwork
// (every node in this process, state transfer over TCP on loopback), or
// over real UDP multicast on lo (cluster.Start with Loopback).
type Cluster struct {
	Nodes []*cluster.Node
	Net   *multicast.MemNetwork // nil for UDP
	kr    *multicast.Keyring
	udp   bool
	group netip.AddrPort
	mod   func(*cluster.Config)
	seq   int
	peers []string // unicast: every node's address, 127.0.0.1:port
}

var groupPort atomic.Int32

func init() { groupPort.Store(46000) }

// groupPort hands out ports upwards: a unicast cluster takes one per node.

// NewMemCluster prepares an in-memory cluster; AddNode starts nodes.
func NewMemCluster() *Cluster {
	return &Cluster{Net: multicast.NewMemNetwork(1), kr: NewKeyring()}
}

// NewUDPCluster prepares a cluster over UDP multicast on lo (needs a
// namespace whose lo carries multicast: see run.sh). Each cluster gets
// its own group port.
func NewUDPCluster() *Cluster {
	p := groupPort.Add(1)
	return &Cluster{udp: true, kr: NewKeyring(), group: netip.MustParseAddrPort(fmt.Sprintf("239.255.77.1:%d", p))}
}

// Config returns the configuration of the next node.
func (c *Cluster) Config(name string) cluster.Config {
	cfg := cluster.Config{
		Node:        name,
		ClusterName: "bench",
		Keyring:     c.kr,
		JoinTimeout: 300 * time.Millisecond,
		// A sync commit not acknowledged within SyncTimeout fails (503).
		// On this shared 2-CPU box the default 100 ms is not always
		// enough under the benchmark's 32 concurrent requests; 2 s keeps
		// the sync rows measuring cost, not failures.
		SyncTimeout: 2 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	}
	if c.udp {
		cfg.Interface = "lo"
		cfg.Loopback = true
		cfg.Group = c.group
		cfg.TransferAddr = "127.0.0.1:0"
	}
	if len(c.peers) > 0 {
		// Unicast on lo: every node on 127.0.0.1 with its own port (the
		// group's port is the node's unicast port), the full peer list.
		cfg.Group = netip.AddrPortFrom(c.group.Addr(), c.group.Port()+uint16(c.seq))
		cfg.Peers = c.peers
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	return cfg
}

// NewUnicastCluster prepares a cluster of up to size nodes over the UDP
// unicast transport (cluster.Config.Peers) on lo: node i listens on
// 127.0.0.1 and port base+i, and lists every node.
func NewUnicastCluster(size int) *Cluster {
	end := groupPort.Add(int32(size) + 1)
	base := end - int32(size) - 1 // ports base+1 .. base+size, all ≤ end
	c := &Cluster{udp: true, kr: NewKeyring(), group: netip.MustParseAddrPort(fmt.Sprintf("239.255.77.1:%d", base))}
	for i := 1; i <= size; i++ {
		c.peers = append(c.peers, fmt.Sprintf("127.0.0.1:%d", int(base)+i))
	}
	return c
}

// StartTransportCluster starts n nodes over UDP on lo: multicast, or
// unicast with every node listed; mod (if not nil) changes every node's
// config.
func StartTransportCluster(unicast bool, n int, mod func(*cluster.Config)) (*Cluster, error) {
	c := NewUDPCluster()
	if unicast {
		c = NewUnicastCluster(n)
	}
	c.mod = mod
	for range n {
		if _, err := c.AddNode(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Modify sets a hook applied to the config of every node started later.
func (c *Cluster) Modify(f func(*cluster.Config)) { c.mod = f }

// AddNode starts one more node and waits until it is ready and every
// node sees every member.
func (c *Cluster) AddNode() (*cluster.Node, error) {
	c.seq++
	cfg := c.Config(fmt.Sprintf("n%d", c.seq))
	n, err := c.start(cfg)
	if err != nil {
		return nil, err
	}
	c.Nodes = append(c.Nodes, n)
	return n, c.WaitReady(30 * time.Second)
}

func (c *Cluster) start(cfg cluster.Config) (*cluster.Node, error) {
	if c.udp {
		return cluster.Start(cfg)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr, err := c.Net.Join(cluster.TransportConfig(cfg))
	if err != nil {
		ln.Close()
		return nil, err
	}
	return cluster.StartOn(cfg, tr, ln)
}

// StartJoiner starts a node that is not added to c.Nodes and does not
// wait for it (state-transfer timing).
func (c *Cluster) StartJoiner(name string) (*cluster.Node, error) {
	return c.start(c.Config(name))
}

// StartCluster starts n nodes.
func StartCluster(udp bool, n int, mod func(*cluster.Config)) (*Cluster, error) {
	var c *Cluster
	if udp {
		c = NewUDPCluster()
	} else {
		c = NewMemCluster()
	}
	c.mod = mod
	for range n {
		if _, err := c.AddNode(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// WaitReady waits until every node is ready and sees len(c.Nodes) members.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, n := range c.Nodes {
			if !n.Ready() || len(n.Members()) != len(c.Nodes) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster of %d not ready within %s", len(c.Nodes), timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Close()
	}
	c.Nodes = nil
}

// Metric reads one counter or gauge from a node's Prometheus output.
func Metric(n *cluster.Node, name string) float64 {
	var sb strings.Builder
	n.WriteMetrics(&sb)
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, name+" "), &v)
			return v
		}
	}
	return 0
}

// CommitSet commits one OpSet on a session through the store API, as the
// middleware would.
func CommitSet(st replicator.Store, id, key string, val []byte, c replicator.Consistency) error {
	now := time.Now().UnixNano()
	d := &replicator.Delta{
		ID: id, Owner: st.Node(), Epoch: 1,
		Created: now, LastAccess: now, IdleTimeout: int64(30 * time.Minute), Deadline: now + int64(24*time.Hour),
		Ops: []replicator.Op{{Kind: replicator.OpSet, Key: key, Value: val}},
	}
	_, err := st.Commit(context.Background(), d, c)
	return err
}
