package hanode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator/cluster"
)

// newBaseLogger builds the process logger: cfg.Logger, or text or JSON on
// w. It has no node field, for the cluster runtime, which adds it itself
// (a field twice is a duplicate JSON key); the node's other loggers add it.
func newBaseLogger(cfg *Config, w io.Writer) *slog.Logger {
	if cfg.Logger != nil {
		return cfg.Logger
	}
	if w == nil {
		w = os.Stderr
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h)
}

// openStore returns the session store: the cluster runtime when HA is on,
// a local-only replica (no network at all) when it is off, and the
// function that stops its SIGHUP handler.
// log is the base logger (without the node field: the runtime adds it).
func openStore(cfg *Config, log *slog.Logger) (backend, func(), error) {
	if cfg.Store == StoreRedis { // redis.go
		stop := logHangups(log.With("node", cfg.NodeName()))
		b, err := openRedisStore(cfg, log.With("node", cfg.NodeName()))
		if err != nil {
			stop()
			return nil, nil, err
		}
		return b, stop, nil
	}
	if !cfg.HA {
		stop := logHangups(log.With("node", cfg.NodeName()))
		return newLocalBackend(cfg.NodeName()), stop, nil
	}
	keys, err := multicast.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		_, where := cfg.Source("key-file")
		return nil, nil, fmt.Errorf("%w: key-file (%s): %v", ErrConfig, where, err)
	}
	stopReload := startKeyReload(cfg.KeyFile, keys, log.With("node", cfg.NodeName(), "subsystem", "keys")) // SIGHUP: reload.go
	node, err := cluster.Start(cluster.Config{
		Node:             cfg.Node,
		ClusterName:      cfg.Cluster,
		Group:            cfg.Group,
		Interface:        cfg.Interface,
		TTL:              cfg.TTL,
		Loopback:         cfg.Loopback,
		Peers:            cfg.Peers,
		Discovery:        cfg.Discovery,
		Keyring:          keys,
		Consistency:      cfg.Consistency,
		SyncTimeout:      cfg.SyncTimeout,
		LoneSurvivor:     cfg.LoneSurvivor,
		SnapshotFile:     cfg.Snapshot,
		SnapshotInterval: cfg.SnapshotEvery,
		Logger:           log.With("subsystem", "cluster"),
	})
	if err != nil {
		stopReload()
		return nil, nil, fmt.Errorf("join the cluster: %w", err)
	}
	return node, stopReload, nil
}

