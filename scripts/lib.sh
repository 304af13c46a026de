# lib.sh - what the test, bench and deploy scripts share (sourced, POSIX sh).
#
#   sm_cgroup2_mount    print the cgroup2 mount: /sys/fs/cgroup or
#                       /sys/fs/cgroup/unified when one of them is (as
#                       sockmeshd chooses), else the first in /proc/mounts
#   now                 seconds since the epoch
#   ok NAME [T0]        count a pass (passed), say it, with the seconds
#                       since T0 if given
#   fail NAME WHY       count a failure (failed), say it
#   show [FILE...]      the lines indented, as a log under a result

sm_cgroup2_mount() {
	for _m in /sys/fs/cgroup /sys/fs/cgroup/unified; do
		if awk -v m="$_m" '$2 == m && $3 == "cgroup2" { f = 1 } END { exit !f }' \
			/proc/mounts; then
			echo "$_m"
			return 0
		fi
	done
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

now() { date +%s; }

ok() {
	passed=$((${passed:-0} + 1))
	if [ -n "${2:-}" ]; then
		echo "ok   $1 ($(($(now) - $2)) s)"
	else
		echo "ok   $1"
	fi
}

fail() {
	failed=$((${failed:-0} + 1))
	echo "FAIL $1: $2"
}

show() {
	sed 's/^/    /' "$@"
}
