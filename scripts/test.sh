#!/usr/bin/env bash
# Runs hanode's whole test suite. The end-to-end tests build real
# networks of namespaces; they run inside a private network namespace
# made here with `unshare -rn` (no root needed; works as root too), which
# holds only its own `lo`: the tests never touch a real interface.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh ./cmd/...  # some packages (go test patterns)
#
# It first checks the tools below. Run as root on Debian, it installs the
# missing ones itself (apt-get update, then apt-get install
# --no-install-recommends); otherwise it prints the exact apt-get line and
# fails (for a run of some packages only, it warns and goes on).
set -euo pipefail

# The tools the tests need: "command:debian-package" (several commands
# "a|b" when any will do). The one list; add yours here.
tools=(
	"unshare:util-linux" "nsenter:util-linux" # the private namespaces
	"ip:iproute2"                             # scripts/netlab
	"nft:nftables"                            # loss and partitions
	"haproxy:haproxy" "nginx:nginx-light"     # cmd/hanode/e2e_lb_test.go
	"chromium|chromium-browser:chromium"      # cmd/hanode/e2e_browser_test.go
	"redis-server:redis-server" "redis-cli:redis-tools" # Redis store and protocol tests
	"php:php-cli php-redis" "node:nodejs npm"            # cmd/hanode/e2e_resp*_test.go clients
	"curl:curl"                                          # scripts/install-test.sh
)
# python3-redis (the redis-py client test) is checked in missing_packages.

# missing_packages prints the packages of the tools not found, once each.
# HANODE_TOOL_PATH replaces where tools are looked for (tests of this
# script); by default PATH plus the sbin directories.
missing_packages() {
	local search="${HANODE_TOOL_PATH:-$PATH:/usr/local/sbin:/usr/sbin:/sbin}"
	local t cmds pkg c found out=()
	for t in "${tools[@]}"; do
		cmds=${t%%:*} pkg=${t#*:} found=
		for c in ${cmds//|/ }; do
			if PATH="$search" command -v "$c" >/dev/null 2>&1; then found=1; fi
		done
		if [ -z "$found" ] && [[ " ${out[*]-} " != *" $pkg "* ]]; then out+=("$pkg"); fi
	done
	# python3-redis has no command of its own: ask Debian's python3
	# (not under HANODE_TOOL_PATH, the tests of this script).
	if [ -z "${HANODE_TOOL_PATH:-}" ] && ! /usr/bin/python3 -c 'import redis' >/dev/null 2>&1; then
		out+=("python3-redis")
	fi
	echo "${out[*]-}"
}

check_tools() {
	local missing line
	missing=$(missing_packages)
	[ -n "$missing" ] || return 0
	line="apt-get install -y --no-install-recommends $missing"
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "== installing missing test tools: $line"
		export DEBIAN_FRONTEND=noninteractive
		# shellcheck disable=SC2086
		apt-get update && apt-get install -y --no-install-recommends $missing || {
			echo "scripts/test.sh: installing the test tools failed: $line" >&2
			exit 1
		}
		# nftables inside a user namespace cannot load the kernel module.
		modprobe nf_tables 2>/dev/null || true
		missing=$(missing_packages)
		if [ -n "$missing" ]; then
			echo "scripts/test.sh: still missing after apt-get: $missing" >&2
			exit 1
		fi
		return 0
	fi
	if [ ${#pkgs_given[@]} -gt 0 ]; then
		echo "scripts/test.sh: warning: test tools missing (tests that need them will fail); as root run:" >&2
		echo "  $line" >&2
		return 0
	fi
	echo "scripts/test.sh: test tools missing; install them as root (or run this script as root on Debian, which installs them):" >&2
	echo "  $line" >&2
	exit 1
}

cd "$(dirname "$0")/.."
pkgs_given=("$@")
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
# Modules of their own (their dependencies stay out of hanode's go.mod):
# tested too when the whole suite runs.
nested=(httpsession/scsstore httpsession/routertest replicator/resp/goredistest)
[ $# -eq 0 ] || nested=()

if [ "${HANODE_IN_NETNS:-}" != 1 ]; then
	check_tools
	# HANODE_CHECK_TOOLS_ONLY=1: stop after the check (tests of this script).
	[ "${HANODE_CHECK_TOOLS_ONLY:-}" != 1 ] || exit 0
	echo "== go mod download"
	go mod download
	for m in "${nested[@]}" scripts/bench; do (cd "$m" && go mod download); done
	# The Node client test's npm packages, pinned by its package-lock.json.
	node_app=cmd/hanode/testdata/redis/node
	if [ ! -d "$node_app/node_modules" ] && command -v npm >/dev/null; then
		echo "== npm ci ($node_app)"
		(cd "$node_app" && npm ci --no-audit --no-fund) || echo "scripts/test.sh: npm ci failed; the Node client test will fail" >&2
	fi
	# A vet or build failure does not stop the run: every package's tests
	# still run and report; the script fails at the end.
	vet=0
	echo "== go vet ${pkgs[*]}"
	go vet "${pkgs[@]}" || vet=$?
	if [ ${#nested[@]} -gt 0 ]; then
		for m in "${nested[@]}" scripts/bench; do
			echo "== go vet ($m)"
			(cd "$m" && go vet ./...) || vet=$?
		done
		for m in "${nested[@]}"; do (cd "$m" && go test -race -count=1 -run '^$' ./... >/dev/null 2>&1) || true; done
	fi
	echo "== build test binaries (outside the namespace, while the network is there)"
	go test -race -count=1 -run '^$' "${pkgs[@]}" >/dev/null 2>&1 || true
	for tool in unshare nsenter ip; do
		command -v "$tool" >/dev/null || { echo "scripts/test.sh: $tool not found: apt-get install util-linux iproute2" >&2; exit 1; }
	done
	if ! unshare -rn true 2>/dev/null; then
		echo "scripts/test.sh: cannot create a network namespace with 'unshare -rn'." >&2
		echo "  Enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1," >&2
		echo "  or kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04), or run as root." >&2
		exit 1
	fi
	echo "== go test -race (inside a private network namespace)"
	rc=0
	unshare -rn env HANODE_IN_NETNS=1 bash "$0" "$@" || rc=$?
	if [ "$vet" != 0 ]; then
		echo "scripts/test.sh: go vet failed (see above)" >&2
		[ "$rc" != 0 ] || rc=$vet
	fi
	exit "$rc"
fi

# Inside the namespace: only lo exists. Make it carry multicast.
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
export HANODE_NETLAB=1
# No network from here on: build and module caches work offline.
export GOFLAGS=-mod=mod GOPROXY=off
rc=0
go test -race -count=1 -timeout 20m "${pkgs[@]}" || rc=$?
# The full-size join (100,000 × 4 KB sessions) takes minutes under -race
# and about 2 s without it: it runs here, once, without the race detector.
if [ $# -eq 0 ]; then
	echo "== TestScenarioJoin100k (without -race)"
	HANODE_SCENARIO_FULL=1 go test -count=1 -run '^TestScenarioJoin100k$' ./replicator/cluster/ || rc=$?
fi
for m in "${nested[@]}"; do
	echo "== go test -race ($m)"
	(cd "$m" && go test -race -count=1 ./...) || rc=$?
done
exit "$rc"
