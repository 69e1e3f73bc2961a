// Package bench compares the per-request cost of session middleware:
// a bare handler, httpsession over a pluggable replicator.Store, and scs
// with its in-memory store. Run:
//
//	cd scripts/bench && go test -run '^$' -bench . -benchmem
package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
)

// sessions is the number of distinct sessions each benchmark cycles
// through (one cookie per session).
const sessions = 4096

// stores lists the replicator.Store variants httpsession runs over. Add a
// cluster (async-replicated) variant here: name and constructor.
var stores = []struct {
	name string
	new  func(b *testing.B) replicator.Store
}{
	{"local", func(b *testing.B) replicator.Store {
		return replicator.NewLocal("n1", replicator.DefaultReplicaConfig())
	}},
}

// run drives h with one request per iteration, cycling through the
// prepared cookies, in parallel.
func run(b *testing.B, h http.Handler, cookies []string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			r := httptest.NewRequest("GET", "/", nil)
			if cookies != nil {
				r.Header.Set("Cookie", cookies[i%len(cookies)])
			}
			i += 7
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
}

// discardWriter is a minimal ResponseWriter, so that the benchmark
// measures the middleware rather than the recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// prime issues one request per session to h and returns the cookies.
func prime(b *testing.B, h http.Handler, name string) []string {
	cookies := make([]string, sessions)
	for i := range cookies {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		for _, c := range rec.Result().Cookies() {
			if c.Name == name {
				cookies[i] = name + "=" + c.Value
			}
		}
		if cookies[i] == "" {
			b.Fatal("no session cookie")
		}
	}
	return cookies
}

var body = []byte("ok")

func BenchmarkBare(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	run(b, h, nil)
}

// The handler every session benchmark runs: one get and one put.
func hanodeHandler(m *httpsession.Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := m.GetInt(ctx, "n")
		if err := m.Put(ctx, "n", n+1); err != nil {
			panic(err)
		}
		w.Write(body)
	})
}

func scsHandler(m *scs.SessionManager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := m.GetInt(ctx, "n")
		m.Put(ctx, "n", n+1)
		w.Write(body)
	})
}

func BenchmarkHTTPSession(b *testing.B) {
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			m, err := httpsession.New(s.new(b), httpsession.DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			h := m.LoadAndSave(hanodeHandler(m))
			run(b, h, prime(b, h, "hanode_session"))
		})
	}
}

func BenchmarkSCSMemstore(b *testing.B) {
	m := scs.New()
	store := memstore.NewWithCleanupInterval(0)
	defer store.StopCleanup()
	m.Store = store
	h := m.LoadAndSave(scsHandler(m))
	run(b, h, prime(b, h, m.Cookie.Name))
}
