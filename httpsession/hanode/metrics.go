package hanode

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/internal/buildinfo"
)

// httpMetrics counts the requests of one HTTP server (app or admin).
// Labels are bounded: server, method class and status code.
type httpMetrics struct {
	server   string
	inFlight atomic.Int64

	mu       sync.Mutex
	requests map[[2]string]uint64 // method, code → count
	buckets  []uint64             // cumulative per durationBuckets
	sum      float64
	count    uint64
}

var durationBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

func newHTTPMetrics(server string) *httpMetrics {
	return &httpMetrics{server: server, requests: map[[2]string]uint64{}, buckets: make([]uint64, len(durationBuckets))}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.code == 0 {
			w.code = http.StatusOK
		}
		f.Flush()
	}
}

func methodClass(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
		return m
	}
	return "OTHER"
}

// wrap counts every request h serves.
func (m *httpMetrics) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Add(1)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			m.inFlight.Add(-1)
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			d := time.Since(start).Seconds()
			m.mu.Lock()
			m.requests[[2]string{methodClass(r.Method), strconv.Itoa(code)}]++
			for i, b := range durationBuckets {
				if d <= b {
					m.buckets[i]++
				}
			}
			m.sum += d
			m.count++
			m.mu.Unlock()
		}()
		h.ServeHTTP(sw, r)
	})
}

var processStart = time.Now()

// writeDaemonMetrics writes the daemon's own metrics in Prometheus text
// format: build, process and HTTP servers. The store appends its own.
func writeDaemonMetrics(w io.Writer, version, node string, ready, draining bool, sessions int, servers ...*httpMetrics) {
	fmt.Fprintf(w, "# HELP hanode_build_info Build information; the value is always 1.\n# TYPE hanode_build_info gauge\n")
	build := buildinfo.Read()
	fmt.Fprintf(w, "hanode_build_info{version=%q,go_version=%q,node=%q,commit=%q,wire_version=\"%d\",wire_versions=%q} 1\n", version, runtime.Version(), node, build.Commit, build.WireVersion, buildinfo.FormatVersions(build.WireVersions))
	fmt.Fprintf(w, "# HELP hanode_process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE hanode_process_start_time_seconds gauge\n")
	fmt.Fprintf(w, "hanode_process_start_time_seconds %d\n", processStart.Unix())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "# HELP hanode_process_goroutines Number of goroutines.\n# TYPE hanode_process_goroutines gauge\nhanode_process_goroutines %d\n", runtime.NumGoroutine())
	fmt.Fprintf(w, "# HELP hanode_process_heap_bytes Bytes of allocated heap objects.\n# TYPE hanode_process_heap_bytes gauge\nhanode_process_heap_bytes %d\n", ms.HeapAlloc)
	fmt.Fprintf(w, "# HELP hanode_process_gc_cycles_total Completed GC cycles.\n# TYPE hanode_process_gc_cycles_total counter\nhanode_process_gc_cycles_total %d\n", ms.NumGC)
	fmt.Fprintf(w, "# HELP hanode_admin_ready 1 when /readyz answers 200.\n# TYPE hanode_admin_ready gauge\nhanode_admin_ready %d\n", b2i(ready))
	fmt.Fprintf(w, "# HELP hanode_admin_draining 1 once the node drains (SIGTERM or POST /drain).\n# TYPE hanode_admin_draining gauge\nhanode_admin_draining %d\n", b2i(draining))
	fmt.Fprintf(w, "# HELP hanode_app_sessions Live sessions in this node's replica.\n# TYPE hanode_app_sessions gauge\nhanode_app_sessions %d\n", sessions)

	fmt.Fprintf(w, "# HELP hanode_http_requests_total HTTP requests served, by server, method and status code.\n# TYPE hanode_http_requests_total counter\n")
	for _, s := range servers {
		s.mu.Lock()
		keys := make([][2]string, 0, len(s.requests))
		for k := range s.requests {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i][0] != keys[j][0] {
				return keys[i][0] < keys[j][0]
			}
			return keys[i][1] < keys[j][1]
		})
		for _, k := range keys {
			fmt.Fprintf(w, "hanode_http_requests_total{server=%q,method=%q,code=%q} %d\n", s.server, k[0], k[1], s.requests[k])
		}
		s.mu.Unlock()
	}
	fmt.Fprintf(w, "# HELP hanode_http_in_flight_requests HTTP requests being served.\n# TYPE hanode_http_in_flight_requests gauge\n")
	for _, s := range servers {
		fmt.Fprintf(w, "hanode_http_in_flight_requests{server=%q} %d\n", s.server, s.inFlight.Load())
	}
	fmt.Fprintf(w, "# HELP hanode_http_request_duration_seconds Time to serve an HTTP request.\n# TYPE hanode_http_request_duration_seconds histogram\n")
	for _, s := range servers {
		s.mu.Lock()
		for i, b := range durationBuckets {
			fmt.Fprintf(w, "hanode_http_request_duration_seconds_bucket{server=%q,le=%q} %d\n", s.server, strconv.FormatFloat(b, 'g', -1, 64), s.buckets[i])
		}
		fmt.Fprintf(w, "hanode_http_request_duration_seconds_bucket{server=%q,le=\"+Inf\"} %d\n", s.server, s.count)
		fmt.Fprintf(w, "hanode_http_request_duration_seconds_sum{server=%q} %g\n", s.server, s.sum)
		fmt.Fprintf(w, "hanode_http_request_duration_seconds_count{server=%q} %d\n", s.server, s.count)
		s.mu.Unlock()
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
