package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator/cluster"
)

// newLogger builds the process logger: text or JSON on w, every line
// carrying the node name.
func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	return newBaseLogger(cfg, w).With("node", cfg.NodeName())
}

// newBaseLogger is newLogger without the node field, for the cluster
// runtime, which adds it itself (a field twice is a duplicate JSON key).
func newBaseLogger(cfg *Config, w io.Writer) *slog.Logger {
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
// a local-only replica (no network at all) when it is off.
// log is the base logger (without the node field: the runtime adds it).
func openStore(cfg *Config, log *slog.Logger) (backend, error) {
	if !cfg.HA {
		logHangups(log.With("node", cfg.NodeName()))
		return newLocalBackend(cfg.NodeName()), nil
	}
	keys, err := multicast.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		_, where := cfg.Source("key-file")
		return nil, fmt.Errorf("%w: key-file (%s): %v", ErrConfig, where, err)
	}
	stopReload := startKeyReload(cfg.KeyFile, keys, log.With("node", cfg.NodeName(), "subsystem", "keys")) // SIGHUP: reload.go
	node, err := cluster.Start(cluster.Config{
		Node:             cfg.Node,
		ClusterName:      cfg.Cluster,
		Group:            cfg.Group,
		Interface:        cfg.Interface,
		TTL:              cfg.TTL,
		Loopback:         cfg.Loopback,
		Keyring:          keys,
		Consistency:      cfg.Consistency,
		SyncTimeout:      cfg.SyncTimeout,
		SnapshotFile:     cfg.Snapshot,
		SnapshotInterval: cfg.SnapshotEvery,
		Logger:           log.With("subsystem", "cluster"),
	})
	if err != nil {
		stopReload()
		return nil, fmt.Errorf("join the cluster: %w", err)
	}
	return node, nil
}

// run serves until ctx ends (SIGTERM, SIGINT), then shuts down in order:
// readiness goes 503, the app stops accepting and finishes in-flight
// requests (bounded by shutdown-timeout), the store flushes and leaves.
func run(ctx context.Context, cfg *Config, logw io.Writer) error {
	base := newBaseLogger(cfg, logw)
	log := base.With("node", cfg.NodeName())
	if cfg.HA && !cfg.AdminIsLoopback() && cfg.AdminToken == "" {
		log.Warn("admin address is not loopback and no admin-token is set: session listing and kill are refused", "admin", cfg.Admin)
	}
	// Bind both listeners first: a port in use fails before joining.
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	defer adminLn.Close()
	appLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("app listener: %w", err)
	}
	defer appLn.Close()

	store, err := openStore(cfg, base)
	if err != nil {
		return err
	}
	idle := cfg.IdleTimeout
	if idle == 0 {
		idle = -1 // httpsession: negative means no idle timeout
	}
	mgr, err := httpsession.New(store, httpsession.Config{
		Lifetime:    cfg.Lifetime,
		IdleTimeout: idle,
		Cookie:      httpsession.CookieConfig{Name: cfg.CookieName, Secure: cfg.CookieSecure},
		Consistency: cfg.Consistency,
		Logger:      log.With("subsystem", "httpsession"),
	})
	if err != nil {
		_ = store.Close()
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}

	var draining atomic.Bool
	appMetrics, adminMetrics := newHTTPMetrics("app"), newHTTPMetrics("admin")
	adm := &admin{cfg: cfg, store: store, log: log, draining: &draining, metrics: []*httpMetrics{appMetrics, adminMetrics}, started: time.Now()}
	app := &demoApp{node: cfg.NodeName(), mgr: mgr, store: store, cookie: cfg.CookieName, debug: cfg.DemoDebug}

	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	adminSrv := &http.Server{Handler: adminMetrics.wrap(adm.handler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	appSrv := &http.Server{Handler: appMetrics.wrap(app.handler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}

	serveErr := make(chan error, 2)
	go func() { serveErr <- serve(adminSrv, adminLn) }()
	go func() { serveErr <- serve(appSrv, appLn) }()
	log.Info("hanode running", "version", buildVersion(), "ha", cfg.HA, "listen", appLn.Addr().String(),
		"admin", adminLn.Addr().String(), "group", cfg.Group.String(), "interface", cfg.Interface, "consistency", cfg.Consistency.String())

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
	draining.Store(true)
	store.Drain()
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
	// 3. Flush deltas, announce the leave, stop. Sessions are not expired.
	// Bounded: a stuck store must not keep the process (and systemd) waiting.
	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			log.Warn("shutdown: store close", "err", err)
		} else {
			log.Info("shutdown: deltas flushed, leave announced", "elapsed", time.Since(stopping).Round(time.Millisecond).String())
		}
	case <-time.After(storeCloseTimeout):
		log.Error("shutdown: the store did not close in time; exiting anyway (peers will see this node as failed)", "timeout", storeCloseTimeout)
		if runErr == nil {
			runErr = fmt.Errorf("store did not close within %s", storeCloseTimeout)
		}
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
