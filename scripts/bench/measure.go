package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/internal/hlc"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// LoadTest serves v.H on loopback and drives it with conc keep-alive
// clients for dur, cycling through the cookies (many distinct sessions).
// It returns completed requests per second and the number of failures.
func LoadTest(v *Variant, cookies []string, conc int, dur time.Duration) (float64, int64, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: v.H}
	go srv.Serve(ln)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + ln.Addr().String() + "/"
	var ok, fail atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := w * 104729
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", url, nil)
				if len(cookies) > 0 {
					req.Header.Set("Cookie", cookies[i%len(cookies)])
				}
				i += 13
				resp, err := client.Do(req)
				if err != nil {
					fail.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					fail.Add(1)
				}
			}
		}()
	}
	// Warm up the connections, then count.
	time.Sleep(200 * time.Millisecond)
	ok0 := ok.Load()
	t0 := time.Now()
	time.Sleep(dur)
	n := ok.Load() - ok0
	el := time.Since(t0)
	close(stop)
	wg.Wait()
	return float64(n) / el.Seconds(), fail.Load(), nil
}

// SessionIDs returns n random 192-bit session IDs.
func SessionIDs(n int) []string {
	ids := make([]string, n)
	b := make([]byte, 24)
	for i := range ids {
		rand.Read(b)
		ids[i] = base64.RawURLEncoding.EncodeToString(b)
	}
	return ids
}

// RateResult is one step of the sustainable-rate ramp.
type RateResult struct {
	Target, Achieved float64
	Lost             int // sessions whose last version did not reach every peer within the settle time
	Behind, Repaired float64
	OK               bool
}

