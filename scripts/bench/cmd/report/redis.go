package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/hanode/hanode/replicator"
	bench "github.com/hanode/hanode/scripts/bench"
)

var redisCluster = flag.String("redis-cluster", os.Getenv("REDIS_CLUSTER_ADDRS"), "comma-separated seed addresses of a Redis Cluster (empty: skip the cluster rows of the redis section)")

// redisSection compares hanode on the Redis store (store = redis) with
// scs and gorilla/sessions on the same Redis, in the same run.
func redisSection(t *targets) {
	if *redisAddr == "" {
		fmt.Printf("### Sessions in Redis\n\nskipped: no -redis address.\n\n")
		return
	}
	logf("redis: setting up variants")
	var vs []*bench.Variant
	add := func(v *bench.Variant, err error) {
		if err != nil {
			fmt.Printf("variant skipped: %v\n\n", err)
			return
		}
		vs = append(vs, v)
	}
	add(bench.HanodeRedis("hanode, store = redis, standalone, async", []string{*redisAddr}, replicator.Async))
	if *redisCluster != "" {
		seeds := strings.Split(*redisCluster, ",")
		add(bench.HanodeRedis("hanode, store = redis, cluster 3+3, async", seeds, replicator.Async))
		add(bench.HanodeRedis("hanode, store = redis, cluster 3+3, sync (WAIT 1)", seeds, replicator.Sync))
	}
	vs = append(vs, bench.SCSRedis(*redisAddr), bench.GorillaRedis(*redisAddr))
	res := measureVariants(vs, "redis", "redis HTTP load")
	scsI := -1
	for i, v := range vs {
		if strings.HasPrefix(v.Name, "scs + Redis") {
			scsI = i
		}
	}
	scs := median(res[scsI].ns)
	fmt.Printf("### Sessions in Redis: one get and one put per request\n\n")
	fmt.Printf("%d distinct sessions, same harness as the per-request table; every variant uses a Redis on 127.0.0.1 (the standalone one for scs and gorilla), which shares the 2 CPUs. hanode reads through its near cache (RESP3 client tracking) and writes one MULTI/EXEC per commit; the cluster rows also pay the replication of every write to a replica on the same 2 CPUs, which the scs and gorilla rows (standalone Redis, no replica) do not.\n\n", *sessionsN)
	fmt.Println("| variant | ns/op | allocs/op | B/op | vs scs + Redis | HTTP req/s |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	for i, v := range vs {
		ns := median(res[i].ns)
		fails := ""
		if res[i].fails > 0 {
			fails = fmt.Sprintf(" (%d failed)", res[i].fails)
		}
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %.2f | %.0f%s |\n", v.Name, ns, median(res[i].allocs), median(res[i].bytes), ns/scs, median(res[i].rps), fails)
	}
	fmt.Println()
	for i, v := range vs {
		if strings.HasPrefix(v.Name, "hanode") && strings.Contains(v.Name, "async") {
			x := median(res[i].ns) / scs
			t.add(strings.TrimPrefix(v.Name, "hanode, ")+" ≤ 0.5× scs+Redis", fmt.Sprintf("%.2f×", x), x <= 0.5, fmt.Sprintf("%.2f× over", x/0.5))
		}
	}
	for _, v := range vs {
		v.Close()
	}
}
