package goredistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/resp"
	"github.com/redis/go-redis/v9"
)

func start(t *testing.T, cfg resp.Config) string {
	t.Helper()
	e, err := resp.NewEngine(replicator.NewLocal("n1", replicator.ReplicaConfig{}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := resp.NewServer(e)
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// go-redis v9 speaks RESP3 (HELLO 3) by default; Protocol 2 checks RESP2.
func TestGoRedis(t *testing.T) {
	for _, proto := range []int{3, 2} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			addr := start(t, resp.Config{Password: "pw"})
			ctx := context.Background()
			rdb := redis.NewClient(&redis.Options{Addr: addr, Password: "pw", Protocol: proto, ClientName: "gotest"})
			defer rdb.Close()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(rdb.Ping(ctx).Err())
			must(rdb.Set(ctx, "k", "v", 100*time.Second).Err())
			if v, err := rdb.Get(ctx, "k").Result(); v != "v" || err != nil {
				t.Fatalf("GET %q %v", v, err)
			}
			if d, _ := rdb.TTL(ctx, "k").Result(); d < 99*time.Second || d > 100*time.Second {
				t.Fatalf("TTL %v", d)
			}
			if _, err := rdb.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("missing key: %v", err)
			}
			if ok, _ := rdb.SetNX(ctx, "k", "w", 0).Result(); ok {
				t.Fatal("SETNX on an existing key")
			}
			must(rdb.HSet(ctx, "h", "a", "1", "b", "2").Err())
			if m, err := rdb.HGetAll(ctx, "h").Result(); err != nil || len(m) != 2 || m["a"] != "1" || m["b"] != "2" {
				t.Fatalf("HGETALL %v %v", m, err)
			}
			if n, _ := rdb.HIncrBy(ctx, "h", "a", 41).Result(); n != 42 {
				t.Fatalf("HINCRBY %d", n)
			}
			if vs, _ := rdb.HMGet(ctx, "h", "a", "zz").Result(); len(vs) != 2 || vs[0] != "42" || vs[1] != nil {
				t.Fatalf("HMGET %v", vs)
			}
			// MULTI/EXEC and a plain pipeline.
			cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "t1", "1", 0)
				p.HSet(ctx, "t2", "f", "v")
				p.Get(ctx, "t1")
				return nil
			})
			if err != nil || len(cmds) != 3 || cmds[2].(*redis.StringCmd).Val() != "1" {
				t.Fatalf("TxPipelined %v %v", cmds, err)
			}
			_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := 0; i < 200; i++ {
					p.Set(ctx, fmt.Sprintf("p:%d", i), i, time.Minute)
				}
				return nil
			})
			must(err)
			var keys []string
			iter := rdb.Scan(ctx, 0, "p:1*", 20).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			must(iter.Err())
			if len(keys) != 111 { // p:1, p:10-19, p:100-199
				t.Fatalf("SCAN found %d keys", len(keys))
			}
			if n, _ := rdb.DBSize(ctx).Result(); n != 204 {
				t.Fatalf("DBSIZE %d", n)
			}
			if typ, _ := rdb.Type(ctx, "h").Result(); typ != "hash" {
				t.Fatalf("TYPE %s", typ)
			}
			must(rdb.Rename(ctx, "h", "h2").Err())
			if err := rdb.Do(ctx, "NOSUCH").Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
				t.Fatalf("unknown command: %v", err)
			}
			must(rdb.Ping(ctx).Err()) // the connection stays usable
			all, _ := rdb.Keys(ctx, "*").Result()
			slices.Sort(all)
			if n, _ := rdb.Del(ctx, all...).Result(); n != 204 {
				t.Fatalf("DEL %d", n)
			}
			bad := redis.NewClient(&redis.Options{Addr: addr, Password: "wrong", Protocol: proto})
			defer bad.Close()
			if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}
