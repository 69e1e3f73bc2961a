package hanode

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/resp"
)

// validateRESP checks the Redis-protocol settings: a listener reachable
// from other hosts must ask for a password.
func (c *Config) validateRESP() []error {
	var errs []error
	if c.RedisPassword != "" && c.RedisPasswordFile != "" {
		errs = append(errs, fmt.Errorf("%w: set one of redis-password and redis-password-file, not both", ErrConfig))
	}
	if c.RedisListen != "" && c.RedisPassword == "" && c.RedisPasswordFile == "" && !isLoopbackAddr(c.RedisListen) {
		errs = append(errs, fmt.Errorf("%w: redis-listen %s (%s) is reachable from other hosts and no password is set: "+
			"set --redis-password-file (or HANODE_REDIS_PASSWORD, redis-password), or listen on 127.0.0.1",
			ErrConfig, c.RedisListen, c.values["redis-listen"].where))
	}
	if c.RedisListen == "" {
		return errs
	}
	if c.Store == StoreRedis {
		errs = append(errs, fmt.Errorf("%w: redis-listen serves the node's own replica; it needs store = %s, not %s", ErrConfig, StoreReplica, c.Store))
	}
	for _, other := range []string{c.Listen, c.Admin} {
		if other == c.RedisListen && !strings.HasSuffix(other, ":0") {
			errs = append(errs, fmt.Errorf("%w: redis-listen %s is also the HTTP or admin address", ErrConfig, other))
		}
	}
	return errs
}

// redisPassword returns the password in effect: --redis-password, or the
// first line of --redis-password-file.
func (c *Config) respPassword() (string, error) {
	if c.RedisPasswordFile == "" {
		return c.RedisPassword, nil
	}
	b, err := os.ReadFile(c.RedisPasswordFile)
	if err != nil {
		return "", fmt.Errorf("%w: redis-password-file: %v", ErrConfig, err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: redis-password-file %s is empty", ErrConfig, c.RedisPasswordFile)
	}
	return pw, nil
}

// respServer is the Redis-protocol listener of `hanode run`.
type respServer struct {
	srv  *resp.Server
	ln   net.Listener
	done chan error
	once sync.Once
}

// listenRESP binds the Redis-protocol listener (nil when off), before the
// store is opened, so that a port in use fails early.
func listenRESP(cfg *Config) (net.Listener, error) {
	if cfg.RedisListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.RedisListen)
	if err != nil {
		return nil, fmt.Errorf("redis listener: %w", err)
	}
	return ln, nil
}

// startRESP serves the Redis protocol on ln over store.
func startRESP(cfg *Config, ln net.Listener, store replicator.Store, log *slog.Logger) (*respServer, error) {
	rstore, ok := store.(resp.Store)
	if !ok {
		return nil, fmt.Errorf("redis: the store (%T) cannot list its records", store)
	}
	pw, err := cfg.respPassword()
	if err != nil {
		return nil, err
	}
	rcfg := resp.Config{
		Consistency: cfg.Consistency,
		Password:    pw,
		Logger:      log.With("subsystem", "redis"),
	}
	// A joining cluster node answers key commands LOADING until it holds
	// the cluster's sessions; the local store (HA off) is always loaded.
	if l, ok := store.(interface{ Loaded() bool }); ok {
		rcfg.Ready = l.Loaded
	}
	e, err := resp.NewEngine(rstore, rcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	rs := &respServer{srv: resp.NewServer(e), ln: ln, done: make(chan error, 1)}
	go func() {
		err := rs.srv.Serve(ln)
		if errors.Is(err, resp.ErrServerClosed) {
			err = nil
		} else if err != nil {
			log.Error("the Redis-protocol listener stopped", "err", err)
		}
		rs.done <- err
	}()
	log.Info("serving the Redis protocol", "redis_listen", ln.Addr().String(), "auth", pw != "", "consistency", cfg.Consistency.String())
	return rs, nil
}

// engine returns the engine, nil when the server is off.
func (rs *respServer) engine() *resp.Engine {
	if rs == nil {
		return nil
	}
	return rs.srv.Engine()
}

// close stops the listener and every connection.
func (rs *respServer) close() {
	if rs == nil {
		return
	}
	rs.once.Do(func() {
		rs.srv.Close()
		<-rs.done
	})
}
