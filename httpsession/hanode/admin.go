package hanode

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/internal/buildinfo"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
	"github.com/hanode/hanode/replicator/resp"
)

// admin serves the operator API on --admin.
type admin struct {
	cfg      *Config
	store    backend
	log      *slog.Logger
	draining *atomic.Bool
	metrics  []*httpMetrics
	started  time.Time
	resp     *resp.Engine // nil when redis-listen is off
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// appInFlight counts the application requests being served.
func (a *admin) appInFlight() int64 {
	var n int64
	for _, m := range a.metrics {
		if m.server == "app" {
			n += m.inFlight.Load()
		}
	}
	return n
}

func (a *admin) ready() bool { return a.store.Ready() && !a.draining.Load() }

// replicationOf is /status's "replication": the store's, or "off" when HA
// is off (a local store replicates nothing).
func replicationOf(cfg *Config, st cluster.Status) string {
	if !cfg.HA {
		return "off"
	}
	return st.Replication
}

// notReadyReason is /status's "not_ready_reason": "" when ready.
func notReadyReason(a *admin, st cluster.Status) string {
	switch {
	case a.ready():
		return ""
	case a.draining.Load() || st.Draining:
		return "draining"
	case st.NotReadyReason != "":
		return st.NotReadyReason
	}
	return "joining or receiving the cluster's sessions"
}

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case a.draining.Load() || a.store.Status().Draining:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
		case !a.store.Ready():
			reason := a.store.Status().NotReadyReason
			if reason == "" {
				reason = "joining or receiving the cluster's sessions"
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + reason + "\n"))
		default:
			_, _ = w.Write([]byte("ready\n"))
		}
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		ms := a.store.Members()
		if ms == nil {
			ms = []memberJSON{}
		}
		writeJSON(w, http.StatusOK, ms)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := a.store.Status()
		build := buildinfo.Read()
		writeJSON(w, http.StatusOK, map[string]any{
			"node":     a.cfg.NodeName(),
			"id":       st.ID,
			"version":  a.cfg.version(),
			"ha":       a.cfg.HA,
			"cluster":  a.cfg.Cluster,
			"ready":    a.ready(),
			"draining": a.draining.Load() || st.Draining,
			"sessions": a.store.Len(),
			"members":  st.Members,
			"view_id":  st.ViewID,
			"uptime":   time.Since(a.started).Round(time.Second).String(),
			"listen":   a.cfg.Listen,

			"phase":             st.Phase,
			"transfer_received": st.TransferReceived,
			"transfer_total":    st.TransferTotal,
			"pending_deltas":    st.PendingDeltas,
			"in_flight":         a.appInFlight(),

			// Replication health: "async", or for sync and sync-all
			// "ok", "failing" (not ready: no peer acknowledges) or
			// "lone" (alone, accepting writes unreplicated).
			"consistency":      a.cfg.Consistency.String(),
			"lone_survivor":    a.cfg.LoneSurvivor.String(),
			"replication":      replicationOf(a.cfg, st),
			"not_ready_reason": notReadyReason(a, st),

			// The build: commit, Go version, the wire protocol versions
			// sent and accepted; see `hanode version`.
			"commit":              build.Commit,
			"go_version":          build.GoVersion,
			"wire_version":        build.WireVersion,
			"wire_versions":       build.WireVersions,
			"membership_version":  build.MembershipVersion,
			"membership_versions": build.MembershipVersions,
		})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeDaemonMetrics(w, a.cfg.version(), a.cfg.NodeName(), a.ready(), a.draining.Load(), a.store.Len(), a.metrics...)
		a.store.WriteMetrics(w)
		if a.resp != nil {
			a.resp.WriteMetrics(w)
		}
	})
	mux.Handle("GET /sessions", a.protect(http.HandlerFunc(a.listSessions)))
	mux.Handle("GET /sessions/{id}", a.protect(http.HandlerFunc(a.showSession)))
	mux.Handle("DELETE /sessions/{id}", a.protectMutation(http.HandlerFunc(a.killSession)))
	mux.Handle("POST /drain", a.protectMutation(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.draining.Store(true)
		a.store.Drain()
		a.log.Info("draining on request of the admin API", "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("draining: /readyz now answers 503; sessions stay in the cluster\n"))
	})))
	if a.cfg.Pprof {
		mux.Handle("/debug/pprof/", a.protect(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", a.protect(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", a.protect(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", a.protect(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", a.protect(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// authenticated reports whether the request carries the admin token.
func (a *admin) authenticated(r *http.Request) bool {
	if a.cfg.AdminToken == "" {
		return false
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.AdminToken)) == 1
}

// protect guards the endpoints that expose sessions (listing, show,
// pprof); protectMutation those that change the node or a session
// (DELETE /sessions/..., POST /drain). With a token configured, the token
// is required. Without one, they answer only on a loopback admin address,
// to a loopback peer, for a Host header that names a loopback host (a
// page that rebinds its DNS name to 127.0.0.1 is refused); a mutation
// also needs a same-origin request: an Origin header, when present, must
// be this very address and Sec-Fetch-Site must not say cross-site, so
// that a web page open in a local browser cannot drain the node or kill
// sessions.
func (a *admin) protect(h http.Handler) http.Handler { return a.guard(h, false) }

func (a *admin) protectMutation(h http.Handler) http.Handler { return a.guard(h, true) }

func (a *admin) guard(h http.Handler, mutation bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case a.cfg.AdminToken != "":
			if !a.authenticated(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hanode"`)
				http.Error(w, "admin token required (Authorization: Bearer ...)", http.StatusUnauthorized)
				return
			}
		case !a.cfg.AdminIsLoopback():
			http.Error(w, "refused: the admin address is not loopback and no --admin-token is configured", http.StatusForbidden)
			return
		default:
			if why := localRequestProblem(r, mutation); why != "" {
				if a.log != nil {
					a.log.Warn("admin request refused", "path", r.URL.Path, "method", r.Method, "remote", r.RemoteAddr, "reason", why)
				}
				http.Error(w, "refused: "+why+" (without --admin-token only same-origin requests from this host are served)", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// localRequestProblem says why a tokenless request on a loopback admin
// address is refused, or "" when it is allowed.
func localRequestProblem(r *http.Request, mutation bool) string {
	if !isLoopbackAddr(r.RemoteAddr) {
		return "the peer is not on loopback"
	}
	host := r.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	if !isLoopbackAddr(host) {
		return "the Host header does not name a loopback address"
	}
	if !mutation {
		return ""
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		return "cross-origin request"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return "cross-site request"
	}
	return ""
}

// SessionJSON is one session as GET /sessions and GET /sessions/{id} of
// the admin API describe it.
type SessionJSON struct {
	Hash       string    `json:"hash"`         // replicator.ShortHash of the ID: the name to display
	ID         string    `json:"id,omitempty"` // only for requests authenticated with the admin token
	Owner      string    `json:"owner"`        // the node that served it last
	Attrs      int       `json:"attrs"`        // number of live attributes
	Epoch      uint32    `json:"epoch"`        // takeover epoch
	Version    uint64    `json:"version"`      // commits in this epoch
	Created    time.Time `json:"created"`      // first commit
	LastAccess time.Time `json:"last_access"`  // last request (touch)
}

// SessionList is the answer of GET /sessions.
type SessionList struct {
	Node     string        `json:"node"`     // the answering node
	Count    int           `json:"count"`    // sessions listed (the store's count when it cannot list them)
	Sessions []sessionJSON `json:"sessions"` // most recently used first
}

type (
	sessionJSON = SessionJSON
	sessionList = SessionList
)

func liveAttrs(s *replicator.Session) int {
	n := 0
	for _, a := range s.Attrs.All() {
		if !a.Deleted {
			n++
		}
	}
	return n
}

func (a *admin) describe(s *replicator.Session, withID bool) sessionJSON {
	j := sessionJSON{
		Hash: replicator.ShortHash(s.ID), Owner: s.Owner, Attrs: liveAttrs(s),
		Epoch: s.Epoch, Version: s.Version,
		Created: time.Unix(0, s.Created).UTC(), LastAccess: time.Unix(0, s.LastAccess).UTC(),
	}
	if withID {
		j.ID = s.ID
	}
	return j
}

func (a *admin) listSessions(w http.ResponseWriter, r *http.Request) {
	withID := a.authenticated(r)
	all := a.store.Sessions()
	out := sessionList{Node: a.cfg.NodeName(), Sessions: make([]sessionJSON, 0, len(all))}
	for _, s := range all {
		if s == nil || s.Destroyed {
			continue
		}
		out.Sessions = append(out.Sessions, a.describe(s, withID))
	}
	sort.Slice(out.Sessions, func(i, j int) bool {
		return out.Sessions[i].LastAccess.After(out.Sessions[j].LastAccess)
	})
	out.Count = len(out.Sessions)
	if all == nil {
		out.Count = a.store.Len()
	}
	writeJSON(w, http.StatusOK, out)
}

// find resolves a session by its raw ID (without or with route) or by
// its hash as listed by GET /sessions.
func (a *admin) find(ref string) *replicator.Session {
	id := ref
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		id = id[:i]
	}
	if s := a.store.Get(id); s != nil {
		return s
	}
	for _, s := range a.store.Sessions() {
		if s != nil && !s.Destroyed && replicator.ShortHash(s.ID) == ref {
			return s
		}
	}
	return nil
}

func (a *admin) showSession(w http.ResponseWriter, r *http.Request) {
	s := a.find(r.PathValue("id"))
	if s == nil {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	type attr struct {
		Key   string `json:"key"`
		Bytes int    `json:"bytes"`
		Node  string `json:"written_by"`
	}
	attrs := []attr{}
	for k, v := range s.Attrs.All() {
		if !v.Deleted {
			attrs = append(attrs, attr{Key: k, Bytes: len(v.Value), Node: v.Stamp.Node})
		}
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
	d := a.describe(s, a.authenticated(r))
	var deadline *time.Time
	if s.Deadline != 0 {
		t := time.Unix(0, s.Deadline).UTC()
		deadline = &t
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"session":      d,
		"idle_timeout": time.Duration(s.IdleTimeout).String(),
		"deadline":     deadline,
		"principal":    s.Principal != "",
		"attributes":   attrs,
	})
}

func (a *admin) killSession(w http.ResponseWriter, r *http.Request) {
	s := a.find(r.PathValue("id"))
	if s == nil {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	if ok, err := replicator.DestroyID(r.Context(), a.store, s.ID, time.Now().UnixNano()); !ok || err != nil {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	a.log.Info("session killed by the admin API", "session", replicator.ShortHash(s.ID), "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("killed " + replicator.ShortHash(s.ID) + "\n"))
}