// RunRate commits at target updates/s for dur on node 0 (one OpSet of a
// 64-byte value, round robin over ids), then checks every other node
// holds the last version of every session within settle, with no
// "behind" event and no anti-entropy repair.
func RunRate(c *Cluster, ids []string, target float64, dur, settle time.Duration) RateResult {
	src := c.Nodes[0]
	var behind0, rep0 float64
	for _, n := range c.Nodes[1:] {
		behind0 += Metric(n, "hanode_replication_behind_total")
		rep0 += Metric(n, "hanode_anti_entropy_repaired_sessions_total")
	}
	val := make([]byte, 64)
	rand.Read(val)
	done := Pace(context.Background(), target, dur, func(i int) {
		binary.LittleEndian.PutUint64(val, uint64(i))
		if err := CommitSet(src, ids[i%len(ids)], "v", bytes.Clone(val), replicator.Async); err != nil {
			panic(err)
		}
	})
	res := RateResult{Target: target, Achieved: float64(done) / dur.Seconds()}
	deadline := time.Now().Add(settle)
	for {
		res.Lost = 0
		for _, n := range c.Nodes[1:] {
			for _, id := range ids {
				a, b := src.Get(id), n.Get(id)
				if a != nil && (b == nil || b.Version < a.Version) {
					res.Lost++
				}
			}
		}
		if res.Lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range c.Nodes[1:] {
		res.Behind += Metric(n, "hanode_replication_behind_total")
		res.Repaired += Metric(n, "hanode_anti_entropy_repaired_sessions_total")
	}
	res.Behind -= behind0
	res.Repaired -= rep0
	res.OK = res.Lost == 0 && res.Behind == 0 && res.Repaired == 0 && res.Achieved >= 0.95*target
	return res
}

// Pace calls f(i) at rate per second for dur (in 1 ms slots) and returns
// how many calls were made; a slow f lowers the achieved rate.
func Pace(ctx context.Context, rate float64, dur time.Duration, f func(i int)) int {
	t0 := time.Now()
	i := 0
	for {
		el := time.Since(t0)
		if el >= dur || ctx.Err() != nil {
			return i
		}
		due := int(rate * el.Seconds())
		for i < due {
			f(i)
			i++
		}
		time.Sleep(time.Millisecond - el%time.Millisecond)
	}
}

// Lag measures replication lag: every interval, node 0 commits the
// current time on a new probe session, and the lag of that sample is
// measured twice: until the prober, polling node 1's replica, sees the
// write (polled), and until node 1's replica applied it (applied: the
// time node 1 fires the session's creation event, on the goroutine that
// applies it). polled adds the prober's own wake-up delay to applied.
// When load > 0, a background writer commits load updates/s on other
// sessions meanwhile.
func Lag(c *Cluster, samples int, interval time.Duration, load float64, ids []string) (polled, applied []time.Duration, err error) {
	src, dst := c.Nodes[0], c.Nodes[1]
	type seenAt struct {
		id string
		at time.Time
	}
	seen := make(chan seenAt, 16)
	var want atomic.Pointer[string]
	defer want.Store(nil) // the subscription stays; it ignores everything from now on
	dst.Subscribe(func(e replicator.Event) {
		if w := want.Load(); w != nil && e.Kind == replicator.EventCreated && e.ID == *w {
			select {
			case seen <- seenAt{e.ID, time.Now()}:
			default:
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	if load > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := make([]byte, 64)
			Pace(ctx, load, time.Hour, func(i int) {
				binary.LittleEndian.PutUint64(val, uint64(i))
				CommitSet(src, ids[i%len(ids)], "v", bytes.Clone(val), replicator.Async)
			})
		}()
		time.Sleep(300 * time.Millisecond)
	}
	defer func() { cancel(); wg.Wait() }()
	polled = make([]time.Duration, 0, samples)
	applied = make([]time.Duration, 0, samples)
	probes := SessionIDs(samples)
	for _, probe := range probes {
		want.Store(&probe)
		stamp := make([]byte, 8)
		t0 := time.Now()
		binary.LittleEndian.PutUint64(stamp, uint64(t0.UnixNano()))
		if err := CommitSet(src, probe, "t", stamp, replicator.Async); err != nil {
			return nil, nil, err
		}
		spins := 0
		for {
			if s := dst.Get(probe); s != nil && bytes.Equal(s.Attrs.Value("t"), stamp) {
				break
			}
			if time.Since(t0) > 5*time.Second {
				return nil, nil, fmt.Errorf("write not visible after 5 s")
			}
			if spins++; spins < 50 {
				runtime.Gosched()
			} else {
				time.Sleep(20 * time.Microsecond)
			}
		}
		polled = append(polled, time.Since(t0))
		select {
		case s := <-seen:
			if s.id != probe {
				return nil, nil, fmt.Errorf("creation event of %s while waiting for %s", s.id, probe)
			}
			applied = append(applied, s.at.Sub(t0))
		case <-time.After(5 * time.Second):
			return nil, nil, fmt.Errorf("no creation event for a visible write")
		}
		time.Sleep(interval - time.Since(t0)%interval)
	}
	return polled, applied, nil
}

// SleepOvershoot measures how late the process's goroutines run: until
// stop is called, a goroutine sleeps 1 ms at a time and records by how
// much each sleep overran. stop returns the overruns. Their tail is the
// floor under any latency measured meanwhile in the same process: a lag
// sample cannot be shorter than the scheduling delay of the goroutines it
// passes through (on a shared host, mostly other processes' CPU time).
func SleepOvershoot() (stop func() []time.Duration) {
	var mu sync.Mutex
	var out []time.Duration
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			default:
			}
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			mu.Lock()
			out = append(out, time.Since(t0)-time.Millisecond)
			mu.Unlock()
		}
	}()
	return func() []time.Duration {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return out
	}
}

// Percentile returns the p-quantile (0..1) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(p * float64(len(s)-1))
	return s[i]
}

