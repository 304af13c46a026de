#!/bin/bash
# test-kernels.sh - the integration and conformance suites under Debian's own
# kernels, each booted in qemu (scripts/kernels/vm-run.sh), and a kernel x
# suite table of passed, failed, skipped and time.
#
# Usage: scripts/kernels/test-kernels.sh [-b BUILD] [-o FILE] [-s SUITES] [ID...]
#   ID       kernels of scripts/kernels/kernels.list (default: every one)
#   -b BUILD the build directory (default build), already built (make test-kernels)
#   -s LIST  suites, comma list of integration, conformance (default both)
#   -o FILE  also write the table, in Markdown, to FILE: between its
#            <!-- test-kernels --> markers if it has them, else all of it
# Exit status: 0 when every suite of every kernel passed, 1 otherwise. The
# last line reads "kernels: N passed, M failed[, K skipped]" (tests summed).
# Each suite's output is kept in BUILD/kernels/ID-SUITE.log.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# the tree the binaries were built from: read now, not when the table is
# written, which may be half an hour and some commits later
rev=$(git -C "$root" describe --always --dirty 2>/dev/null)
build=build
out=
suites=integration,conformance
while getopts b:o:s: o; do
	case $o in
	b) build=$OPTARG ;;
	o) out=$OPTARG ;;
	s) suites=$OPTARG ;;
	*) echo "usage: $0 [-b BUILD] [-o FILE] [-s SUITES] [ID...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
ids=("$@")
[ ${#ids[@]} -gt 0 ] || mapfile -t ids < <(awk '!/^#/ && NF >= 3 {print $1}' "$here/kernels.list")
cd "$root"
for s in ${suites//,/ }; do
	[ -x "$build/tests/$s" ] || { echo "test-kernels: $build/tests/$s missing: run make test-kernels" >&2; exit 2; }
done
mkdir -p "$build/kernels"
"$here/fetch.sh" -q "${ids[@]}" >"$build/kernels/versions" || exit 1
table=$(mktemp)
trap 'rm -f "$table" "$table.run"' EXIT
status=0 tp=0 tf=0 tk=0
printf '| kernel | Debian package version | suite | passed | failed | skipped | time |\n| --- | --- | --- | --- | --- | --- | --- |\n' >"$table"
for id in "${ids[@]}"; do
	ver=$(awk -v id="$id" '$1 == id {print $2}' "$build/kernels/versions")
	krel=$(awk -v id="$id" '$1 == id {print $3}' "$build/kernels/versions")
	for s in ${suites//,/ }; do
		log=$build/kernels/$id-$s.log
		t0=$(date +%s)
		rc=0
		"$here/vm-run.sh" -q -k "$id" -t 2400 -C "$root" -- \
			"$build/tests/$s" --build "$build" >"$log" 2>&1 || rc=$?
		t=$(($(date +%s) - t0))
		line=$(grep -E "^$s: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
		p=$(echo "$line" | awk '{print $2+0}')
		f=$(echo "$line" | awk '{print $4+0}')
		k=$(echo "$line" | awk '{print ($7 ~ /^skipped/) ? $6+0 : 0}')
		if [ -z "$line" ]; then
			f=1 p=0 k=0
			echo "test-kernels: $id $s: no summary (exit $rc), see $log" >&2
		fi
		[ "$rc" = 0 ] && [ "$f" = 0 ] || status=1
		tp=$((tp + p)) tf=$((tf + f)) tk=$((tk + k))
		printf '| %s (%s) | %s | %s | %s | %s | %s | %d s |\n' "$id" "$krel" "$ver" "$s" "$p" "$f" "$k" "$t" >>"$table"
		printf 'test-kernels: %s %s: %s passed, %s failed, %s skipped, %d s\n' "$id" "$s" "$p" "$f" "$k" "$t" >&2
	done
done
cat "$table"
if [ -n "$out" ]; then
	# the run's part: between the markers of FILE, whose other text (what
	# the rows mean, written by people) is kept; the whole file if it has
	# no markers
	run="$table.run"
	{
		echo "<!-- test-kernels: written by scripts/kernels/test-kernels.sh -->"
		echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'), sockmesh $rev:"
		echo
		cat "$table"
		echo "<!-- /test-kernels -->"
	} >"$run"
	if [ -f "$out" ] && grep -q '^<!-- test-kernels' "$out" &&
		grep -q '^<!-- /test-kernels -->' "$out"; then
		awk -v run="$run" '
			/^<!-- test-kernels/ { while ((getline l < run) > 0) print l; skip = 1; next }
			/^<!-- \/test-kernels -->/ { skip = 0; next }
			!skip' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
	else
		{
			echo "# Kernels: the suites under Debian's own kernels"
			echo
			echo "Each kernel is Debian's own package, booted under qemu (TCG) by"
			echo "scripts/kernels/vm-run.sh on this machine's root; the suites are"
			echo "the same binaries as on the host. Logs: build/kernels/ID-SUITE.log."
			echo
			cat "$run"
		} >"$out"
	fi
fi
printf 'kernels: %d passed, %d failed' "$tp" "$tf"
[ "$tk" = 0 ] || printf ', %d skipped' "$tk"
printf '\n'
exit $status
