#!/usr/bin/env bash
# Runs every Go fuzz target of the module (every `func FuzzXxx` in a
# _test.go file) for a while each, and fails if any target fails.
#
#   bash scripts/fuzz.sh            # 10 seconds per target
#   bash scripts/fuzz.sh 600        # 10 minutes per target
#   JOBS=2 bash scripts/fuzz.sh 600 # two targets at a time (each -parallel=1)
#   bash scripts/fuzz.sh 30 ./multicast   # only the targets of some packages
#
# A failing input is written by `go test` under the package's
# testdata/fuzz/FuzzXxx/ and then replays as a regular test case.
# One log per target goes to ${FUZZ_LOGS:-/tmp/hanode-fuzz}/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(.)
jobs=${JOBS:-1}
logs=${FUZZ_LOGS:-/tmp/hanode-fuzz}
mkdir -p "$logs"

# "package-dir target" per line, sorted.
# Nested modules (a go.mod below the root) are not this module's packages.
nested=$(find . -mindepth 2 -name go.mod -not -path './.git/*' -printf '%h/\n' | sed 's#^\./##')
targets=$(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' "${dirs[@]}" |
	sed 's#^\./##' | { if [ -n "$nested" ]; then grep -v -F "$nested"; else cat; fi; } |
	sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)#\1 \2#' | sort -u)
[ -n "$targets" ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }
echo "== fuzz: $(echo "$targets" | wc -l) targets, ${secs}s each, $jobs at a time"

run_one() {
	local dir=$1 name=$2 secs=$3 logs=$4
	local log="$logs/$(echo "$dir" | tr '/.' '__')_$name.log"
	local start end rc=0
	start=$(date +%s)
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" -parallel=1 "./${dir#./}" >"$log" 2>&1 || rc=$?
	end=$(date +%s)
	# The fuzzer can report "context deadline exceeded" when -fuzztime ends
	# while it is still minimizing a new interesting input: no input
	# failed then (a real failure writes "Failing input written to").
	if [ "$rc" != 0 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
		echo "note $dir $name: time ran out while minimizing an interesting input (not a failure)"
		rc=0
	fi
	if [ "$rc" = 0 ]; then
		echo "ok   $dir $name $((end - start))s ($(grep -o 'execs: [0-9]*' "$log" | tail -1))"
	else
		echo "FAIL $dir $name $((end - start))s (log: $log)"
		tail -30 "$log" | sed 's/^/    /'
	fi
	return "$rc"
}
export -f run_one

rc=0
echo "$targets" | xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1" '"$secs $logs" || rc=$?
if [ "$rc" != 0 ]; then
	echo "fuzz.sh: some fuzz targets failed (see above)" >&2
	exit 1
fi
echo "== fuzz: all targets passed"
