package hanode

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator/cluster"
)

// Node is one node of a hanode cluster running inside an application:
// the session store the `ha` setting chose (a local replica when HA is
// off, the cluster runtime when it is on), the session manager on it, the
// admin API, key reload on SIGHUP and the ordered shutdown on SIGTERM.
// Its methods may be called concurrently.
type Node struct {
	cfg     *Config
	log     *slog.Logger // with the node field
	store   backend
	mgr     *httpsession.Manager
	adminLn net.Listener
	appLn   net.Listener

	draining     atomic.Bool
	appMetrics   *httpMetrics
	adminMetrics *httpMetrics
	adm          *admin
	stopReload   func()
	resp         *respServer // nil when redis-listen is off

	serving   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Sessions returns the session manager: wrap the application's handler
// with its LoadAndSave and use its Get, Put, RenewToken, Destroy, ...
func (n *Node) Sessions() *httpsession.Manager { return n.mgr }

// Config returns the node's settings.
func (n *Node) Config() *Config { return n.cfg }

// Name returns the node name, the route suffix of its session cookies
// ("local" when HA is off and node is not set).
func (n *Node) Name() string { return n.cfg.NodeName() }

// Logger returns the node's logger (its lines carry the node name).
func (n *Node) Logger() *slog.Logger { return n.log }

// Ready reports whether the node serves users: HA off, at once; HA on,
// once it has joined and holds the cluster's sessions; never once it
// drains. GET /readyz answers 200 exactly when Ready is true.
func (n *Node) Ready() bool { return n.adm.ready() }

// Members returns the cluster members this node sees (itself alone when
// HA is off), as GET /members lists them. The caller owns the slice.
func (n *Node) Members() []cluster.MemberInfo { return n.store.Members() }

// Cluster returns the cluster runtime when HA is on (for its Status and
// Members), nil when HA is off.
func (n *Node) Cluster() *cluster.Node {
	c, _ := n.store.(*cluster.Node)
	return c
}

// Drain makes the node unready (GET /readyz answers 503) so that the
// load balancer moves its users; it keeps serving and its sessions stay
// in the cluster. POST /drain and SIGTERM do the same.
func (n *Node) Drain() {
	n.draining.Store(true)
	n.store.Drain()
}

// AppAddr returns the address the application listener is bound to
// (listen; useful when its port is 0).
func (n *Node) AppAddr() net.Addr { return n.appLn.Addr() }

// RedisAddr returns the address the Redis-protocol listener is bound to
// (redis-listen), nil when it is off.
func (n *Node) RedisAddr() net.Addr {
	if n.resp == nil {
		return nil
	}
	return n.resp.ln.Addr()
}

// AdminAddr returns the address the admin listener is bound to (admin).
func (n *Node) AdminAddr() net.Addr { return n.adminLn.Addr() }

// AppListener returns the listener Start bound to the listen address,
// for an application that runs its own server instead of Serve.
func (n *Node) AppListener() net.Listener { return n.appLn }

// AdminListener returns the listener Start bound to the admin address.
func (n *Node) AdminListener() net.Listener { return n.adminLn }

// AdminHandler returns the admin API: GET /livez, /readyz, /members,
// /status, /metrics (with the application's HTTP metrics, see
// Instrument), /sessions, /sessions/{id}, DELETE /sessions/{id},
// POST /drain and, with the pprof setting, /debug/pprof/. Serve serves it
// on the admin address; an application that runs its own servers mounts
// it itself.
func (n *Node) AdminHandler() http.Handler { return n.adminMetrics.wrap(n.adm.handler()) }

// Instrument wraps an application handler so that its requests appear in
// GET /metrics (hanode_http_requests_total{server="app"}, ...) and in the
// in-flight count of GET /status. Serve does it itself.
func (n *Node) Instrument(h http.Handler) http.Handler { return n.appMetrics.wrap(h) }

// closeStore flushes and closes the store once, bounded by
// storeCloseTimeout.
func (n *Node) closeStore(stopping time.Time) error {
	n.closeOnce.Do(func() {
		log := n.log
		closed := make(chan error, 1)
		go func() { closed <- n.store.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				log.Warn("shutdown: store close", "err", err)
			} else {
				log.Info("shutdown: deltas flushed, leave announced", "elapsed", time.Since(stopping).Round(time.Millisecond).String())
			}
		case <-time.After(storeCloseTimeout):
			log.Error("shutdown: the store did not close in time; exiting anyway (peers will see this node as failed)", "timeout", storeCloseTimeout)
			n.closeErr = fmt.Errorf("store did not close within %s", storeCloseTimeout)
		}
	})
	return n.closeErr
}

// Close stops a node that Serve did not run (or that Serve stopped):
// it drains, flushes the store's deltas, leaves the cluster, stops the
// SIGHUP handler and closes the listeners. Sessions stay in the cluster.
func (n *Node) Close() error {
	n.Drain()
	n.resp.close()
	n.stopReload()
	n.adminLn.Close()
	n.appLn.Close()
	return n.closeStore(time.Now())
}

// sessionConfig is cfg.Sessions with the fields the settings set.
func sessionConfig(cfg *Config, idle time.Duration, log *slog.Logger) httpsession.Config {
	sc := cfg.Sessions
	sc.Lifetime = cfg.Lifetime
	sc.IdleTimeout = idle
	sc.Cookie.Name, sc.Cookie.Secure = cfg.CookieName, cfg.CookieSecure
	sc.Consistency = cfg.Consistency
	if sc.Logger == nil {
		sc.Logger = log.With("subsystem", "httpsession")
	}
	return sc
}
