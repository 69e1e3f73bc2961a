#!/usr/bin/env bash
# Builds hanode's release artifacts into one directory:
#   hanode-VERSION-linux-amd64, hanode-VERSION-linux-arm64   static binaries (CGO_ENABLED=0)
#   hanode_DEBVERSION_amd64.deb, hanode_DEBVERSION_arm64.deb  Debian packages
#   SHA256SUMS                                               sha256sum -c SHA256SUMS
#
#   bash scripts/release.sh v0.1.0          # the release recorded in RELEASES, built from its commit
#   bash scripts/release.sh                 # a snapshot of the current tree: v0.1.0+dev.<date>.<commit>
#   bash scripts/release.sh -o DIR [...]    # output directory (default: dist/)
#   bash scripts/release.sh --download-deps # only fill the module cache with the
#                                           # latest release's dependencies (for the
#                                           # upgrade test, which builds it offline)
#
# A recorded release is built from its commit in a temporary git worktree
# (removed afterwards), whatever is checked out. A snapshot of a tree with
# uncommitted changes is marked ".dirty".
#
# Packages are made with dpkg-deb, which every Debian and Ubuntu host has:
# no tool to download or pin, and the package's maintainer scripts (system
# user, key directory modes, systemd) are plain sh we test in CI
# (scripts/install-test.sh). nfpm or goreleaser would add a Go module tree
# to fetch for what is here three files and one dpkg-deb call per arch.
#
# Needs: go, git, dpkg-deb, sha256sum. Aims at reproducible output (not yet
# checked byte for byte): -trimpath, no build
# ID, file times from the commit (SOURCE_DATE_EPOCH).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist"
want=""
download=""
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift 2 ;;
	-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
	--download-deps) download=1; shift ;;
	v*) want=$1; shift ;;
	*) echo "release.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
for tool in go git dpkg-deb sha256sum; do
	command -v "$tool" >/dev/null || { echo "release.sh: $tool not found" >&2; exit 1; }
done
semver='^v[0-9]+\.[0-9]+\.[0-9]+$'
# latest_release prints the last "version commit" line of RELEASES.
latest_release() { grep -E '^v[0-9]' "$root/RELEASES" | tail -n 1 | awk '{print $1, $2}'; }

if [ -n "$download" ]; then
	read -r last lastcommit < <(latest_release)
	tmp=$(mktemp -d /tmp/hanode-deps-XXXXXX)
	trap 'rm -rf "$tmp"' EXIT
	git -C "$root" show "$lastcommit:go.mod" >"$tmp/go.mod"
	git -C "$root" show "$lastcommit:go.sum" >"$tmp/go.sum"
	echo "== go mod download for $last ($lastcommit)"
	(cd "$tmp" && go mod download)
	exit 0
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

src=$root
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done' EXIT
if [ -n "$want" ]; then
	[[ $want =~ $semver ]] || { echo "release.sh: $want is not vMAJOR.MINOR.PATCH" >&2; exit 2; }
	commit=$(awk -v v="$want" '$1 == v {print $2}' "$root/RELEASES")
	[ -n "$commit" ] || { echo "release.sh: $want is not recorded in RELEASES" >&2; exit 2; }
	git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null || {
		echo "release.sh: commit $commit of $want is not in this clone (a shallow clone? git fetch --unshallow)" >&2; exit 1; }
	version=$want
	if [ "$(git -C "$root" rev-parse HEAD)" != "$commit" ] || [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
		src=$(mktemp -d /tmp/hanode-release-XXXXXX)
		cleanup+=("git -C '$root' worktree remove --force '$src' 2>/dev/null; rm -rf '$src'")
		git -C "$root" worktree add --quiet --detach "$src" "$commit"
	fi
else
	commit=$(git -C "$root" rev-parse HEAD)
	read -r last lastcommit < <(latest_release || true) || true
	base=${last:-v0.0.0}
	stamp=$(TZ=UTC git -C "$root" log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S "$commit")
	if [ "$commit" = "${lastcommit:-}" ]; then
		version=$base
	else
		version="$base+dev.$stamp.${commit:0:12}"
	fi
	if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
		version="$version.dirty"
		[[ $version == *+* ]] || version="${version/.dirty/+dirty}"
	fi
fi
# Debian: no leading v; "+dev..." sorts after the release it follows and
# before the next one.
debversion=${version#v}
export SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct "$commit")
echo "== hanode $version (commit $commit), into $out"

pkg=github.com/hanode/hanode/internal/buildinfo
ldflags="-s -w -buildid= -X $pkg.version=$version -X $pkg.commit=$commit"
# An old release without internal/buildinfo still reads main.version.
if [ ! -d "$src/internal/buildinfo" ]; then ldflags="$ldflags -X main.version=$version"; fi

unit="$src/scripts/hanode.service"
conf="$src/scripts/deb/hanode.toml"
[ -f "$conf" ] || conf="$root/scripts/deb/hanode.toml"
debdir="$src/scripts/deb"
[ -d "$debdir" ] || debdir="$root/scripts/deb"

files=()
for arch in amd64 arm64; do
	bin="$out/hanode-$version-linux-$arch"
	echo "== go build linux/$arch"
	(cd "$src" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-buildvcs=false \
		go build -trimpath -ldflags "$ldflags" -o "$bin" ./cmd/hanode)
	files+=("$(basename "$bin")")

	echo "== dpkg-deb $arch"
	stage=$(mktemp -d /tmp/hanode-deb-XXXXXX)
	cleanup+=("rm -rf '$stage'")
	chmod 0755 "$stage"
	install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
		"$stage/etc/hanode" "$stage/usr/share/doc/hanode"
	install -m 0755 "$bin" "$stage/usr/bin/hanode"
	# The unit in the repository documents a manual install under
	# /usr/local; the package installs the binary in /usr/bin.
	grep -q '^ExecStart=/usr/local/bin/hanode ' "$unit" || {
		echo "release.sh: $unit: ExecStart is not /usr/local/bin/hanode ...: update the path rewrite here" >&2; exit 1; }
	sed 's|^ExecStart=/usr/local/bin/hanode |ExecStart=/usr/bin/hanode |' "$unit" >"$stage/lib/systemd/system/hanode.service"
	chmod 0644 "$stage/lib/systemd/system/hanode.service"
	# The directory is 0750 root:hanode and the file 0640 root:hanode once
	# postinst has made the user (dpkg-statoverride).
	install -m 0640 "$conf" "$stage/etc/hanode/hanode.toml"
	chmod 0750 "$stage/etc/hanode"
	for doc in README.md CHANGELOG.md; do
		[ -f "$src/$doc" ] && install -m 0644 "$src/$doc" "$stage/usr/share/doc/hanode/$doc"
	done
	for s in postinst prerm postrm; do install -m 0755 "$debdir/$s" "$stage/DEBIAN/$s"; done
	echo /etc/hanode/hanode.toml >"$stage/DEBIAN/conffiles"
	size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
	sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
		"$debdir/control" >"$stage/DEBIAN/control"
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	deb="$out/hanode_${debversion}_$arch.deb"
	dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
	files+=("$(basename "$deb")")
done

(cd "$out" && sha256sum "${files[@]}" >SHA256SUMS)
echo "== artifacts in $out"
(cd "$out" && ls -l "${files[@]}" SHA256SUMS)
