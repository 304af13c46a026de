#!/bin/sh
# run-all.sh BUILD - every test of `make test`: unit, integration, then the
# suites later work adds. Each stage ends with "NAME: N passed, M failed";
# the last line sums them as "N passed, M failed". A stage that exits
# non-zero, or prints no summary, counts as a failure.
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp)
rcf=$(mktemp)
trap 'rm -f "$out" "$rcf"' EXIT

status=0
stages=0
stage() {
	stages=$((stages + 1))
	{ "$@" 2>&1; echo $? >"$rcf"; } | tee -a "$out"
	[ "$(cat "$rcf")" = 0 ] || status=1
}

stage tests/run-unit.sh "$build"/tests/test_*
stage "$build"/tests/integration --build "$build"
[ -x "$build"/tests/conformance ] && stage "$build"/tests/conformance --build "$build"
[ -x perf/bench-selftest.sh ] && stage perf/bench-selftest.sh "$build"
[ -x tests/run-deploy.sh ] && stage tests/run-deploy.sh "$build"
[ -x tests/mesh/run.sh ] && stage tests/mesh/run.sh "$build"
[ -x tests/mesh/connect.sh ] && stage tests/mesh/connect.sh "$build"
[ -x tests/mesh/ambient.sh ] && stage tests/mesh/ambient.sh "$build"
[ -x tests/run-extra.sh ] && stage tests/run-extra.sh "$build"
[ -x tests/run-vm.sh ] && stage tests/run-vm.sh "$build"

awk -v st=$status -v stages=$stages '
	/^[a-z-]+: [0-9]+ passed, [0-9]+ failed/ {
		p += $2; f += $4; n++
		if ($7 ~ /^skipped/) k += $6
	}
	END { if (n < stages && !f) f = 1; if (st && !f) f = 1
	      printf "%d passed, %d failed", p, f
	      if (k) printf ", %d skipped", k
	      printf "\n"; exit (f > 0) }' "$out"
