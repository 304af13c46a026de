#!/bin/sh
# run-unit.sh - run the cmocka unit test binaries given as arguments, show
# their output, and sum up their test cases on the last line:
#
#	unit: N passed, M failed
#
# N and M come from cmocka's "[  PASSED  ] N test(s)." and
# "[  FAILED  ] M test(s)," lines. A binary that prints no summary (it
# crashed, or is not a cmocka binary) counts as one failure, and so does one
# that exits non-zero without reporting a failed test.
# Exits 1 if anything failed, 2 if no binary was given.
#
# Usage: tests/run-unit.sh build/tests/test_*    (`make test-unit` does this)

passed=0
failed=0

if [ $# -eq 0 ]; then
	echo "usage: $0 TEST_BINARY..." >&2
	echo "unit: 0 passed, 0 failed"
	exit 2
fi

out=$(mktemp "${TMPDIR:-/tmp}/run-unit.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT
trap 'exit 130' INT TERM

for bin in "$@"; do
	echo "== $bin"
	# cmocka prints its summary on stderr: keep both streams, in order
	CMOCKA_MESSAGE_OUTPUT=stdout "$bin" >"$out" 2>&1
	status=$?
	cat "$out"

	# found (a summary), passed, failed: summed over the binary's groups
	summary=$(awk '
		/^\[  PASSED  \] [0-9]+ test\(s\)\.$/ { found = 1; p += $4 }
		/^\[  FAILED  \] [0-9]+ test\(s\),/ { f += $4 }
		END { print found + 0, p + 0, f + 0 }' "$out")
	read -r found p f <<-SUMMARY
	$summary
	SUMMARY
	if [ "$found" -eq 0 ]; then
		echo "run-unit: $bin printed no summary (exit status $status): one failure"
		failed=$((failed + 1))
		continue
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "run-unit: $bin exited with status $status but reported no failed test: one failure"
		failed=$((failed + 1))
	fi
done

echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