// Start validates cfg and starts the node: it binds the listen and admin
// addresses (a port in use fails before the node joins), answers SIGHUP
// (HA on: reloads the key file; HA off: logs it), opens the store (HA on:
// joins the cluster; the node is ready once it holds the cluster's
// sessions, see Ready) and creates the session manager. Serve then serves
// the application; Close stops a node that Serve did not run.
//
// An error wraps ErrConfig when the settings are wrong (missing node,
// interface or key-file with HA on, an unreadable key file, ...).
func Start(cfg *Config) (*Node, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil Config (use Load, FromFlags or FromEnv)", ErrConfig)
	}
	if cfg.values == nil {
		return nil, fmt.Errorf("%w: Config not made by Load, FromFlags or FromEnv", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := newBaseLogger(cfg, cfg.LogOutput)
	log := base.With("node", cfg.NodeName())
	if cfg.HA && !cfg.AdminIsLoopback() && cfg.AdminToken == "" {
		log.Warn("admin address is not loopback and no admin-token is set: session listing and kill are refused", "admin", cfg.Admin)
	}
	// Bind both listeners first: a port in use fails before joining.
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	appLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		adminLn.Close()
		return nil, fmt.Errorf("app listener: %w", err)
	}
	respLn, err := listenRESP(cfg)
	if err != nil {
		adminLn.Close()
		appLn.Close()
		return nil, err
	}
	closeRESPLn := func() {
		if respLn != nil {
			respLn.Close()
		}
	}

	store, stopReload, err := openStore(cfg, base)
	if err != nil {
		adminLn.Close()
		appLn.Close()
		closeRESPLn()
		return nil, err
	}
	idle := cfg.IdleTimeout
	if idle == 0 {
		idle = -1 // httpsession: negative means no idle timeout
	}
	mgr, err := httpsession.New(store, sessionConfig(cfg, idle, log))
	if err != nil {
		stopReload()
		_ = store.Close()
		adminLn.Close()
		appLn.Close()
		closeRESPLn()
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var rs *respServer
	if respLn != nil {
		if rs, err = startRESP(cfg, respLn, store, log); err != nil {
			stopReload()
			_ = store.Close()
			adminLn.Close()
			appLn.Close()
			closeRESPLn()
			return nil, err
		}
	}

	n := &Node{cfg: cfg, log: log, store: store, mgr: mgr, adminLn: adminLn, appLn: appLn, stopReload: stopReload,
		appMetrics: newHTTPMetrics("app"), adminMetrics: newHTTPMetrics("admin"), resp: rs}
	n.adm = &admin{cfg: cfg, store: store, log: log, draining: &n.draining, metrics: []*httpMetrics{n.appMetrics, n.adminMetrics}, started: time.Now(), resp: rs.engine()}
	return n, nil
}

// Serve serves app on the listen address and the admin API on the admin
// address until ctx ends or the process gets SIGTERM or SIGINT, then
// shuts down in order: readiness goes 503 at once and the node keeps
// serving for drain-delay; the application listener closes and in-flight
// requests finish (bounded by shutdown-timeout); the store flushes its
// deltas and leaves the cluster (bounded); the admin listener closes.
// app is served as given: wrap it with Sessions().LoadAndSave. Serve
// returns nil after a clean shutdown and closes the node; it may be
// called once.
func (n *Node) Serve(ctx context.Context, app http.Handler) error {
	if !n.serving.CompareAndSwap(false, true) {
		return errors.New("hanode: Serve called twice")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, log := n.cfg, n.log
	defer n.stopReload()
	defer n.adminLn.Close()
	defer n.appLn.Close()

	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	adminSrv := &http.Server{Handler: n.AdminHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	appSrv := &http.Server{Handler: n.Instrument(app), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}

	serveErr := make(chan error, 2)
	go func() { serveErr <- serve(adminSrv, n.adminLn) }()
	go func() { serveErr <- serve(appSrv, n.appLn) }()
	log.Info("hanode running", "version", cfg.version(), "ha", cfg.HA, "store", cfg.Store, "listen", n.appLn.Addr().String(),
		"admin", n.adminLn.Addr().String(), "group", cfg.Group.String(), "interface", cfg.Interface, "consistency", cfg.Consistency.String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal received: draining")
	case runErr = <-serveErr:
		log.Error("server failed", "err", runErr)
	}

	// 1. Readiness 503 at once, so the load balancer stops sending users;
	// keep serving for drain-delay so that its health checks see it.
	stopping := time.Now()
	n.Drain()
	log.Info("shutdown: /readyz answers 503", "drain_delay", cfg.DrainDelay, "shutdown_timeout", cfg.ShutdownTimeout)
	if cfg.DrainDelay > 0 && runErr == nil {
		time.Sleep(cfg.DrainDelay)
	}
	// 2. Stop accepting and finish in-flight requests, bounded.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	if err := appSrv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: in-flight requests did not finish in time; closing their connections", "timeout", cfg.ShutdownTimeout, "err", err)
		_ = appSrv.Close()
	} else {
		log.Info("shutdown: listener closed, in-flight requests finished", "elapsed", time.Since(stopping).Round(time.Millisecond).String())
	}
	cancel()
	n.resp.close() // Redis-protocol clients: the commands they were answered are committed
	// 3. Flush deltas, announce the leave, stop. Sessions are not expired.
	// Bounded: a stuck store must not keep the process (and systemd) waiting.
	if err := n.closeStore(stopping); err != nil && runErr == nil {
		runErr = err
	}
	actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = adminSrv.Shutdown(actx)
	cancel()
	log.Info("hanode stopped", "elapsed", time.Since(stopping).Round(time.Millisecond).String())
	return runErr
}

// storeCloseTimeout bounds the flush and leave of step 3 of the shutdown:
// a SIGTERM ends the process within drain-delay + shutdown-timeout +
// storeCloseTimeout + 2s (admin listener).
const storeCloseTimeout = 10 * time.Second

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
