package redisstore

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/hanode/hanode/replicator"
)

func defaultDialer(timeout time.Duration) net.Dialer {
	return net.Dialer{Timeout: timeout, KeepAlive: time.Second}
}

func sortStrings(s []string) { slices.Sort(s) }

// ping checks every Redis master and counts its online replicas: the
// fewest any master has goes to s.replicas, and with RequireReplica a
// master without one makes the store not ready (s.noReplica).
func (s *Store) ping(ctx context.Context) error {
	ms, err := s.masters(ctx)
	if err != nil {
		return err
	}
	fewest, lonely := -1, ""
	for addr, n := range ms {
		info, err := n.Do(ctx, n.B().Info().Section("replication").Build()).ToString()
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		k := strings.Count(info, "state=online")
		if fewest < 0 || k < fewest {
			fewest = k
		}
		if k == 0 && lonely == "" {
			lonely = addr
		}
	}
	s.replicas.Store(int64(max(fewest, 0)))
	reason := ""
	if s.cfg.RequireReplica && lonely != "" {
		reason = "redis master " + lonely + " has no online replica (consistency sync needs one)"
	}
	s.noReplica.Store(&reason)
	return nil
}

// replicaProblem returns why sync commits cannot succeed, or "".
func (s *Store) replicaProblem() string {
	if p := s.noReplica.Load(); p != nil {
		return *p
	}
	return ""
}

// checkHealth pings Redis and records the outcome (every HealthInterval).
func (s *Store) checkHealth() {
	ctx, cancel := s.opCtx()
	err := s.ping(ctx)
	cancel()
	if err != nil {
		s.fail("ping", err)
	} else {
		s.ok()
	}
}

// Ready reports whether the store works: the last operation or health
// check (every HealthInterval) succeeded and, with RequireReplica, every
// master has an online replica.
func (s *Store) Ready() bool {
	return s.up.Load() && !s.closed.Load() && s.replicaProblem() == ""
}

// Err returns the last failure while the store is not ready, else nil.
func (s *Store) Err() error {
	if s.up.Load() {
		if p := s.replicaProblem(); p != "" {
			return fmt.Errorf("%w: %s", ErrNoReplica, p)
		}
		return nil
	}
	if o := s.lastErr.Load(); o != nil {
		return fmt.Errorf("%w: %s at %s: %v", ErrUnavailable, o.op, o.at.UTC().Format(time.RFC3339), o.err)
	}
	return nil
}

// masters returns a client per master node, by address. It never
// connects to a replica: a replica's connection would report every write
// replicated to it as a change, and empty the near cache.
func (s *Store) masters(ctx context.Context) (map[string]rueidis.Client, error) {
	nodes := s.c.Nodes()
	if s.c.Mode() != rueidis.ClientModeCluster {
		return nodes, nil
	}
	slots, err := s.c.Do(ctx, s.c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, err
	}
	out := map[string]rueidis.Client{}
	for _, sl := range slots {
		r, err := sl.ToArray()
		if err != nil || len(r) < 3 {
			continue
		}
		m, err := r[2].ToArray()
		if err != nil || len(m) < 2 {
			continue
		}
		host, _ := m[0].ToString()
		port, _ := m[1].AsInt64()
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		if n, ok := nodes[addr]; ok {
			out[addr] = n
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no master among the %d known nodes", len(nodes))
	}
	return out, nil
}

// scan calls fn with every session ID on every master until fn returns
// false.
func (s *Store) scan(ctx context.Context, fn func(id string) bool) error {
	ms, err := s.masters(ctx)
	if err != nil {
		return s.fail("scan", err)
	}
	pre := s.cfg.Prefix + "s:{"
	for _, n := range ms {
		var cursor uint64
		for {
			e, err := n.Do(ctx, n.B().Scan().Cursor(cursor).Match(pre+"*").Count(1000).Type("hash").Build()).AsScanEntry()
			if err != nil {
				return s.fail("scan", err)
			}
			for _, k := range e.Elements {
				id := strings.TrimSuffix(strings.TrimPrefix(k, pre), "}")
				if !fn(id) {
					return nil
				}
			}
			if e.Cursor == 0 {
				break
			}
			cursor = e.Cursor
		}
	}
	return nil
}

// Range calls fn with the ID of every session in Redis until fn returns
// false (a SCAN of every master: meant for admin tools, not requests).
func (s *Store) Range(fn func(id string) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.cfg.Timeout)
	defer cancel()
	_ = s.scan(ctx, fn)
}

// Len returns the number of sessions in Redis: a count by SCAN of every
// master, redone in the background when the last one is older than
// CountInterval (the first call counts at once), so it is approximate:
// MaxActive uses it, and destroyed sessions count until their tombstone
// expires. During an outage it returns the last count. It never waits
// for Redis after the first count (/readyz and /status call it).
func (s *Store) Len() int {
	s.lenMu.Lock()
	n, at := s.lenN, s.lenAt
	start := time.Since(at) >= s.cfg.CountInterval && !s.lenBusy && s.Ready()
	if start {
		s.lenBusy = true
	}
	s.lenMu.Unlock()
	if !start {
		return n
	}
	if at.IsZero() {
		return s.count()
	}
	go s.count()
	return n
}

