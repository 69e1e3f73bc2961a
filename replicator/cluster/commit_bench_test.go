package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// benchCluster starts n nodes over a lossless in-memory network (state
// transfer over in-memory streams) and waits until each sees every other.
func benchCluster(b *testing.B, n int) []*Node {
	b.Helper()
	kf, err := multicast.GenerateKeyFile()
	if err != nil {
		b.Fatal(err)
	}
	kr, err := multicast.ParseKeyring([]byte(kf))
	if err != nil {
		b.Fatal(err)
	}
	mn := multicast.NewMemNetwork(1)
	streams := &memStreams{}
	var nodes []*Node
	for i := range n {
		cfg := testConfig(fmt.Sprintf("n%d", i+1), kr)
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.AntiEntropyInterval, cfg.HeartbeatInterval = 0, 0 // the defaults
		node, err := newNode(cfg)
		if err != nil {
			b.Fatal(err)
		}
		node.cfg.Dial = streams.dial
		tr, err := mn.Join(node.transportConfig())
		if err != nil {
			b.Fatal(err)
		}
		var ln net.Listener = streams.listen()
		if err := node.startWith(tr, ln); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, node)
	}
	b.Cleanup(func() {
		for _, node := range nodes {
			node.crash()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, node := range nodes {
		for !node.Ready() || len(node.alivePeers()) != n-1 {
			if time.Now().After(deadline) {
				b.Fatalf("%s: not ready with %d peers", node.Node(), n-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes
}

// caughtUp waits until the other nodes applied every delta node 1 sent,
// so that cpu-ns/op holds the receivers' work of async commits too.
func caughtUp(b *testing.B, nodes []*Node) {
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes[1:] {
		for n.stats.deltasApplied.Load() < nodes[0].stats.deltasSent.Load() {
			if time.Now().After(deadline) {
				b.Fatalf("%s applied %d of %d deltas", n.Node(), n.stats.deltasApplied.Load(), nodes[0].stats.deltasSent.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommit commits one 64-byte attribute per op on node 1 of three:
// "seq" from one goroutine (ns/op is the commit's latency; p50/p99 are
// reported), "par" from 32 goroutines (ns/op is the wall time per commit
// at that concurrency, on the CPUs the three nodes share). cpu-ns/op is
// the CPU time of all three nodes per commit, until the receivers have
// applied everything (the robust figure on a loaded machine); deltas/msg
// is how many deltas shared one transport message.
func BenchmarkCommit(b *testing.B) {
	for _, c := range []replicator.Consistency{replicator.Async, replicator.Sync} {
		b.Run(c.String()+"/seq", func(b *testing.B) {
			nodes := benchCluster(b, 3)
			val := make([]byte, 64)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				t0 := time.Now()
				if _, err := write(nodes[0], sid("s", i%1024), c, replicator.Op{Kind: replicator.OpSet, Key: "k", Value: val}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			caughtUp(b, nodes)
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
		b.Run(c.String()+"/par", func(b *testing.B) {
			nodes := benchCluster(b, 3)
			val := make([]byte, 64)
			var mu sync.Mutex
			next := 0
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				w := next
				next++
				mu.Unlock()
				for i := 0; pb.Next(); i++ {
					if _, err := write(nodes[0], sid(fmt.Sprint("w", w, "-"), i%128), c, replicator.Op{Kind: replicator.OpSet, Key: "k", Value: val}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			caughtUp(b, nodes)
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(nodes[0].stats.deltasSent.Load())/float64(nodes[0].stats.batchesSent.Load()), "deltas/msg")
		})
	}
}
