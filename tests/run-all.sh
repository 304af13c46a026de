#!/bin/sh
# run-all.sh BUILD - every test of `make test`: unit, then integration.
# Ends with one line "N passed, M failed" over all of them.
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

status=0
tests/run-unit.sh "$build"/tests/test_* 2>&1 | tee -a "$out" || status=1
"$build"/tests/integration --build "$build" 2>&1 | tee -a "$out" || status=1
# a failing stage must show in the totals, whatever it printed
awk -v st=$status '
	/^(unit|integration): [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4; n++ }
	END { if (n < 2 && !f) f = 1; if (st && !f) f = 1
	      printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$out"
