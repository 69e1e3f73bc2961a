package redisstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/redisstore"
	"github.com/hanode/hanode/replicator/redisstore/redistest"
	"github.com/hanode/hanode/replicator/storetest"
)

func testLogger() *slog.Logger {
	if os.Getenv("HANODE_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func open(t testing.TB, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	if cfg.TouchInterval == 0 {
		cfg.TouchInterval = 50 * time.Millisecond
	}
	if cfg.CountInterval == 0 {
		cfg.CountInterval = 100 * time.Millisecond
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = 100 * time.Millisecond
	}
	s, err := redisstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func conformance(t *testing.T, addrs []string) {
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, node string) replicator.Store {
			return open(t, redisstore.Config{Node: node, Addrs: addrs})
		},
		Shared:  true,
		Expires: true,
	})
}

// The store passes the conformance suite on a standalone Redis.
func TestStandaloneConformance(t *testing.T) {
	srv := redistest.Start(t)
	conformance(t, []string{srv.Addr})
}

// Without the near cache too.
func TestStandaloneNoCache(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, node string) replicator.Store {
			return open(t, redisstore.Config{Node: node, Addrs: []string{srv.Addr}, CacheSessions: -1})
		},
		Shared: true, Expires: true,
	})
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []redisstore.Config{
		{Addrs: []string{"127.0.0.1:1"}},
		{Node: "a"},
		{Node: "a", Addrs: []string{""}},
		{Node: "a", Addrs: []string{"127.0.0.1:1"}, Timeout: -1},
	} {
		if _, err := redisstore.New(cfg); !errors.Is(err, redisstore.ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

// A store that cannot be reached at start is a clear error naming it.
func TestUnreachableAtStart(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr
	srv.Kill()
	start := time.Now()
	_, err := redisstore.New(redisstore.Config{Node: "a", Addrs: []string{addr}, Timeout: time.Second, Logger: testLogger()})
	if !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s to fail", el)
	}
	t.Logf("start-up error: %v", err)
}

// A wrong password is refused at start; the right one works.
func TestPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	if _, err := redisstore.New(redisstore.Config{Node: "a", Addrs: []string{srv.Addr}, Password: "wrong", Logger: testLogger()}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	s := open(t, redisstore.Config{Node: "a", Addrs: []string{srv.Addr}, Password: "s3cret"})
	if _, err := s.Commit(context.Background(), &replicator.Delta{ID: storetest.NewID(), Epoch: 1, Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "k", Value: []byte("v")}}}, replicator.Async); err != nil {
		t.Fatal(err)
	}
}

// An outage after start is an error to the commit that needs Redis,
// counted, and reported by Ready/Err; the store recovers when Redis is
// back.
func TestOutageIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, redisstore.Config{Node: "a", Addrs: []string{srv.Addr}, Timeout: 500 * time.Millisecond})
	id := storetest.NewID()
	d := &replicator.Delta{ID: id, Epoch: 1, Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "k", Value: []byte("v")}}}
	if _, err := s.Commit(context.Background(), d, replicator.Async); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, err := s.Commit(context.Background(), &replicator.Delta{ID: id, Epoch: 1, Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "k", Value: []byte("w")}}}, replicator.Async)
	if !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("commit during an outage: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.Load(context.Background(), storetest.NewID()); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("load during an outage: err = %v, want ErrUnavailable", err)
	}
	if s.Ready() || s.Err() == nil {
		t.Fatal("Ready during an outage")
	}
	if st := s.Stats(); st.CommitErrors == 0 || st.GetErrors == 0 {
		t.Fatalf("outage not counted: %+v", st)
	}
	t.Logf("Err during the outage: %v", s.Err())
}

// With RequireReplica, a master without an online replica makes the
// store not ready (sync commits could not succeed); once a replica is
// linked, Sync and SyncAll commits are acknowledged by it.
func TestRequireReplica(t *testing.T) {
	master := redistest.Start(t)
	s := open(t, redisstore.Config{Node: "a", Addrs: []string{master.Addr}, RequireReplica: true, SyncTimeout: time.Second})
	if s.Ready() || !errors.Is(s.Err(), redisstore.ErrNoReplica) {
		t.Fatalf("no replica: Ready %v, Err %v", s.Ready(), s.Err())
	}
	t.Logf("not ready: %v", s.Err())
	redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	waitFor(t, 20*time.Second, "ready once a replica is online", s.Ready)
	for _, c := range []replicator.Consistency{replicator.Sync, replicator.SyncAll} {
		d := &replicator.Delta{ID: storetest.NewID(), Epoch: 1, Ops: []replicator.Op{{Kind: replicator.OpSet, Key: "k", Value: []byte("v")}}}
		res, err := s.Commit(context.Background(), d, c)
		if err != nil || !res.Replicated || res.Acks < 1 {
			t.Fatalf("%s commit with a replica: %+v %v", c, res, err)
		}
	}
}
