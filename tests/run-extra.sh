#!/bin/sh
# run-extra.sh BUILD - bad input, the last stage of `make test` (which
# builds what it runs: tests/extra.mk). Five checks:
#
#   fuzz-config        the libFuzzer harnesses, FUZZ_SHORT seconds each (20),
#   fuzz-cli           both at once, from tests/fuzz/corpus (and what
#                      `make fuzz` gathered in BUILD/fuzz/corpus)
#   asan-unit          the unit tests built with ASan + UBSan (BUILD/asan)
#   asan-integration   the integration suite against the ASan build
#   valgrind-daemon    sockmeshd (BUILD) start, SIGHUP, SIGTERM under valgrind
#                      on a private config: no error, no leak
#
# A sanitizer report anywhere, in a daemon that a test started too, fails
# the check (reports go to files: log_path). Each check ends with a line
# "ok   NAME (N s)" or "FAIL NAME: why"; the last line is
#
#	extra: N passed, M failed
#
# and the exit status is 1 if anything failed. Needs root (real BPF).
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
. scripts/lib.sh
fuzz_seconds=${FUZZ_SHORT:-20}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-extra.XXXXXX") || exit 1
passed=0
failed=0
vg_pid=
vg_cg=
vg_pins=

cleanup() {
	if [ -n "$vg_pid" ] && kill -0 "$vg_pid" 2>/dev/null; then
		kill -KILL "$vg_pid"
		wait "$vg_pid" 2>/dev/null
	fi
	# a daemon that did not stop cleanly leaves pins; the links go with them
	[ -n "$vg_pins" ] && [ -e "$vg_pins" ] && rm -rf "$vg_pins"
	if [ -n "$vg_cg" ]; then
		mnt=$(sm_cgroup2_mount)
		[ -n "$mnt" ] && [ -d "$mnt/$vg_cg" ] && rmdir "$mnt/$vg_cg"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(now)

# ok NAME START / fail NAME WHY

# Show a log indented: its summary lines are not this stage's.
show() {
	sed 's/^/    /' "$@"
}

need() {
	for f in "$@"; do
		if [ ! -x "$f" ]; then
			echo "    $f is missing: \`make test\` builds it"
			return 1
		fi
	done
}

# --- fuzzing ---------------------------------------------------------------

fuzz() {
	mkdir -p "$tmp/corpus-$1" "$build/fuzz/artifacts"
	set -- "$1" "$tmp/corpus-$1" "tests/fuzz/corpus/$1"
	[ -d "$build/fuzz/corpus/$1" ] && set -- "$@" "$build/fuzz/corpus/$1"
	"$build/fuzz/fuzz_$1" -max_total_time="$fuzz_seconds" \
		-print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/$1-" \
		"$2" "$3" ${4:+"$4"} >"$tmp/fuzz-$1.log" 2>&1
	echo $? >"$tmp/fuzz-$1.rc"
}

fuzz_result() {
	if [ ! -e "$tmp/fuzz-$1.rc" ]; then
		fail "fuzz-$1" "not built"
		return
	fi
	rc=$(cat "$tmp/fuzz-$1.rc")
	runs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' \
		"$tmp/fuzz-$1.log")
	if [ "$rc" = 0 ] && [ -n "$runs" ]; then
		echo "    fuzz_$1: $runs inputs in $fuzz_seconds s"
		ok "fuzz-$1" "$2"
		return
	fi
	grep -v -e '^#[0-9]' -e '^INFO:' "$tmp/fuzz-$1.log" | tail -n 40 | show
	fail "fuzz-$1" "exit status $rc; the input is in $build/fuzz/artifacts/"
}

echo "== fuzz: $fuzz_seconds s each"
t0=$(now)
if need "$build/fuzz/fuzz_config" "$build/fuzz/fuzz_cli"; then
	fuzz config &
	p1=$!
	fuzz cli &
	p2=$!
	wait "$p1" "$p2"
fi
fuzz_result config "$t0"
fuzz_result cli "$t0"

# --- ASan + UBSan ----------------------------------------------------------

san="$tmp/sanitizers"
mkdir -p "$san"

# sanitized NAME START CMD... : CMD exits 0 and no process reported
sanitized() {
	name=$1 t=$2
	shift 2
	ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$san/asan" \
		UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$san/ubsan" \
		"$@" >"$tmp/$name.log" 2>&1
	rc=$?
	show "$tmp/$name.log"
	reports=$(ls "$san")
	if [ -n "$reports" ]; then
		for r in $reports; do
			echo "    --- $r"
			show "$san/$r"
		done
		rm -f "$san"/*
		fail "$name" "sanitizer reports: $(echo "$reports" | tr "\n" " ")"
	elif [ "$rc" != 0 ]; then
		fail "$name" "exit status $rc"
	else
		ok "$name" "$t"
	fi
}

echo "== ASan + UBSan: unit tests ($build/asan)"
t0=$(now)
set -- "$build"/asan/tests/test_*
if need "$@"; then
	sanitized asan-unit "$t0" tests/run-unit.sh "$@"
else
	fail asan-unit "not built"
fi

echo "== ASan + UBSan: integration tests ($build/asan)"
t0=$(now)
if need "$build/asan/tests/integration" "$build/asan/sockmeshd" \
	"$build/asan/sockmesh"; then
	sanitized asan-integration "$t0" \
		"$build/asan/tests/integration" --build "$build/asan"
else
	fail asan-integration "not built"
fi

# --- valgrind --------------------------------------------------------------

# wait_for SECONDS CMD... : until CMD succeeds, or fail after SECONDS
wait_for() {
	n=$(($1 * 10))
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

pid_file_is_ours() {
	[ "$(cat "$tmp/run/sockmeshd.pid" 2>/dev/null)" = "$vg_pid" ]
}
daemon_gone() {
	! kill -0 "$vg_pid" 2>/dev/null
}
daemon_ready_or_gone() {
	pid_file_is_ours || daemon_gone
}
daemon_logged() {
	grep -q "$1" "$tmp/daemon.log"
}

valgrind_cycle() {
	vg_cg=sockmesh-vg-$$
	vg_pins=/sys/fs/bpf/sockmesh-vg-$$
	cat >"$tmp/vg.ini" <<-EOF
	[daemon]
	pin_dir = $vg_pins
	run_dir = $tmp/run
	metrics = off
	on_exit = detach

	[accelerate]
	cgroups = $vg_cg
	EOF
	valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 --suppressions=tests/valgrind.supp \
		--log-file="$tmp/valgrind.log" \
		"$build/sockmeshd" -c "$tmp/vg.ini" >"$tmp/daemon.log" 2>&1 &
	vg_pid=$!
	wait_for 60 daemon_ready_or_gone
	if ! pid_file_is_ours; then
		why="no pid file after 60 s"
		daemon_gone && why="it exited before writing its pid file"
		return 1
	fi
	kill -HUP "$vg_pid"
	if ! wait_for 20 daemon_logged SIGHUP; then
		why="SIGHUP not taken"
		return 1
	fi
	kill -TERM "$vg_pid"
	if ! wait_for 60 daemon_gone; then
		why="still running 60 s after SIGTERM"
		return 1
	fi
	wait "$vg_pid"
	rc=$?
	vg_pid=
	if [ "$rc" = 99 ]; then
		why="valgrind found errors"
	elif [ "$rc" != 0 ]; then
		why="exit status $rc"
	elif ! grep -q 'ERROR SUMMARY: 0 errors' "$tmp/valgrind.log"; then
		why="no clean ERROR SUMMARY"
	elif [ -n "$(ls "$vg_pins" 2>/dev/null)" ] || [ -e "$tmp/run/sockmeshd.pid" ]; then
		why="on_exit = detach left pins or the pid file"
	else
		return 0
	fi
	return 1
}

echo "== valgrind: sockmeshd start, SIGHUP, SIGTERM ($build)"
t0=$(now)
why=
if ! command -v valgrind >/dev/null; then
	fail valgrind-daemon "valgrind is not installed (scripts/setup.sh)"
elif need "$build/sockmeshd" && valgrind_cycle; then
	grep -E 'in use at exit|ERROR SUMMARY' "$tmp/valgrind.log" |
		sed 's/^==[0-9]*== */    /'
	ok valgrind-daemon "$t0"
else
	if [ -n "$vg_pid" ]; then
		kill -KILL "$vg_pid" 2>/dev/null
		wait "$vg_pid"
		vg_pid=
	fi
	echo "    --- sockmeshd"
	show "$tmp/daemon.log" 2>/dev/null
	echo "    --- valgrind"
	grep -v '^--' "$tmp/valgrind.log" 2>/dev/null | show
	fail valgrind-daemon "${why:-not built}"
fi

echo "    run-extra.sh took $(($(now) - start)) s"
echo "extra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
