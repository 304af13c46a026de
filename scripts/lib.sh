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
#   sm_sockperf_ul FILE what `sockperf ul --full-rtt` printed in FILE, as
#                       "RATE P50_US P99_US AVG_US SENT RECEIVED" (the rate:
#                       sent / valid duration); 1 if FILE has no result

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

sm_sockperf_ul() {
	sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
		/\[Valid Duration\]/ {
			for (i = 1; i <= NF; i++) {
				split($i, kv, "=")
				v = kv[2]
				sub(/;.*/, "", v)
				if (kv[1] ~ /RunTime$/) rt = v + 0
				else if (kv[1] == "SentMessages") sent = v + 0
				else if (kv[1] == "ReceivedMessages") recvd = v + 0
			}
		}
		/avg-rtt=/ { sub(/.*avg-rtt=/, ""); avg = $1 + 0 }
		/percentile 50.000 =/ { p50 = $NF + 0 }
		/percentile 99.000 =/ { p99 = $NF + 0 }
		END {
			if (!rt || p50 == "" || p99 == "") exit 1
			printf "%.1f %s %s %s %d %d\n", sent / rt, p50, p99, avg + 0, sent, recvd
		}'
}
