# private-daemon.sh - a private sockmeshd for scripts (sourced): its own pin
# dir under /sys/fs/bpf, run dir under /tmp and cgroup, on_exit = detach.
# Used by perf/real-clients.sh (and scripts/compare.sh through it),
# perf/run-bench.sh, perf/bench-selftest.sh.
#
#   sm_daemon_start BUILD TAG   sets sm_run (the run dir, for temp files too),
#                               sm_conf, sm_pid; 0, or 1 with a message;
#                               SM_COMPAT (strict, the default, or fast) is
#                               its compat
#   sm_daemon_stop              SIGTERM and wait; the daemon removes its pins
#   sm_daemon_cleanup           stop, and remove whatever is left
#   sm_daemon_traps             on exit or a signal: sm_on_exit (if the
#                               caller defines it), then sm_daemon_cleanup;
#                               the exit status is kept

# sourced from the repository root, as the scripts that use it are run
. scripts/lib.sh

sm_pid=""
sm_build=""
sm_tag=""
sm_run=""
sm_conf=""
sm_cgmnt=""

sm_daemon_start() {
	sm_build=$1
	sm_tag=$2
	sm_run=/tmp/$2
	sm_conf=$sm_run/sockmesh.ini
	sm_cgmnt=$(sm_cgroup2_mount)
	mkdir -p "$sm_run" || return 1
	cat >"$sm_conf" <<EOC
[daemon]
pin_dir = /sys/fs/bpf/$sm_tag
run_dir = $sm_run
metrics = off
on_exit = detach
[accelerate]
cgroups = $sm_tag
compat = ${SM_COMPAT:-strict}
EOC
	"$sm_build"/sockmeshd -c "$sm_conf" 2>"$sm_run/sockmeshd.log" &
	sm_pid=$!
	i=0
	while [ ! -f "$sm_run/sockmeshd.pid" ]; do
		if ! kill -0 "$sm_pid" 2>/dev/null; then
			echo "sockmeshd did not start:" >&2
			cat "$sm_run/sockmeshd.log" >&2
			sm_pid=""
			return 1
		fi
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then
			echo "sockmeshd not ready after 10 s" >&2
			return 1
		fi
		sleep 0.1
	done
	return 0
}

sm_daemon_stop() {
	if [ -n "$sm_pid" ] && kill -0 "$sm_pid" 2>/dev/null; then
		kill -TERM "$sm_pid"
		wait "$sm_pid" 2>/dev/null || true
	fi
	sm_pid=""
}

sm_daemon_cleanup() {
	[ -n "$sm_tag" ] || return 0
	sm_daemon_stop
	# on_exit = detach removed the pins, unless the daemon died hard
	if [ -d "/sys/fs/bpf/$sm_tag" ]; then
		"$sm_build"/sockmesh unload -c "$sm_conf" >/dev/null 2>&1 || true
		rmdir "/sys/fs/bpf/$sm_tag" 2>/dev/null || true
	fi
	# bench processes killed with us may take a moment to leave the cgroup
	i=0
	while [ -n "$sm_cgmnt" ] && [ -d "$sm_cgmnt/$sm_tag" ] && [ "$i" -lt 30 ]; do
		rmdir "$sm_cgmnt/$sm_tag" 2>/dev/null || sleep 0.1
		i=$((i + 1))
	done
	rm -rf "$sm_run"
	return 0
}

sm__exit() {
	status=$?
	trap - EXIT HUP INT PIPE TERM
	if command -v sm_on_exit >/dev/null 2>&1; then
		sm_on_exit
	fi
	sm_daemon_cleanup
	exit "$status"
}

sm_daemon_traps() {
	trap sm__exit EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 141' PIPE
	trap 'exit 143' TERM
}
