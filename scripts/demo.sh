#!/usr/bin/env bash
# hanode demo: a 3-node cluster on this machine, a session created on n1,
# n1 killed with SIGKILL, the same session served by n2.
#
#   bash scripts/demo.sh          # scripted walk-through in a private network
#                                 # namespace (no root needed, touches no real interface)
#   sudo DEMO_HOST=1 bash scripts/demo.sh
#                                 # as root: the 3 nodes on the host's loopback, reachable
#                                 # from your browser at http://127.0.0.1:8081 .. 8083,
#                                 # until Ctrl-C (lo gets the multicast flag and route
#                                 # 224.0.0.0/4 for the demo; both removed on exit)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${HANODE_DEMO_INNER:-}" != 1 ]; then
	command -v curl >/dev/null || { echo "demo.sh needs curl (apt-get install curl)" >&2; exit 1; }
	work=$(mktemp -d "${TMPDIR:-/tmp}/hanode-demo.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	say "build hanode"
	(cd "$root" && go build -o "$work/hanode" ./cmd/hanode)
	say "create a cluster key: hanode keygen > cluster.key (mode 600)"
	(umask 077 && "$work/hanode" keygen >"$work/cluster.key")
	if [ "${DEMO_HOST:-}" = 1 ]; then
		[ "$(id -u)" = 0 ] || { echo "DEMO_HOST=1 needs root (it sets the multicast flag and route on lo)" >&2; exit 1; }
		HANODE_DEMO_INNER=1 HANODE_DEMO_WORK="$work" HANODE_DEMO_MODE=host bash "$0"
	else
		unshare -rn true 2>/dev/null || { echo "cannot create a network namespace (unshare -rn); run as root or enable user namespaces" >&2; exit 1; }
		say "enter a private network namespace (unshare -rn): only its own lo, nothing else is touched"
		unshare -rn env HANODE_DEMO_INNER=1 HANODE_DEMO_WORK="$work" HANODE_DEMO_MODE=netns bash "$0"
	fi
	exit
fi

# ---- inside: the namespace (or the host with DEMO_HOST=1) ----
work=$HANODE_DEMO_WORK
bin=$work/hanode
pids=()
added_route=0
set_flag=0
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$HANODE_DEMO_MODE" = host ]; then
		[ $added_route = 1 ] && ip route del 224.0.0.0/4 dev lo 2>/dev/null || true
		[ $set_flag = 1 ] && ip link set lo multicast off 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$HANODE_DEMO_MODE" = netns ]; then
	ip link set lo up
	ip link set lo multicast on
	ip route add 224.0.0.0/4 dev lo
else
	if ! ip link show lo | grep -q MULTICAST; then ip link set lo multicast on; set_flag=1; fi
	if ! ip route show 224.0.0.0/4 | grep -q .; then ip route add 224.0.0.0/4 dev lo; added_route=1; fi
fi

for i in 1 2 3; do
	"$bin" run --ha --node "n$i" --interface lo --loopback --key-file "$work/cluster.key" \
		--listen "127.0.0.1:808$i" --admin "127.0.0.1:909$i" >"$work/n$i.log" 2>&1 &
	pids+=($!)
	echo "started n$i (pid $!): app http://127.0.0.1:808$i  admin http://127.0.0.1:909$i  log $work/n$i.log"
done

say "wait until the 3 nodes are ready (GET /readyz on the admin address)"
for i in 1 2 3; do
	for _ in $(seq 1 300); do
		curl -sf "http://127.0.0.1:909$i/readyz" >/dev/null && break
		kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { echo "n$i died:"; cat "$work/n$i.log"; exit 1; }
		sleep 0.2
	done
	curl -sf "http://127.0.0.1:909$i/readyz" >/dev/null || { echo "n$i not ready after 60s:"; tail -20 "$work/n$i.log"; exit 1; }
	echo "n$i ready"
done
"$bin" members --admin 127.0.0.1:9091

if [ "$HANODE_DEMO_MODE" = host ]; then
	say "open http://127.0.0.1:8081/ (n1), .../8082 (n2), .../8083 (n3); kill one with: kill -9 PID"
	echo "pids: n1=${pids[0]} n2=${pids[1]} n3=${pids[2]}. Ctrl-C stops the demo."
	wait
	exit
fi

jar=$work/cookies
say "a user increments a counter three times on n1 and stores user=alice"
for _ in 1 2 3; do curl -s -c "$jar" -b "$jar" -X POST http://127.0.0.1:8081/counter; done
curl -s -c "$jar" -b "$jar" -X PUT --data alice http://127.0.0.1:8081/attrs/user
echo "session cookie: $(awk '$6=="hanode_session"{print $7}' "$jar")   (the suffix after the last dot is the route: n1)"

say "wait until n2 holds the session (GET /sessions on n2's admin API)"
for _ in $(seq 1 100); do
	[ "$(curl -s http://127.0.0.1:9092/sessions | grep -c '"hash"')" -ge 1 ] && break
	sleep 0.1
done
"$bin" sessions list --admin 127.0.0.1:9092

say "kill -9 n1 (pid ${pids[0]})"
kill -9 "${pids[0]}"

say "the same cookie, sent to n2: same session, same counter, same attribute"
curl -s -c "$jar" -b "$jar" http://127.0.0.1:8082/counter
echo "user = $(curl -s -c "$jar" -b "$jar" http://127.0.0.1:8082/attrs/user)"
echo "session cookie now: $(awk '$6=="hanode_session"{print $7}' "$jar")   (route rewritten to n2)"

say "members after the failure, as n2 sees them"
sleep 3
"$bin" members --admin 127.0.0.1:9092
say "done; logs were in $work (removed on exit)"
