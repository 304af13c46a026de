#!/bin/sh
# compare.sh - redis-benchmark GET and sockperf ping-pong, plain loopback TCP
# vs accelerated, interleaved in one run. Needs root, redis-server,
# redis-tools and sockperf (apt-get install redis-server redis-tools sockperf).
# Uses a private cgroup, pin dir and ports; removes them when done.
#   usage: scripts/compare.sh [ROUNDS]   (default 3)
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
pids=""
sm_on_exit() { # the servers, before the daemon and its cgroup go
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait $pids 2>/dev/null || true
}
. scripts/private-daemon.sh
sm_daemon_traps
sm_daemon_start build "sockmesh-compare-$$" || exit 1
conf=$sm_conf
accel="build/sockmesh run -c $conf --"

redis-server --port 7381 --save '' --appendonly no --daemonize no >/dev/null & pids="$pids $!"
$accel redis-server --port 7382 --save '' --appendonly no --daemonize no >/dev/null & pids="$pids $!"
sockperf sr --tcp -i 127.0.0.1 -p 11381 >/dev/null 2>&1 & pids="$pids $!"
$accel sockperf sr --tcp -i 127.0.0.1 -p 11382 >/dev/null 2>&1 & pids="$pids $!"
sleep 1

rps() { # PORT CLIENTS [accel]
	cmd="redis-benchmark -p $1 -t get -n 100000 -c $2 -q"
	[ "${3:-}" ] && cmd="$accel $cmd"
	$cmd 2>/dev/null | tr '\r' '\n' | awk '/requests per second/ {print $2; exit}'
}
lat() { # PORT [accel]
	cmd="sockperf pp --tcp -i 127.0.0.1 -p $1 -t 3 -m 64"
	[ "${2:-}" ] && cmd="$accel $cmd"
	$cmd 2>&1 | awk '/avg-latency/ {print $0; exit}' | sed 's/.*avg-latency=\([0-9.]*\).*/\1/'
}
echo "round  get_c1_plain get_c1_accel  get_c50_plain get_c50_accel  pp64_plain_us pp64_accel_us"
for r in $(seq "$rounds"); do
	printf '%-6s %-12s %-13s %-13s %-14s %-13s %s\n' "$r" \
		"$(rps 7381 1)" "$(rps 7382 1 a)" "$(rps 7381 50)" "$(rps 7382 50 a)" \
		"$(lat 11381)" "$(lat 11382 a)"
done
echo
build/sockmesh status -c "$conf"
