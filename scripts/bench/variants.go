// Package bench compares hanode's httpsession with what users would pick
// instead (scs with its memory store, scs with Redis, gorilla/sessions
// with Redis) and measures replication, memory, state transfer and
// compression. The report program (cmd/report, run by run.sh) prints the
// table; the Go benchmarks in this package guard the hot paths:
//
//	cd scripts/bench && go test -run '^$' -bench . -benchmem
//	REDIS_ADDR=127.0.0.1:6399 go test -run '^$' -bench Middleware  # with Redis variants
package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	redigo "github.com/gomodule/redigo/redis"
	"github.com/gorilla/sessions"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
)

// Variant is one session middleware under test: a handler doing one get
// and one put, and the name of its session cookie.
type Variant struct {
	Name   string
	H      http.Handler
	Cookie string // "" for the bare handler
	Close  func()
	// Store is the hanode store (nil for the others).
	Store replicator.Store
	// Cluster is set for HA variants.
	Cluster *Cluster
}

var body = []byte("ok")

// Bare is the same handler without sessions.
func Bare() *Variant {
	return &Variant{Name: "bare handler (no sessions)", H: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }), Close: func() {}}
}

func hanodeHandler(m *httpsession.Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := m.GetInt(ctx, "n")
		if err := m.Put(ctx, "n", n+1); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(body)
	})
}

// Hanode builds httpsession over st.
func Hanode(name string, st replicator.Store, c replicator.Consistency) *Variant {
	cfg := httpsession.DefaultConfig()
	cfg.Consistency = c
	m, err := httpsession.New(st, cfg)
	if err != nil {
		panic(err)
	}
	return &Variant{Name: name, H: m.LoadAndSave(hanodeHandler(m)), Cookie: cfg.Cookie.Name, Store: st, Close: func() {}}
}

// HanodeLocal is httpsession with HA off.
func HanodeLocal() *Variant {
	return Hanode("hanode, HA off", replicator.NewLocal("n1", replicator.DefaultReplicaConfig()), replicator.Async)
}

// HanodeHA is httpsession on node 1 of an n-node cluster (in-memory
// network, or UDP multicast on lo).
func HanodeHA(udp bool, nodes int, c replicator.Consistency) (*Variant, error) {
	cl, err := StartCluster(udp, nodes, nil)
	if err != nil {
		return nil, err
	}
	mode := "async"
	if c != replicator.Async {
		mode = "sync"
	}
	netw := "in-process net"
	if udp {
		netw = "UDP on lo"
	}
	v := Hanode(fmt.Sprintf("hanode, HA %s, %d nodes, %s", mode, nodes, netw), cl.Nodes[0], c)
	v.Cluster = cl
	v.Close = cl.Close
	return v, nil
}

func scsHandler(m *scs.SessionManager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := m.GetInt(ctx, "n")
		m.Put(ctx, "n", n+1)
		w.Write(body)
	})
}

// SCSMem is scs with its memory store.
func SCSMem() *Variant {
	m := scs.New()
	store := memstore.NewWithCleanupInterval(0)
	m.Store = store
	return &Variant{Name: "scs + memstore", H: m.LoadAndSave(scsHandler(m)), Cookie: m.Cookie.Name, Close: store.StopCleanup}
}

// SCSRedis is scs with its Redis store (redigo pool).
func SCSRedis(addr string) *Variant {
	pool := &redigo.Pool{
		MaxIdle: 128, IdleTimeout: time.Minute,
		Dial: func() (redigo.Conn, error) { return redigo.Dial("tcp", addr) },
	}
	m := scs.New()
	m.Store = redisstore.New(pool)
	return &Variant{Name: "scs + Redis (redisstore, redigo)", H: m.LoadAndSave(scsHandler(m)), Cookie: m.Cookie.Name, Close: func() { pool.Close() }}
}

// GorillaRedis is gorilla/sessions over a Redis store (see gorilla.go).
func GorillaRedis(addr string) *Variant {
	c := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 128, MinIdleConns: 16})
	st := NewGorillaRedisStore(c, []byte("0123456789abcdef0123456789abcdef"))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "gsession")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		n, _ := s.Values["n"].(int)
		s.Values["n"] = n + 1
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(body)
	})
	return &Variant{Name: "gorilla/sessions + Redis (go-redis)", H: h, Cookie: "gsession", Close: func() { c.Close() }}
}

var _ sessions.Store = (*GorillaRedisStore)(nil)

// Prime issues one request per session to h (in parallel) and returns
// the cookies ("name=value").
func Prime(v *Variant, n int) ([]string, error) {
	if v.Cookie == "" {
		return nil, nil
	}
	cookies := make([]string, n)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	const workers = 16
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				rec := httptest.NewRecorder()
				v.H.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
				for _, c := range rec.Result().Cookies() {
					if c.Name == v.Cookie {
						cookies[i] = c.Name + "=" + c.Value
					}
				}
				if cookies[i] == "" {
					mu.Lock()
					firstErr = fmt.Errorf("%s: no session cookie (status %d)", v.Name, rec.Code)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return cookies, firstErr
}

// Parallelism is the goroutines per CPU of the per-request benchmarks:
// enough that variants that wait (Redis round trips, sync acks) are
// measured by throughput, not latency.
var Parallelism = 16

// BenchHandler drives h with one request per iteration, cycling through
// the cookies, from GOMAXPROCS×Parallelism goroutines. ns/op is wall time
// per request at that concurrency (the cost of a request on this machine).
func BenchHandler(b *testing.B, h http.Handler, cookies []string) {
	b.ReportAllocs()
	b.SetParallelism(Parallelism)
	var next sync.Mutex
	start := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		i := start * 7919
		start++
		next.Unlock()
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			r := httptest.NewRequest("GET", "/", nil)
			if len(cookies) > 0 {
				r.Header.Set("Cookie", cookies[i%len(cookies)])
			}
			i += 7
			clear(w.h)
			w.code = 0
			h.ServeHTTP(w, r)
			if w.code >= 400 {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
	b.StopTimer()
}

// discardWriter is a minimal ResponseWriter, so that the benchmark
// measures the middleware rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }
