#!/usr/bin/env bash
# Install test of the Debian package, as root on Debian: build it
# (scripts/release.sh, or take HANODE_DEB=path), dpkg -i, check what it
# installed, systemd-analyze verify the unit, run the installed binary
# with the installed config (HA off) as the hanode user and get a session
# from it, write a key with keygen -o and check it as the hanode user,
# reinstall, then dpkg --purge and check that nothing is left.
#
#   sudo bash scripts/install-test.sh
#
# It changes the real system (a package, a user, /etc/hanode), so it
# refuses to start when any of those exists already, and purges on every
# exit. The node runs in a private network namespace (unshare -n): its
# ports never meet the host's.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
step() { echo "== install-test: $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs a package)"
command -v dpkg >/dev/null || fail "not a Debian system (no dpkg)"
if dpkg-query -W -f='${Status}' hanode 2>/dev/null | grep -q installed; then
	fail "the hanode package is installed already: not touching it"
fi
getent passwd hanode >/dev/null && fail "a user hanode exists already: not touching it"
[ -e /etc/hanode ] && fail "/etc/hanode exists already: not touching it"

work=$(mktemp -d /tmp/hanode-install-test-XXXXXX)
node_pid=""
cleanup() {
	local rc=$?
	[ -z "$node_pid" ] || kill -KILL "$node_pid" 2>/dev/null || true
	if dpkg-query -W -f='${Status}' hanode 2>/dev/null | grep -q 'ok \(installed\|config-files\|half\)'; then
		echo "install-test: cleaning up: dpkg --purge hanode" >&2
		dpkg --purge hanode >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

arch=$(dpkg --print-architecture)
deb=${HANODE_DEB:-}
if [ -z "$deb" ]; then
	step "build the release artifacts (scripts/release.sh)"
	bash scripts/release.sh -o "$work/dist"
	step "check the artifacts: checksums, static binaries"
	(cd "$work/dist" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not match"
	for a in amd64 arm64; do
		bin=$(ls "$work"/dist/hanode-*-linux-$a)
		# A dynamically linked binary names its loader (ld-linux...).
		if grep -q 'ld-linux' "$bin"; then fail "$bin is not static"; fi
		ls "$work"/dist/hanode_*_$a.deb >/dev/null || fail "no $a package"
	done
	deb=$(ls "$work"/dist/hanode_*_"$arch".deb)
fi
version=$(dpkg-deb -f "$deb" Version)

step "dpkg -i $(basename "$deb")"
dpkg -i "$deb"

step "check the installed files, user and modes"
check_stat() { # path want("mode owner group")
	local got
	got=$(stat -c '%a %U %G' "$1") || fail "$1 missing"
	[ "$got" = "$2" ] || fail "$1: $got, want $2"
}
check_stat /usr/bin/hanode "755 root root"
check_stat /etc/hanode "750 root hanode"
check_stat /etc/hanode/hanode.toml "640 root hanode"
check_stat /lib/systemd/system/hanode.service "644 root root"
check_stat /var/lib/hanode "750 hanode hanode"
shell=$(getent passwd hanode | cut -d: -f7)
uid=$(id -u hanode)
[ "$shell" = /usr/sbin/nologin ] || fail "user hanode has shell $shell"
[ "$uid" -lt 1000 ] || fail "user hanode is not a system user (uid $uid)"
dpkg-query -W -f='${Conffiles}\n' hanode | grep -q '^ */etc/hanode/hanode.toml ' ||
	fail "/etc/hanode/hanode.toml is not a conffile"
grep -q '^ExecStart=/usr/bin/hanode run --config /etc/hanode/hanode.toml$' /lib/systemd/system/hanode.service ||
	fail "the unit does not run /usr/bin/hanode with /etc/hanode/hanode.toml"
grep -q '^ha = false$' /etc/hanode/hanode.toml || fail "the installed config does not say ha = false"
/usr/bin/hanode version | tee "$work/version"
grep -q "^hanode v${version}$" "$work/version" || fail "hanode version does not print v$version"

step "systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null; then
	echo "install-test: systemd-analyze missing: apt-get install -y --no-install-recommends systemd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >/dev/null ||
		fail "could not install systemd (for systemd-analyze)"
fi
# verify loads the unit offline: it needs no running systemd (a CI
# container has none), and fails on unknown directives, a missing
# ExecStart binary or a bad User=.
if ! systemd-analyze verify /lib/systemd/system/hanode.service >"$work/verify" 2>&1; then
	cat "$work/verify" >&2
	fail "systemd-analyze verify"
fi
if grep -i 'hanode.service' "$work/verify"; then fail "systemd-analyze verify warns about the unit"; fi
echo "verify: OK"

step "keygen -o /etc/hanode/cluster.key; the hanode user can read it, nobody else"
/usr/bin/hanode keygen -o /etc/hanode/cluster.key
chown hanode:hanode /etc/hanode/cluster.key
check_stat /etc/hanode/cluster.key "600 hanode hanode"
runuser -u hanode -- /usr/bin/hanode config check -c /etc/hanode/hanode.toml \
	--ha --node n1 --interface lo --key-file /etc/hanode/cluster.key >/dev/null ||
	fail "the hanode user cannot use the key file"
runuser -u nobody -- test -r /etc/hanode/cluster.key && fail "user nobody can read the key"
runuser -u nobody -- test -r /etc/hanode/hanode.toml && fail "user nobody can read the config"

step "run the installed node (installed config, HA off) as hanode; get a session"
# In a private network namespace: only its own loopback.
cat >"$work/session.sh" <<'INNER'
set -eu
ip link set lo up
# setpriv execs hanode itself (runuser would stay in between and turn
# SIGTERM into its own exit status).
setpriv --reuid=hanode --regid=hanode --init-groups -- /usr/bin/hanode run --config /etc/hanode/hanode.toml 2>"$WORK/node.log" &
pid=$!
echo "$pid" >"$WORK/node.pid"
ok=""
for _ in $(seq 1 100); do
	if curl -fsS http://127.0.0.1:9090/readyz >/dev/null 2>&1; then ok=1; break; fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$ok" ] || { echo "the node never became ready:"; cat "$WORK/node.log"; exit 1; }
curl -fsS -c "$WORK/jar" -b "$WORK/jar" -X POST http://127.0.0.1:8080/counter >"$WORK/c1"
curl -fsS -c "$WORK/jar" -b "$WORK/jar" -X POST http://127.0.0.1:8080/counter >"$WORK/c2"
curl -fsS http://127.0.0.1:9090/status >"$WORK/status"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
echo "node exit status $rc"
[ "$rc" = 0 ] || { cat "$WORK/node.log"; exit 1; }
INNER
WORK=$work unshare -n sh "$work/session.sh" || fail "the installed node did not serve a session"
cat "$work/c1" "$work/c2"
grep -q '"n": *1' "$work/c1" && grep -q '"n": *2' "$work/c2" || fail "the session did not keep its counter"
grep -q 'hanode_session' "$work/jar" || fail "no session cookie"
grep -q "\"version\": *\"v$version\"" "$work/status" || fail "/status does not show v$version"
grep -q '"ha": *false' "$work/status" || fail "/status does not show ha false"

step "reinstall (the maintainer scripts run again)"
dpkg -i "$deb" >/dev/null
check_stat /etc/hanode "750 root hanode"
check_stat /etc/hanode/cluster.key "600 hanode hanode"

step "dpkg --purge hanode; nothing is left"
dpkg --purge hanode
left=""
for p in /usr/bin/hanode /etc/hanode /var/lib/hanode /lib/systemd/system/hanode.service \
	/usr/share/doc/hanode /etc/systemd/system/hanode.service /etc/systemd/system/multi-user.target.wants/hanode.service; do
	if [ -e "$p" ] || [ -L "$p" ]; then left="$left $p"; fi
done
getent passwd hanode >/dev/null && left="$left user:hanode"
getent group hanode >/dev/null && left="$left group:hanode"
dpkg-statoverride --list | grep -q hanode && left="$left dpkg-statoverride"
dpkg-query -W hanode >/dev/null 2>&1 && left="$left package-record"
[ -z "$left" ] || fail "left after purge:$left"
echo "== install-test: OK ($version)"
