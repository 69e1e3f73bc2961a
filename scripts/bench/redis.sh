#!/usr/bin/env bash
# redis-benchmark against hanode's Redis protocol and against a real
# redis-server, side by side in one run, and prints a markdown table.
#
#   bash scripts/bench/redis.sh                # 3 runs each, 50,000 requests a test
#   RUNS=5 REQUESTS=100000 bash scripts/bench/redis.sh
#
# Targets: redis-server (no persistence); a 3-node hanode cluster with
# --consistency async; a 3-node hanode cluster with --consistency sync.
# The six hanode processes run on this host (--loopback, two clusters on
# two multicast groups of lo); redis-benchmark talks to node 1 of each.
# Tests: SET, GET and HSET (redis-benchmark -t set,get,hset, 50 clients,
# random keys among KEYSPACE=1000) without pipelining and with -P 16.
# Each target runs each configuration in turn, RUNS times; the table
# shows medians of requests per second and of p99 latency, and hanode's
# ratio to redis-server.
#
# Needs Go, redis-server, redis-tools (redis-benchmark, redis-cli),
# util-linux (unshare) and iproute2. Everything runs inside a private
# network namespace (`unshare -rn`): nothing touches a real interface.
# Every process it starts is stopped by its PID when the run ends.
set -euo pipefail
self=$(realpath "$0")
root=$(realpath "$(dirname "$self")/../..")

RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-50000}
KEYSPACE=${KEYSPACE:-1000}
CLIENTS=${CLIENTS:-50}

if [ "${HANODE_REDIS_BENCH_IN_NETNS:-}" != 1 ]; then
	for tool in go redis-server redis-benchmark redis-cli unshare ip; do
		command -v "$tool" >/dev/null || { echo "redis.sh: $tool not found (apt-get install redis-server redis-tools util-linux iproute2)" >&2; exit 1; }
	done
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	echo "== building hanode" >&2
	(cd "$root" && go build -o "$work/hanode" ./cmd/hanode)
	"$work/hanode" keygen >"$work/cluster.key"
	chmod 600 "$work/cluster.key"
	HANODE_REDIS_BENCH_IN_NETNS=1 WORK="$work" unshare -rn bash ${BENCH_TRACE:+-x} "$self" "$@"
	exit $?
fi

# Inside the namespace: only lo. Make it carry multicast.
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)

# start_cluster NAME CONSISTENCY GROUPPORT BASEPORT: three nodes; node i
# serves Redis on BASEPORT+i, HTTP on BASEPORT+10+i, admin on BASEPORT+20+i.
start_cluster() {
	local name=$1 cons=$2 gport=$3 base=$4
	# A sync write waits for a peer's ack; on a loaded 2-core box acks
	# can take longer than the default 100ms sync-timeout.
	for i in 1 2 3; do
		"$WORK/hanode" run --ha --node "$name$i" --cluster "$name" --interface lo --loopback \
			--group "239.255.42.99:$gport" --key-file "$WORK/cluster.key" --consistency "$cons" --sync-timeout 2s \
			--listen "127.0.0.1:$((base + 10 + i))" --admin "127.0.0.1:$((base + 20 + i))" \
			--redis-listen "127.0.0.1:$((base + i))" --log-level warn >"$WORK/$name$i.log" 2>&1 &
		pids+=($!)
	done
}
start_cluster async async 45601 6400
start_cluster sync sync 45602 6500

wait_ready() { # admin port
	for _ in $(seq 1 300); do
		if [ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ]; then return 0; fi
		sleep 0.1
	done
	echo "redis.sh: nothing answers on port $1" >&2
	exit 1
}
wait_members() { # admin port, count
	for _ in $(seq 1 300); do
		n=$(bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'GET /members HTTP/1.0\r\n\r\n' >&3; cat <&3" 2>/dev/null | grep -o '"alive"' | wc -l || true)
		if [ "$n" -ge "$2" ]; then return 0; fi
		sleep 0.1
	done
	echo "redis.sh: the cluster of admin port $1 did not form" >&2
	exit 1
}
wait_ready 6390
for p in 6401 6402 6403 6501 6502 6503; do wait_ready "$p"; done
wait_members 6421 3
wait_members 6521 3
echo "== redis-server 6390, hanode async 6401 (3 nodes), hanode sync 6501 (3 nodes); $RUNS runs x $REQUESTS requests, $CLIENTS clients, $KEYSPACE keys" >&2

# bench PORT PIPELINE: one redis-benchmark run; prints "test rps p99" lines.
# A test that fails (an error reply ends redis-benchmark) is left out and
# its output kept for the report.
bench() {
	local out
	for t in set get hset; do
		if out=$(redis-benchmark -h 127.0.0.1 -p "$1" -t "$t" -n "$REQUESTS" -c "$CLIENTS" -P "$2" -r "$KEYSPACE" --csv 2>&1); then
			echo "$out" | awk -F, '/^"(SET|GET|HSET)"/ { gsub(/"/, ""); print $1, $2, $7 }'
		else
			echo "port $1 -P $2 $t failed: $(echo "$out" | tail -3)" >>"$WORK/failures"
		fi
	done
}

results="$WORK/results"
: >"$results"
for run in $(seq 1 "$RUNS"); do
	for pipe in 1 16; do
		for target in redis:6390 async:6401 sync:6501; do
			bench "${target#*:}" "$pipe" | while read -r test rps p99; do
				echo "${target%%:*} $pipe $test $rps $p99" >>"$results"
			done
		done
	done
	echo "   run $run of $RUNS done" >&2
done

if [ -s "$WORK/failures" ]; then
	echo "== failed runs:" >&2
	cat "$WORK/failures" >&2
fi
# The table: medians per (target, pipeline, test).
awk '
function median(s,   n, a, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2 SUBSEP $3; rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $5; seen[$2 SUBSEP $3] = 1 }
END {
	print "| test | pipeline | redis-server req/s | p99 ms | hanode async req/s | × redis | p99 ms | hanode sync req/s | × redis | p99 ms |"
	print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	split("SET GET HSET", tests, " ")
	split("1 16", pipes, " ")
	for (pi = 1; pi <= 2; pi++) for (ti = 1; ti <= 3; ti++) {
		p = pipes[pi]; t = tests[ti]
		if (!((p SUBSEP t) in seen)) continue
		r = median(rps["redis" SUBSEP p SUBSEP t]); a = median(rps["async" SUBSEP p SUBSEP t]); s = median(rps["sync" SUBSEP p SUBSEP t])
		printf "| %s | %s | %.0f | %.2f | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f |\n", t, p, r, median(p99["redis" SUBSEP p SUBSEP t]), \
			a, (r > 0 ? a / r : 0), median(p99["async" SUBSEP p SUBSEP t]), s, (r > 0 ? s / r : 0), median(p99["sync" SUBSEP p SUBSEP t])
	}
}' "$results"