func (s *Store) count() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*s.cfg.Timeout)
	defer cancel()
	n := 0
	err := s.scan(ctx, func(string) bool { n++; return true })
	s.lenMu.Lock()
	defer s.lenMu.Unlock()
	s.lenBusy = false
	if err != nil {
		return s.lenN
	}
	s.lenN, s.lenAt = n, time.Now()
	return n
}

// Sessions returns every live session (admin listings), read in
// pipelined batches straight from Redis: a listing does not fill the near
// cache that serves requests.
func (s *Store) Sessions() []*replicator.Session {
	var ids []string
	s.Range(func(id string) bool { ids = append(ids, id); return true })
	out := make([]*replicator.Session, 0, len(ids))
	ctx, cancel := context.WithTimeout(context.Background(), 30*s.cfg.Timeout)
	defer cancel()
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 256)]
		ids = ids[len(batch):]
		cmds := make(rueidis.Commands, len(batch))
		for i, id := range batch {
			cmds[i] = s.c.B().Hgetall().Key(s.key(id)).Build()
		}
		for i, r := range s.c.DoMulti(ctx, cmds...) {
			m, err := r.AsStrMap()
			if err != nil {
				s.fail("scan", err)
				return out
			}
			if ss := parse(batch[i], m); ss != nil {
				out = append(out, ss)
			}
		}
	}
	return out
}

type stats struct {
	commits, commitErrors, getErrors, indexErrors atomic.Uint64
	touchErrors, scanErrors, pingErrors           atomic.Uint64
	notReplicated, touches                        atomic.Uint64
	cacheHits, cacheMisses                        atomic.Uint64
	other                                         atomic.Uint64
}

func (st *stats) errors(op string) *atomic.Uint64 {
	switch op {
	case "touch":
		return &st.touchErrors
	case "scan":
		return &st.scanErrors
	case "ping":
		return &st.pingErrors
	case "index":
		return &st.indexErrors
	}
	return &st.other
}

// Stats is a snapshot of the store's counters.
type Stats struct {
	Commits       uint64 // commits written
	CommitErrors  uint64 // commits that failed to reach Redis
	GetErrors     uint64 // reads that failed to reach Redis
	IndexErrors   uint64 // principal-index updates or reads that failed
	TouchErrors   uint64 // batched access writes that failed (retried)
	PingErrors    uint64 // failed health checks
	ScanErrors    uint64 // failed listings (Len, Range)
	NotReplicated uint64 // Sync/SyncAll commits no replica acknowledged in time
	Touches       uint64 // accesses recorded
	CacheHits     uint64 // reads served by the near cache
	CacheMisses   uint64 // reads that went to Redis
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := &s.st
	return Stats{
		Commits: st.commits.Load(), CommitErrors: st.commitErrors.Load(), GetErrors: st.getErrors.Load(),
		IndexErrors: st.indexErrors.Load(), TouchErrors: st.touchErrors.Load(), PingErrors: st.pingErrors.Load(),
		ScanErrors: st.scanErrors.Load(), NotReplicated: st.notReplicated.Load(), Touches: st.touches.Load(),
		CacheHits: st.cacheHits.Load(), CacheMisses: st.cacheMisses.Load(),
	}
}

// WriteMetrics writes the store's metrics in the Prometheus text format
// (prefix hanode_store_redis_).
func (s *Store) WriteMetrics(w io.Writer) {
	st := s.Stats()
	up := 0
	if s.Ready() {
		up = 1
	}
	fmt.Fprintf(w, "# HELP hanode_store_redis_up Whether the last Redis operation or health check succeeded.\n# TYPE hanode_store_redis_up gauge\nhanode_store_redis_up %d\n", up)
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP hanode_store_redis_%s %s\n# TYPE hanode_store_redis_%s counter\nhanode_store_redis_%s %d\n", name, help, name, name, v)
	}
	counter("commits_total", "Session commits written to Redis.", st.Commits)
	counter("cache_hits_total", "Session reads served by the near cache.", st.CacheHits)
	counter("cache_misses_total", "Session reads that went to Redis.", st.CacheMisses)
	counter("touches_total", "Accesses recorded (written in batches).", st.Touches)
	counter("not_replicated_total", "Sync commits that no Redis replica acknowledged in time.", st.NotReplicated)
	fmt.Fprintf(w, "# HELP hanode_store_redis_errors_total Operations that failed to reach Redis, by operation.\n# TYPE hanode_store_redis_errors_total counter\n")
	for _, e := range []struct {
		op string
		v  uint64
	}{{"commit", st.CommitErrors}, {"get", st.GetErrors}, {"index", st.IndexErrors}, {"touch", st.TouchErrors}, {"ping", st.PingErrors}, {"scan", st.ScanErrors}} {
		fmt.Fprintf(w, "hanode_store_redis_errors_total{op=%q} %d\n", e.op, e.v)
	}
}
