#!/usr/bin/env bash
# Runs every hanode benchmark side by side with scs (memory store, Redis)
# and gorilla/sessions (Redis) and prints one markdown report.
#
#   bash scripts/bench/run.sh                 # everything (about 8-10 minutes on 2 CPUs)
#   bash scripts/bench/run.sh -runs 1 -max-sessions 100000   # quicker; flags go to cmd/report
#
# Needs Go 1.26, util-linux (unshare) and iproute2; installs Debian's
# redis-server when missing and run as root. Everything runs inside a
# private network namespace (`unshare -rn`) whose lo carries multicast:
# Redis listens on a private port of that lo, the UDP multicast variants
# use it too, and nothing touches a real interface. Redis is stopped by
# its PID when the run ends.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")"

if [ "${HANODE_BENCH_IN_NETNS:-}" != 1 ]; then
	command -v go >/dev/null || { echo "run.sh: go not found (Go 1.26 needed)" >&2; exit 1; }
	if ! command -v redis-server >/dev/null; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			echo "== installing redis-server (apt-get)" >&2
			apt-get install -y redis-server >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
		else
			echo "run.sh: redis-server not found; install it (apt-get install redis-server) to include the Redis variants." >&2
			echo "        Continuing without them." >&2
		fi
	fi
	for tool in unshare ip; do
		command -v "$tool" >/dev/null || { echo "run.sh: $tool not found: apt-get install util-linux iproute2" >&2; exit 1; }
	done
	echo "== building (module downloads happen here, outside the namespace)" >&2
	go mod download
	bin=$(mktemp -d)/hanode-bench-report
	go build -o "$bin" ./cmd/report
	if ! unshare -rn true 2>/dev/null; then
		echo "run.sh: cannot create a network namespace with 'unshare -rn' (see scripts/test.sh for how to enable it)" >&2
		exit 1
	fi
	rc=0
	HANODE_BENCH_IN_NETNS=1 HANODE_BENCH_BIN="$bin" unshare -rn bash "$self" "$@" || rc=$?
	rm -rf "$(dirname "$bin")"
	exit "$rc"
fi

# Inside the namespace: only lo. Make it carry multicast.
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo

args=()
redis_pid=
redis_dir=$(mktemp -d)
cluster_pids=()
cleanup() {
	if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
	for p in "${cluster_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$redis_dir"
}
trap cleanup EXIT
if command -v redis-server >/dev/null; then
	port=6399
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" \
		--daemonize no --protected-mode yes --loglevel warning >"$redis_dir/log" 2>&1 &
	redis_pid=$!
	for _ in $(seq 50); do
		if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
		sleep 0.1
	done
	echo "== redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$port (pid $redis_pid)" >&2
	args+=(-redis "127.0.0.1:$port")
fi
# A Redis Cluster of 3 masters and 3 replicas for the rows of hanode with
# store = redis on a cluster (skipped without redis-cli).
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	caddrs=()
	for i in 0 1 2 3 4 5; do
		cport=$((7101 + i))
		mkdir -p "$redis_dir/c$cport"
		redis-server --port "$cport" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
			--cluster-node-timeout 2000 --save '' --appendonly no --dir "$redis_dir/c$cport" \
			--daemonize no --loglevel warning >"$redis_dir/c$cport/log" 2>&1 &
		cluster_pids+=($!)
		caddrs+=("127.0.0.1:$cport")
		for _ in $(seq 50); do
			if (exec 3<>/dev/tcp/127.0.0.1/$cport) 2>/dev/null; then break; fi
			sleep 0.1
		done
	done
	if redis-cli --cluster create "${caddrs[@]}" --cluster-replicas 1 --cluster-yes >"$redis_dir/cluster.log" 2>&1; then
		for _ in $(seq 100); do
			redis-cli -p 7101 cluster info 2>/dev/null | grep -q cluster_state:ok && break
			sleep 0.1
		done
		# Every replica linked to its master (sync rows WAIT for them).
		for _ in $(seq 100); do
			up=$(for c in "${caddrs[@]}"; do redis-cli -p "${c#*:}" info replication; done | grep -c 'master_link_status:up' || true)
			[ "$up" -ge 3 ] && break
			sleep 0.1
		done
		echo "== Redis Cluster (3 masters, 3 replicas) on 127.0.0.1:7101-7106" >&2
		args+=(-redis-cluster "${caddrs[0]},${caddrs[1]},${caddrs[2]}")
	else
		echo "run.sh: redis-cli --cluster create failed; cluster rows skipped:" >&2
		cat "$redis_dir/cluster.log" >&2
	fi
fi
"$HANODE_BENCH_BIN" "${args[@]}" "$@"