// HeapAlloc returns the live heap after two GCs.
func HeapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// ReplicaMemory commits n sessions, each with one attribute of size
// bytes (random, incompressible: replicas do not compress), to a fresh
// Replica (local=false) or Local store, and returns the heap growth per
// session and the raw bytes per session (attribute key + value).
func ReplicaMemory(n, size int, local bool) (perSession, raw float64) {
	ids := SessionIDs(n)
	before := HeapAlloc()
	var st replicator.Store
	if local {
		st = replicator.NewLocal("n1", replicator.DefaultReplicaConfig())
	} else {
		st = &replicaStore{r: replicator.NewReplica(replicator.DefaultReplicaConfig())}
	}
	for _, id := range ids {
		v := make([]byte, size)
		rand.Read(v)
		if err := CommitSet(st, id, "data", v, replicator.Async); err != nil {
			panic(err)
		}
	}
	after := HeapAlloc()
	runtime.KeepAlive(st)
	runtime.KeepAlive(ids)
	return float64(after-before) / float64(n), float64(len("data") + size)
}

// replicaStore adapts a bare Replica to CommitSet.
type replicaStore struct {
	replicator.Store
	r     *replicator.Replica
	clock hlc.Clock
}

func (s *replicaStore) Node() string { return "n1" }
func (s *replicaStore) Commit(_ context.Context, d *replicator.Delta, _ replicator.Consistency) (replicator.CommitResult, error) {
	return replicator.CommitResult{}, s.r.Commit(d, &s.clock, time.Now().UnixNano())
}

// Transfer loads n sessions of size bytes into a one-node cluster, then
// starts joiners one after the other and returns, for each, the time
// from its start until it is ready and holds every session.
func Transfer(n, size, joiners int) ([]time.Duration, error) {
	c := NewMemCluster()
	src, err := c.AddNode()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ids := SessionIDs(n)
	// Realistic-ish 4 KB values: base64 of random bytes (a token-heavy
	// session), so compression does not flatter the result.
	raw := make([]byte, size*3/4)
	var wg sync.WaitGroup
	var loadErr atomic.Value
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := make([]byte, len(raw))
			for i := w; i < n; i += 2 {
				rand.Read(r)
				v := []byte(base64.StdEncoding.EncodeToString(r))
				if err := CommitSet(src, ids[i], "data", v, replicator.Async); err != nil {
					loadErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := loadErr.Load(); e != nil {
		return nil, e.(error)
	}
	var out []time.Duration
	for j := range joiners {
		t0 := time.Now()
		jn, err := c.StartJoiner(fmt.Sprintf("j%d", j))
		if err != nil {
			return out, err
		}
		for !(jn.Ready() && jn.Len() >= n) {
			if time.Since(t0) > 120*time.Second {
				jn.Close()
				return out, fmt.Errorf("joiner not ready after 120 s (%d sessions)", jn.Len())
			}
			time.Sleep(2 * time.Millisecond)
		}
		out = append(out, time.Since(t0))
		jn.Close()
		waitMembers(src, 1)
	}
	return out, nil
}

func waitMembers(n *cluster.Node, want int) {
	deadline := time.Now().Add(10 * time.Second)
	for len(n.Members()) != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// FirstMemberReady starts one node with the default heartbeat interval and
// join timeout over UDP multicast on lo (or the in-process net) with
// nobody else in its group, and returns the time from the start call
// until it is ready.
func FirstMemberReady(udp bool) (time.Duration, error) {
	var c *Cluster
	if udp {
		c = NewUDPCluster()
	} else {
		c = NewMemCluster()
	}
	c.Modify(func(cfg *cluster.Config) { cfg.JoinTimeout, cfg.HeartbeatInterval = 0, 0 })
	defer c.Close()
	start := time.Now()
	n, err := c.start(c.Config("first"))
	if err != nil {
		return 0, err
	}
	c.Nodes = append(c.Nodes, n)
	for !n.Ready() {
		if time.Since(start) > 30*time.Second {
			return 0, fmt.Errorf("not ready after 30s")
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start), nil
}
