#!/usr/bin/env bash
# Runs hanode's whole test suite. The end-to-end tests build real
# networks of namespaces; they run inside a private network namespace
# made here with `unshare -rn` (no root needed; works as root too), which
# holds only its own `lo`: the tests never touch a real interface.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh ./cmd/...  # some packages (go test patterns)
set -euo pipefail

cd "$(dirname "$0")/.."
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
# Modules of their own (their dependencies stay out of hanode's go.mod):
# tested too when the whole suite runs.
nested=(httpsession/scsstore httpsession/routertest)
[ $# -eq 0 ] || nested=()

if [ "${HANODE_IN_NETNS:-}" != 1 ]; then
	echo "== go mod download"
	go mod download
	for m in "${nested[@]}" scripts/bench; do (cd "$m" && go mod download); done
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
	command -v nft >/dev/null || echo "scripts/test.sh: warning: nft not found (apt-get install nftables); loss and partition tests will fail" >&2
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
for m in "${nested[@]}"; do
	echo "== go test -race ($m)"
	(cd "$m" && go test -race -count=1 ./...) || rc=$?
done
exit "$rc"
