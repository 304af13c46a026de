#!/bin/sh
# real-clients.sh - unmodified clients and servers from Debian, plain
# loopback TCP vs sockmesh-accelerated (and UNIX sockets where the tool has
# them), interleaved in one run, median of the rounds, with the sockmesh
# counters of every accelerated run. Part of `make bench`.
#
#   perf/real-clients.sh [OPTIONS] [BUILD]
#     --quick          1 round of 2 s per run (about 2 minutes): for development
#     --rounds N       rounds (default 5); every figure is the median
#     --time S         seconds per run, an integer (default 3)
#     --only LIST      groups: iperf3,sockperf,redis,pgbench,lang,http (default: all)
#     --compat MODE    the accelerated runs' compat: strict (the default) or
#                      fast (sockmesh.ini(5))
#     --out PREFIX     write PREFIX.json, PREFIX.md, PREFIX.svg; default
#                      perf/results/real-clients (and the table goes into
#                      perf/README.md), or build/real-clients-quick with --quick
#     --report JSON    no measuring: write the report (md, svg; the README
#                      table if JSON is perf/results/real-clients.json) again
#                      from a JSON report, e.g. after the report's format changed
#   RC_HTTP_CONNS=8    wrk connections (one thread)
#
# Every server and client runs in a private network namespace (only its
# loopback), so fixed ports meet nothing else on the host. plain: a private
# cgroup that sockmesh is not attached to; accel: `sockmesh run` into the
# cgroup of a private sockmeshd (scripts/private-daemon.sh); uds: UNIX socket
# in a run dir, plain cgroup. Servers are started through exec chains, so
# the PID held is the server's; each is stopped by that PID, and at the end
# the script checks that none is left. Needs root.
set -eu
cd "$(dirname "$0")/.."

die() {
	echo "real-clients.sh: $*" >&2
	exit 2
}
usage() {
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "${1:-0}"
}

args="$*"
from=""
rounds=5
time_s=3
only=iperf3,sockperf,redis,pgbench,lang,http
out=""
quick=0
build=build
while [ $# -gt 0 ]; do
	case $1 in
	--quick)
		quick=1
		rounds=1
		time_s=2
		;;
	--compat)
		[ $# -ge 2 ] || die "--compat needs a value"
		case $2 in strict | fast) ;; *) die "--compat must be strict or fast, not '$2'" ;; esac
		SM_COMPAT=$2
		export SM_COMPAT
		shift
		;;
	--rounds)
		[ $# -ge 2 ] || die "--rounds needs a value"
		rounds=$2
		shift
		;;
	--time)
		[ $# -ge 2 ] || die "--time needs a value"
		time_s=$2
		shift
		;;
	--only)
		[ $# -ge 2 ] || die "--only needs a value"
		only=$2
		shift
		;;
	--out)
		[ $# -ge 2 ] || die "--out needs a value"
		out=$2
		shift
		;;
	--report)
		[ $# -ge 2 ] || die "--report needs a value"
		from=$2
		shift
		;;
	-h | --help) usage 0 ;;
	-*) die "unknown option '$1' (--help lists them)" ;;
	*) build=$1 ;;
	esac
	shift
done
case $rounds in '' | *[!0-9]* | 0) die "--rounds: '$rounds' is not a number from 1" ;; esac
case $time_s in '' | *[!0-9]* | 0) die "--time: '$time_s' is not a whole number of seconds from 1" ;; esac
for g in $(echo "$only" | tr ',' ' '); do
	case $g in iperf3 | sockperf | redis | pgbench | lang | http) ;; *) die "--only: unknown group '$g' (iperf3, sockperf, redis, pgbench, lang, http)" ;; esac
done
if [ -z "$out" ] && [ -n "$from" ]; then
	out=${from%.json}
elif [ -z "$out" ]; then
	if [ "$quick" = 1 ]; then out=$build/real-clients-quick; else out=perf/results/real-clients; fi
fi
http_conns=${RC_HTTP_CONNS:-8}

# The workloads, in run order: one table for the runs, the report and the plot.
#   id|group|param|transports|label|metric|unit|better|role
# role: main (the table, the plot), or xcheck:ID: a sockmesh-bench run beside
# workload ID, to check that both see the same plain TCP. An under-load
# PARAM is SIZE@P%: P % of plain TCP's closed-loop rate at SIZE on one
# connection, measured on this machine when the group starts (a fixed rate
# is more than a slow machine can do with one request in flight, and a run
# short of its rate is refused)
workloads() {
	cat <<'EOW'
iperf3-1K|iperf3|1K|plain,accel|iperf3, 1 KiB writes|gbit_s|Gbit/s|higher|main
bench-rw-1K|iperf3|1K|plain,accel|sockmesh-bench stream-rw, 1 KiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-1K
bench-rwp-1K|iperf3|1K|plain|sockmesh-bench stream-rw --rw-poll, 1 KiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-1K
iperf3-16K|iperf3|16K|plain,accel|iperf3, 16 KiB writes|gbit_s|Gbit/s|higher|main
bench-rw-16K|iperf3|16K|plain,accel|sockmesh-bench stream-rw, 16 KiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-16K
bench-rwp-16K|iperf3|16K|plain|sockmesh-bench stream-rw --rw-poll, 16 KiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-16K
iperf3-128K|iperf3|128K|plain,accel|iperf3, 128 KiB writes|gbit_s|Gbit/s|higher|main
bench-rw-128K|iperf3|128K|plain,accel|sockmesh-bench stream-rw, 128 KiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-128K
bench-rwp-128K|iperf3|128K|plain|sockmesh-bench stream-rw --rw-poll, 128 KiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-128K
iperf3-1M|iperf3|1M|plain,accel|iperf3, 1 MiB writes|gbit_s|Gbit/s|higher|main
bench-rw-1M|iperf3|1M|plain,accel|sockmesh-bench stream-rw, 1 MiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-1M
bench-rwp-1M|iperf3|1M|plain|sockmesh-bench stream-rw --rw-poll, 1 MiB writes|gbit_s|Gbit/s|higher|xcheck:iperf3-1M
sockperf-64|sockperf|64|plain,accel|sockperf ping-pong, 64 B|avg_us|µs|lower|main
sockperf-1024|sockperf|1024|plain,accel|sockperf ping-pong, 1 KiB|avg_us|µs|lower|main
sockperf-16384|sockperf|16384|plain,accel|sockperf ping-pong, 16 KiB|avg_us|µs|lower|main
sockperf-ul-64|sockperf|64@50%|plain,accel|sockperf under-load, 64 B at 50 % of plain's closed-loop rate (full round trip)|p50_us|µs|lower|main
bench-ul-64|sockperf|64@50%|plain,accel|sockmesh-bench rr --rate (50 % of plain's closed-loop rate), 64 B|p50_us|µs|lower|xcheck:sockperf-ul-64
redis-c1|redis|-c 1|plain,accel,uds|redis GET -c 1|rps|req/s|higher|main
redis-c50|redis|-c 50|plain,accel,uds|redis GET -c 50|rps|req/s|higher|main
redis-c50-P16|redis|-c 50 -P 16|plain,accel,uds|redis GET -c 50 -P 16|rps|req/s|higher|main
pgbench-S-c1|pgbench|-c 1|plain,accel,uds|pgbench select-only -c 1|tps|tx/s|higher|main
pgbench-S-c8|pgbench|-c 8|plain,accel,uds|pgbench select-only -c 8|tps|tx/s|higher|main
py-block|lang|py:block|plain,accel|Python redis GET, blocking socket (stdlib, 1 connection)|rps|req/s|higher|main
py-asyncio|lang|py:asyncio|plain,accel|Python redis GET, asyncio (non-blocking, 1 connection)|rps|req/s|higher|main
java-block|lang|java:block|plain,accel|JVM redis GET, java.net.Socket (blocking, 1 connection)|rps|req/s|higher|main
java-nio|lang|java:nio|plain,accel|JVM redis GET, NIO Selector (non-blocking, 1 connection)|rps|req/s|higher|main
http-100|http|100|plain,accel|HTTP keep-alive, 100 B|rps|req/s|higher|main
http-64K|http|65536|plain,accel|HTTP keep-alive, 64 KiB|rps|req/s|higher|main
http-256K|http|262144|plain,accel|HTTP keep-alive, 256 KiB|rps|req/s|higher|main
http-100-1w|http|1w/100|plain,accel|HTTP keep-alive, 100 B, one write (sendfile off)|rps|req/s|higher|main
http-64K-so|http|1w/65536|plain,accel|HTTP keep-alive, 64 KiB, sendfile off (32 KiB writes)|rps|req/s|higher|main
http-256K-so|http|1w/262144|plain,accel|HTTP keep-alive, 256 KiB, sendfile off (32 KiB writes)|rps|req/s|higher|main
http-1M-so|http|1w/1048576|plain,accel|HTTP keep-alive, 1 MiB, sendfile off (32 KiB writes)|rps|req/s|higher|main
http-256K-so-c1|http|c1:1w/262144|plain,accel|HTTP keep-alive, 256 KiB, sendfile off, 1 connection|rps|req/s|higher|main
http-256K-so-c100|http|c100:1w/262144|plain,accel|HTTP keep-alive, 256 KiB, sendfile off, 100 connections|rps|req/s|higher|main
http-64K-px|http|px:65536|plain,accel|HTTP keep-alive, 64 KiB, nginx proxy_pass in front of nginx|rps|req/s|higher|main
http-256K-px|http|px:262144|plain,accel|HTTP keep-alive, 256 KiB, nginx proxy_pass in front of nginx|rps|req/s|higher|main
http-64K-ha|http|ha:65536|plain,accel|HTTP keep-alive, 64 KiB, HAProxy in front of nginx|rps|req/s|higher|main
http-256K-ha|http|ha:262144|plain,accel|HTTP keep-alive, 256 KiB, HAProxy in front of nginx|rps|req/s|higher|main
http-100-close|http|close/100|plain,accel|HTTP, 100 B, a connection per request|rps|req/s|higher|main
EOW
}

wanted() { # GROUP
	case ,$only, in *,$1,*) return 0 ;; esac
	return 1
}

# write_report: $run/runs.jsonl and $meta -> $out.{json,md,svg}, and the
# table in perf/README.md when $out is the default of a full run
write_report() {
	workloads | jq -R -c 'split("|") | {id: .[0], group: .[1], param: .[2],
		transports: (.[3] | split(",")), label: .[4], metric: .[5],
		unit: .[6], better: .[7], role: .[8]}' >"$run/workloads.jsonl"
	report() { # FORMAT
		jq -n -r --arg fmt "$1" --argjson meta "$meta" \
			--slurpfile runs "$run/runs.jsonl" --slurpfile wl "$run/workloads.jsonl" \
			-f perf/real-clients.jq
	}
	mkdir -p "$(dirname "$out")"
	report json >"$out.json"
	report md >"$out.md"
	report tsv >"$run/ratios.tsv"

	# plot: accel/plain (and uds/plain) per workload, with the 1.0 line
	n=$(awk 'END { print NR }' "$run/ratios.tsv")
	if [ "$n" -gt 0 ]; then
		cat >"$run/plot.gp" <<EOG
set terminal svg size 900,560 dynamic enhanced font "sans,12" background rgb "white"
set encoding utf8
set output "$out.svg"
set title "real clients: accel / plain, median of $(echo "$meta" | jq .rounds) (▲ higher is better, ▼ lower is better)"
set ylabel "ratio to plain loopback TCP"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics rotate by 30 right scale 0 font ",10"
set key top left
set datafile separator "\t"
set datafile missing "-"
set bmargin 10
plot "$run/ratios.tsv" using 2:xticlabels(1) title "accel / plain" lc rgb "#d62728", \
     "" using 3 title "uds / plain" lc rgb "#2ca02c", \
     1 with lines dt 2 lw 2 lc rgb "black" title "1.0 (plain)"
EOG
		gnuplot "$run/plot.gp" 2>"$run/gnuplot.log" || {
			cat "$run/gnuplot.log" >&2
			die "gnuplot failed"
		}
	fi

	# the table goes between the markers of perf/README.md (full runs only)
	if [ "$out" = perf/results/real-clients ] &&
		grep -q '^<!-- real-clients:begin -->' perf/README.md 2>/dev/null; then
		sed 's/^#/##/' "$out.md" >"$run/embed.md"
		awk -v f="$run/embed.md" '
			/^<!-- real-clients:begin -->/ {
				print
				while ((getline l < f) > 0) print l
				skip = 1
				next
			}
			/^<!-- real-clients:end -->/ { skip = 0 }
			!skip' perf/README.md >"$run/README.md"
		cp "$run/README.md" perf/README.md
	fi
}

# --report: the report again from a JSON one (no measuring, no root)
if [ -n "$from" ]; then
	for t in jq gnuplot; do
		command -v "$t" >/dev/null || die "$t is missing: make deps"
	done
	run=$(mktemp -d)
	trap 'rm -rf "$run"' EXIT
	meta=$(jq -e -c .meta "$from") || die "--report: $from is not a report of real-clients.sh"
	jq -c '.workloads[] | .id as $id | .transports | to_entries[]
		| .key as $t | .value.runs[] | {id: $id, transport: $t} + .' \
		"$from" >"$run/runs.jsonl"
	write_report
	cat "$out.md"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "needs root (BPF programs, cgroups, network namespaces)"
[ -x "$build/sockmeshd" ] && [ -x "$build/sockmesh" ] || die "$build/sockmeshd is missing: run make"
for t in jq gnuplot nsenter ip ss timeout; do
	command -v "$t" >/dev/null || die "$t is missing: make deps"
done

servers="" # PIDs of the servers we started and have not stopped
nsname=""
plain_cg=""
pgdir="" # PostgreSQL's clusters: the postgres user cannot enter the run dir
sm_on_exit() { # on every path: our servers, the netns, the plain cgroup
	for p in $servers; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $servers; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ "$i" -lt 30 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	servers=""
	[ -z "$pgdir" ] || rm -rf "$pgdir"
	[ -z "$nsname" ] || ip netns del "$nsname" 2>/dev/null || true
	if [ -n "$plain_cg" ]; then
		i=0
		while [ -d "$plain_cg" ] && [ "$i" -lt 30 ]; do
			rmdir "$plain_cg" 2>/dev/null || sleep 0.1
			i=$((i + 1))
		done
	fi
}
. scripts/private-daemon.sh
sm_daemon_traps
start=$(date +%s)
sm_daemon_start "$build" "sockmesh-rc-$$" || die "cannot start a private sockmeshd"
run=$sm_run
nsname=sockmesh-rc-$$
nsp=/run/netns/$nsname
ip netns add "$nsname" || die "cannot create network namespace $nsname"
ip -n "$nsname" link set lo up
plain_cg=$sm_cgmnt/sockmesh-rc-plain-$$
mkdir "$plain_cg" || die "cannot create cgroup $plain_cg"

# exec_in TRANSPORT CMD...: become CMD in the transport's cgroup and our
# netns; exec all the way, so the caller's $! is CMD's PID.
exec_in() {
	tr=$1
	shift
	if [ "$tr" = accel ]; then
		exec "$build"/sockmesh run -c "$sm_conf" -- nsenter --net="$nsp" -- "$@"
	fi
	exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$plain_cg" \
		nsenter --net="$nsp" -- "$@"
}
# run_in TRANSPORT CMD...: CMD there, in the foreground, bounded in time
run_in() {
	tr=$1
	shift
	(exec_in "$tr" timeout -k 5 $((time_s * 4 + 60)) "$@" </dev/null)
}

# start_server NAME TRANSPORT READY CMD...: READY is tcp:PORT or unix:PATH.
# Sets srv_pid; the process must be NAME (the exec chain ended in it).
start_server() {
	name=$1 tr=$2 ready=$3
	shift 3
	exec_in "$tr" "$@" >"$run/$name-$tr.log" 2>&1 &
	srv_pid=$!
	servers="$servers $srv_pid"
	i=0
	while :; do
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			cat "$run/$name-$tr.log" >&2
			die "$name ($tr) exited at start"
		fi
		comm=$(cat "/proc/$srv_pid/comm" 2>/dev/null || true)
		if [ "$comm" = "$name" ]; then
			case $ready in
			tcp:*) [ -n "$(nsenter --net="$nsp" ss -Hltn "sport = :${ready#tcp:}")" ] && break ;;
			unix:*) [ -S "${ready#unix:}" ] && break ;;
			esac
		fi
		i=$((i + 1))
		[ "$i" -lt 100 ] || die "$name ($tr) not ready after 10 s (process: '$comm')"
		sleep 0.1
	done
}

stop_servers() { # every server started so far, by PID
	for p in $servers; do
		kill -TERM "$p" 2>/dev/null || true
		i=0
		while kill -0 "$p" 2>/dev/null && [ "$i" -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	servers=""
}

status_json() { # FILE: the counters now
	"$build"/sockmesh status -c "$sm_conf" --json >"$1"
}

# ---- one client run per workload: prints a JSON object of metrics -------

iperf3_client() { # TR SIZE
	port=5201
	[ "$1" = accel ] && port=5202
	run_in "$1" iperf3 -c 127.0.0.1 -p "$port" -l "$2" -t "$time_s" -J >"$run/client.out" 2>&1 || true
	jq -c 'if .error then error(.error) else
		{gbit_s: (.end.sum_received.bits_per_second / 1e9),
		 cpu_client_pct: .end.cpu_utilization_percent.host_total,
		 cpu_server_pct: .end.cpu_utilization_percent.remote_total} end' "$run/client.out"
}

bench_rw_client() { # TR SIZE [--rw-poll]: sockmesh-bench's blocking stream, same netns
	t=tcp
	poll=${3:-}
	[ "$1" = accel ] && t=accel # its processes join the accel cgroup
	run_in plain "$build"/sockmesh-bench -c "$sm_conf" -m stream-rw -T "$t" \
		-s "$2" -t "$time_s" -w 0.5 $poll --json >"$run/client.out" 2>"$run/client.err" || true
	jq -c '.[0] | if .error then error(.error) else
		{gbit_s: (.bytes_per_s * 8 / 1e9), cpu_us_per_write: (.cpu_ns_per_op / 1e3)} end' \
		"$run/client.out" 2>>"$run/client.err" || {
		# the error alone (jq's, or the bench's), not the JSON it came from
		sed -n 's/^jq: error (at [^)]*): //p; /^sockmesh-bench:/p' \
			"$run/client.err" >"$run/client.out"
		return 1
	}
}

# closed_loop_rate SIZE: plain TCP's round trips/s at SIZE on one connection,
# one request in flight (sockmesh-bench -m rr -T tcp), the ceiling of any
# open-loop rate on one connection here
closed_loop_rate() {
	run_in plain "$build"/sockmesh-bench -c "$sm_conf" -m rr -T tcp -s "$1" \
		-t "$time_s" -w 0.5 --json >"$run/client.out" 2>&1 || return 1
	jq -e '.[0].ops_per_s | floor' "$run/client.out"
}

sockperf_client() { # TR SIZE
	port=11111
	[ "$1" = accel ] && port=11112
	run_in "$1" sockperf pp --tcp -i 127.0.0.1 -p "$port" -m "$2" -t "$time_s" >"$run/client.out" 2>&1 || true
	sed 's/\x1b\[[0-9;]*m//g' "$run/client.out" | awk '
		/avg-latency=/ { sub(/.*avg-latency=/, ""); avg = $1 + 0 }
		/percentile 50.000 =/ { p50 = $NF + 0 }
		/percentile 99.000 =/ { p99 = $NF + 0 }
		END {
			if (avg == "" || p99 == "") exit 1
			printf "{\"avg_us\": %s, \"p50_us\": %s, \"p99_us\": %s}\n", avg, p50, p99
		}'
}

# sockperf_ul_client TR SIZE@RATE: under-load mode, the client sends RATE
# messages/s whatever the replies (sockperf paces its sender), the server
# echoes every one (--reply-every 1; sockperf's default, every 100th, leaves
# too few observations for a p99); latency as the full round trip
# (--full-rtt), not sockperf's default of half of it
sockperf_ul_client() {
	port=11111
	[ "$1" = accel ] && port=11112
	run_in "$1" sockperf ul --tcp -i 127.0.0.1 -p "$port" -m "${2%@*}" \
		--mps "${2#*@}" -t "$time_s" --full-rtt --reply-every 1 \
		>"$run/client.out" 2>&1 || true
	set -- $(sm_sockperf_ul "$run/client.out") || return 1
	[ $# -eq 6 ] || return 1
	printf '{"p50_us": %s, "p99_us": %s, "avg_us": %s, "rate": %s, "replies": %d}\n' \
		"$2" "$3" "$4" "$1" "$6"
}

# bench_ul_client TR SIZE@RATE: sockmesh-bench's open-loop rr at the same
# size and rate (one connection, latency from intended send time, full round
# trip). A run that fell short of its rate (INVALID) is refused; one stall
# of some 30 ms on this shared machine is enough for that at any rate, so a
# refused run is run once more, and the run's record says so ("retried");
# a second refusal is a failed run
bench_ul_client() {
	t=tcp
	[ "$1" = accel ] && t=accel # its processes join the accel cgroup
	retried=""
	for attempt in 1 2; do
		run_in plain "$build"/sockmesh-bench -c "$sm_conf" -m rr -T "$t" \
			-s "${2%@*}" --rate "${2#*@}" -t "$time_s" -w 0.5 --json \
			>"$run/client.out" 2>"$run/client.err" || true
		if jq -c --arg retried "$retried" '.[0] | if .error then error(.error)
			elif .open_loop.valid | not then error("INVALID: \(.open_loop.rate_achieved) of \(.open_loop.rate_asked) requests/s")
			else {p50_us: (.lat_ns.p50 / 1e3), p99_us: (.lat_ns.p99 / 1e3),
			      avg_us: (.lat_ns.mean / 1e3), rate: .open_loop.rate_achieved}
			      + (if $retried == "" then {} else {retried: $retried} end) end' \
			"$run/client.out" 2>>"$run/client.err"; then
			return 0
		fi
		# the error alone (jq's, or the bench's), not the JSON it came from
		sed -n 's/^jq: error (at [^)]*): //p; /^sockmesh-bench:/p' \
			"$run/client.err" >"$run/client.out"
		grep -q '^INVALID' "$run/client.out" && [ "$attempt" = 1 ] || return 1
		retried="first run refused, $(head -1 "$run/client.out")"
		echo "    $(head -1 "$run/client.out"): run once more" >&2
	done
}

# closed_loop_rate SIZE: plain TCP's round trips/s at SIZE on one connection,
# one request in flight (sockmesh-bench -m rr -T tcp), the ceiling of any
# open-loop rate on one connection here
closed_loop_rate() {
	run_in plain "$build"/sockmesh-bench -c "$sm_conf" -m rr -T tcp -s "$1" \
		-t "$time_s" -w 0.5 --json >"$run/client.out" 2>&1 || return 1
	jq -e '.[0].ops_per_s | floor' "$run/client.out"
}

# pgbench_client TR ARGS: select-only (-S), one thread, ARGS connections,
# against the transport's PostgreSQL (uds: plain's, through its socket)
pgbench_client() {
	case $1 in
	plain) where="-h 127.0.0.1 -p 5432" ;;
	accel) where="-h 127.0.0.1 -p 5433" ;;
	uds) where="-h $pgdir/5432 -p 5432" ;;
	esac
	# shellcheck disable=SC2086 # lists of options
	run_in "$1" "$pgbin"/pgbench -n -S -j 1 -T "$time_s" $2 $where -U postgres postgres \
		>"$run/client.out" 2>&1 || true
	awk '
		/^latency average = / { lat = $4 * 1000 }
		/^tps = / { tps = $3 }
		/ERROR|FATAL|aborted/ { bad = 1 }
		END {
			if (tps == "" || bad) exit 1
			printf "{\"tps\": %s, \"avg_us\": %s}\n", tps, lat
		}' "$run/client.out"
}

redis_client() { # TR ARGS N
	case $1 in
	plain) where="-p 6379" ;;
	accel) where="-p 6380" ;;
	uds) where="-s $run/redis.sock" ;;
	esac
	# shellcheck disable=SC2086 # lists of options
	run_in "$1" redis-benchmark $where -t get -n "$3" $2 --csv >"$run/client.out" 2>&1 || true
	tr -d '"' <"$run/client.out" | awk -F, '
		$1 == "GET" { printf "{\"rps\": %s, \"p50_us\": %g, \"p99_us\": %g}\n", $2, $5 * 1000, $7 * 1000; ok = 1 }
		END { exit !ok }'
}

# lang_client TR PARAM: PARAM is py:MODE or java:MODE, perf/clients/'s
# redis GET client in that language against the transport's redis-server
lang_client() {
	port=6379
	[ "$1" = accel ] && port=6380
	case $2 in
	py:*) set -- "$1" /usr/bin/python3 perf/clients/redis_get.py "${2#py:}" ;;
	java:*) set -- "$1" java perf/clients/RedisGet.java "${2#java:}" ;;
	esac
	run_in "$@" "$port" "$time_s" >"$run/client.out" 2>&1 || true
	tail -n 1 "$run/client.out" | jq -e -c 'select(.rps > 0)' 2>/dev/null
}

# http_size PARAM: the response's size in bytes, PARAM's last part
http_size() {
	set -- "${1##*/}"
	echo "${1##*:}"
}

# http_client TR PARAM: PARAM is [cN:][px:|ha:]PATH; cN: wrk's connections
# (else RC_HTTP_CONNS), px: through the nginx proxy, ha: through HAProxy,
# in front of the transport's nginx; PATH is SIZE, 1w/SIZE (sendfile off)
# or close/SIZE (one request per connection)
http_client() {
	tr=$1 p=$2 conns=$http_conns port=8080
	case $p in c[0-9]*:*)
		conns=${p%%:*}
		conns=${conns#c}
		p=${p#*:}
		;;
	esac
	case $p in
	px:*) port=8082 p=${p#px:} ;;
	ha:*) port=8084 p=${p#ha:} ;;
	esac
	[ "$tr" = accel ] && port=$((port + 1))
	# close/...: one request per connection (wrk reconnects after each)
	case $p in
	close/*) set -- -H "Connection: close" ;;
	*) set -- ;;
	esac
	run_in "$tr" wrk -t 1 -c "$conns" -d "${time_s}s" --latency "$@" \
		"http://127.0.0.1:$port/$p" >"$run/client.out" 2>&1 || true
	awk '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return (v + 0) * 1e3
			if (v ~ /s$/) return (v + 0) * 1e6
			return v + 0
		}
		/^ +99%/ { p99 = us($2) }
		/^ +50%/ { p50 = us($2) }
		/Non-2xx or 3xx responses/ { bad = $NF }
		/^Requests\/sec:/ { rps = $2 }
		END {
			if (rps == "" || bad) exit 1
			printf "{\"rps\": %s, \"p50_us\": %s, \"p99_us\": %s}\n", rps, p50, p99
		}' "$run/client.out"
}

# measure ID TRANSPORT ROUND FUNC ARGS...: one run, one line of runs.jsonl
failed=0
ul_rates="" # JSON objects: the under-load rates this run derived
measure() {
	id=$1 tr=$2 rnd=$3
	shift 3
	status_json "$run/before.json"
	if m=$("$@"); then
		err=null
	else
		m=null
		# the tool's own error (iperf3 -J), else its last lines; and a
		# server of ours that is gone
		msg=$(jq -r '.error // empty' "$run/client.out" 2>/dev/null || true)
		[ -n "$msg" ] || msg=$(tail -3 "$run/client.out" | tr -d '\r' | tr '\n' ' ')
		for p in $servers; do
			kill -0 "$p" 2>/dev/null || msg="$msg (server PID $p has exited: $(tail -2 "$run"/*-"$tr".log 2>/dev/null | tr '\n' ' '))"
		done
		err=$(printf '%s' "$msg" | jq -R -s .)
		failed=$((failed + 1))
	fi
	status_json "$run/after.json"
	jq -c -n --arg id "$id" --arg tr "$tr" --argjson rnd "$rnd" \
		--argjson m "$m" --argjson err "$err" \
		--slurpfile a "$run/before.json" --slurpfile b "$run/after.json" \
		'{id: $id, transport: $tr, round: $rnd, metrics: $m, error: $err,
		  counters: ($b[0].counters | with_entries(.value -= ($a[0].counters[.key] // 0)))}' \
		>>"$run/runs.jsonl"
	printf '  %-26s %-5s round %s: %s\n' "$id" "$tr" "$rnd" \
		"$(if [ "$m" = null ]; then echo "FAILED: $msg"; else echo "$m"; fi)" >&2
}

# run_group GROUP FUNC: every round of the group's workloads, interleaved;
# FUNC TR PARAM ID is the client of one run
run_group() {
	group=$1 fn=$2
	for rnd in $(seq "$rounds"); do
		while IFS='|' read -r id g param trs _; do
			[ "$g" = "$group" ] || continue
			for tr in $(echo "$trs" | tr ',' ' '); do
				measure "$id" "$tr" "$rnd" "$fn" "$tr" "$param" "$id"
			done
		done <"$run/workloads.txt"
	done
}

: >"$run/runs.jsonl"
workloads >"$run/workloads.txt"
echo "real clients: $only; $rounds round(s) of ${time_s} s; plain, accel (, uds) interleaved" >&2

if wanted iperf3; then
	start_server iperf3 plain tcp:5201 iperf3 -s -p 5201
	start_server iperf3 accel tcp:5202 iperf3 -s -p 5202
	iperf3_run() {
		case $3 in
		bench-rw-*) bench_rw_client "$1" "$2" ;;
		bench-rwp-*) bench_rw_client "$1" "$2" --rw-poll ;;
		*) iperf3_client "$1" "$2" ;;
		esac
	}
	run_group iperf3 iperf3_run
	stop_servers
fi

if wanted sockperf; then
	start_server sockperf plain tcp:11111 sockperf sr --tcp -i 127.0.0.1 -p 11111
	start_server sockperf accel tcp:11112 sockperf sr --tcp -i 127.0.0.1 -p 11112
	sockperf_run() {
		case $3 in
		sockperf-ul-*) sockperf_ul_client "$1" "$2" ;;
		bench-ul-*) bench_ul_client "$1" "$2" ;;
		*) sockperf_client "$1" "$2" ;;
		esac
	}
	# SIZE@P% -> SIZE@RATE: P % of the closed-loop rate, in hundreds
	for sz in $(awk -F'|' '$2 == "sockperf" && $3 ~ /@[0-9]+%$/ { sub(/@.*/, "", $3); print $3 }' \
		"$run/workloads.txt" | sort -u); do
		cl=$(closed_loop_rate "$sz") || die "sockmesh-bench rr -T tcp -s $sz failed: $(tail -3 "$run/client.out")"
		awk -F'|' -v OFS='|' -v sz="$sz" -v cl="$cl" '
			$2 == "sockperf" && $3 ~ ("^" sz "@[0-9]+%$") {
				p = $3; sub(/.*@/, "", p); sub(/%/, "", p)
				r = int(cl * p / 100 / 100) * 100
				$3 = sz "@" (r < 100 ? 100 : r)
			} { print }' "$run/workloads.txt" >"$run/workloads.new"
		mv "$run/workloads.new" "$run/workloads.txt"
		rate=$(awk -F'|' -v sz="$sz" '$2 == "sockperf" && $3 ~ ("^" sz "@") { sub(/.*@/, "", $3); print $3; exit }' "$run/workloads.txt")
		ul_rates="$ul_rates${ul_rates:+,}{\"size\": $sz, \"closed_loop\": $cl, \"rate\": $rate}"
		echo "  sockperf: plain TCP's closed loop at $sz B: $cl round trips/s; the under-load rows run at $rate msg/s" >&2
	done
	run_group sockperf sockperf_run
	stop_servers
fi

if wanted redis; then
	start_server redis-server plain tcp:6379 redis-server --port 6379 --bind 127.0.0.1 \
		--save "" --appendonly no --daemonize no --dir "$run" \
		--unixsocket "$run/redis.sock"
	start_server redis-server accel tcp:6380 redis-server --port 6380 --bind 127.0.0.1 \
		--save "" --appendonly no --daemonize no --dir "$run"
	for p in 6379 6380; do # the key GET reads (redis-benchmark's default)
		nsenter --net="$nsp" redis-cli -p "$p" set key:__rand_int__ xxx >/dev/null
	done
	# requests per run: what plain does in time_s seconds, measured once
	while IFS='|' read -r id g param _; do
		[ "$g" = redis ] || continue
		# shellcheck disable=SC2086
		case $param in
		*-P*) n=400000 ;;
		"-c 1") n=20000 ;;
		*) n=100000 ;;
		esac
		m=$(redis_client plain "$param" "$n") || die "redis-benchmark failed: $(tail -3 "$run/client.out")"
		echo "$id $(echo "$m" | jq ".rps * $time_s | floor | if . < 10000 then 10000 else . end")"
	done <"$run/workloads.txt" >"$run/redis-n"
	redis_run() {
		redis_client "$1" "$2" "$(awk -v id="$3" '$1 == id { print $2 }' "$run/redis-n")"
	}
	run_group redis redis_run
	stop_servers
fi

if wanted lang; then
	# the redis GET clients of perf/clients/ in Python (Debian's python3)
	# and Java (Debian's default JDK, run from source), blocking and not
	[ -x /usr/bin/python3 ] || die "/usr/bin/python3 is missing: scripts/setup.sh --bench"
	command -v java >/dev/null || die "java is missing: scripts/setup.sh --bench"
	for tr in plain accel; do
		port=6379
		[ "$tr" = accel ] && port=6380
		start_server redis-server "$tr" tcp:$port redis-server --port $port --bind 127.0.0.1 \
			--save "" --appendonly no --daemonize no --dir "$run"
		nsenter --net="$nsp" redis-cli -p $port set key:__rand_int__ xxx >/dev/null
	done
	lang_run() { lang_client "$1" "$2"; }
	run_group lang lang_run
	stop_servers
fi

if wanted pgbench; then
	# two private clusters (plain, accel), each run as the postgres user,
	# listening on loopback and on a UNIX socket in the run dir; no fsync
	# (select-only reads the cache: the figure is the round trips)
	pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$pgbin/postgres" ] || die "PostgreSQL is missing: scripts/setup.sh --bench"
	pgdir=$(mktemp -d /tmp/sockmesh-rc-pg.XXXXXX)
	chmod 755 "$pgdir"
	for port in 5432 5433; do
		mkdir -p "$pgdir/$port"
		chown postgres:postgres "$pgdir/$port"
		env -C "$pgdir" setpriv --reuid=postgres --regid=postgres --init-groups \
			"$pgbin"/initdb -D "$pgdir/$port/data" -U postgres --auth=trust \
			>"$run/initdb-$port.log" 2>&1 || die "initdb failed: $(grep -v "^$" "$run/initdb-$port.log" | tail -3)"
	done
	for tr in plain accel; do
		port=5432
		[ "$tr" = accel ] && port=5433
		start_server postgres "$tr" tcp:$port env -C "$pgdir" setpriv --reuid=postgres --regid=postgres \
			--init-groups "$pgbin"/postgres -D "$pgdir/$port/data" -p $port \
			-k "$pgdir/$port" -c listen_addresses=127.0.0.1 -c fsync=off \
			-c synchronous_commit=off -c max_connections=50
		run_in plain "$pgbin"/pgbench -i -q -s 1 -h 127.0.0.1 -p $port -U postgres postgres \
			>"$run/pgbench-init-$port.log" 2>&1 || die "pgbench -i failed: $(tail -3 "$run/pgbench-init-$port.log")"
	done
	pgbench_run() { pgbench_client "$1" "$2"; }
	run_group pgbench pgbench_run
	stop_servers
fi

if wanted http; then
	mkdir -p "$run/www"
	while IFS='|' read -r _ g param _; do
		[ "$g" = http ] || continue
		sz=$(http_size "$param")
		head -c "$sz" /dev/zero | tr '\0' 'x' >"$run/www/$sz"
	done <"$run/workloads.txt"
	# nginx_conf PORT BODY: a one-process nginx (no master, no fork: its
	# PID is ours) on PORT, keep-alive for the whole run (the default
	# closes after 1000 requests), BODY in its http block
	nginx_conf() {
		mkdir -p "$run/nginx-$1"
		cat >"$run/nginx-$1.conf" <<EON
daemon off;
master_process off;
worker_processes 1;
pid $run/nginx-$1/nginx.pid;
error_log $run/nginx-$1/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 100000000;
	keepalive_timeout 65;
	client_body_temp_path $run/nginx-$1/body;
	proxy_temp_path $run/nginx-$1/proxy;
	fastcgi_temp_path $run/nginx-$1/fastcgi;
	uwsgi_temp_path $run/nginx-$1/uwsgi;
	scgi_temp_path $run/nginx-$1/scgi;
$2
}
EON
	}
	for port in 8080 8081; do
		nginx_conf $port "	# as Debian's nginx.conf
	sendfile on;
	tcp_nopush on;
	types { application/octet-stream bin; }
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$port;
		root $run/www;
		# the same files, with header and body in one writev(): without
		# sendfile nginx does not split a response in two writes (and
		# TCP_CORK, which TCP coalesces and sockmap does not: perf/README.md)
		location /1w/ {
			alias $run/www/;
			sendfile off;
			tcp_nopush off;
		}
		location /close/ {
			alias $run/www/;
		}
	}"
	done
	# the proxies in front (px:, ha:), each on its transport's nginx:
	# 8082 and 8083 a second nginx (proxy_pass, keep-alive upstream
	# connections as a tuned reverse proxy has them), 8084 and 8085 HAProxy
	# (one thread, mode http, keep-alive both sides: its default)
	for port in 8082 8083; do
		nginx_conf $port "	upstream backend {
		server 127.0.0.1:$((port - 2));
		keepalive 128;
		keepalive_requests 100000000;
	}
	server {
		listen 127.0.0.1:$port;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
			# through its buffers, never a temporary file on disk
			proxy_max_temp_file_size 0;
		}
	}"
	done
	for port in 8084 8085; do
		cat >"$run/haproxy-$port.cfg" <<EOH
global
	nbthread 1
	maxconn 4000
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend front
	bind 127.0.0.1:$port
	default_backend nginx
backend nginx
	server nginx 127.0.0.1:$((port - 4))
EOH
		haproxy -c -q -f "$run/haproxy-$port.cfg" || die "haproxy rejects $run/haproxy-$port.cfg"
	done
	start_server nginx plain tcp:8080 nginx -p "$run/nginx-8080" -e "$run/nginx-8080/error.log" -c "$run/nginx-8080.conf"
	start_server nginx accel tcp:8081 nginx -p "$run/nginx-8081" -e "$run/nginx-8081/error.log" -c "$run/nginx-8081.conf"
	if grep -q '^[^|]*|http|px:' "$run/workloads.txt"; then
		start_server nginx plain tcp:8082 nginx -p "$run/nginx-8082" -e "$run/nginx-8082/error.log" -c "$run/nginx-8082.conf"
		start_server nginx accel tcp:8083 nginx -p "$run/nginx-8083" -e "$run/nginx-8083/error.log" -c "$run/nginx-8083.conf"
	fi
	if grep -q '^[^|]*|http|ha:' "$run/workloads.txt"; then
		start_server haproxy plain tcp:8084 haproxy -db -f "$run/haproxy-8084.cfg"
		start_server haproxy accel tcp:8085 haproxy -db -f "$run/haproxy-8085.cfg"
	fi
	http_run() { http_client "$1" "$2"; }
	run_group http http_run
	stop_servers
fi

# Nothing of ours may be left: no server PID alive, nothing in our netns
# or our plain cgroup.
left=""
[ -z "$servers" ] || left="$servers"
inns=$(ip netns pids "$nsname" 2>/dev/null | tr '\n' ' ')
incg=$(tr '\n' ' ' <"$plain_cg/cgroup.procs")
[ -z "$inns$incg$left" ] || die "processes left after the bench: netns [$inns] plain cgroup [$incg] servers [$left]"
echo "servers left after the bench: none (netns $nsname and cgroup $(basename "$plain_cg") empty)" >&2

# ---- report ----------------------------------------------------------------

meta=$(jq -n -c --argjson rounds "$rounds" --argjson time "$time_s" \
	--argjson quick "$quick" --arg when "$(date -u '+%Y-%m-%d %H:%M UTC')" \
	--arg kernel "$(uname -r)" --argjson cpus "$(nproc)" \
	--arg cmd "perf/real-clients.sh${args:+ }$args" \
	--argjson http_conns "$http_conns" --arg compat "${SM_COMPAT:-strict}" \
	--argjson ul_rates "[$ul_rates]" \
	'{when: $when, kernel: $kernel, cpus: $cpus, rounds: $rounds,
	  time_s: $time, quick: ($quick == 1), command: $cmd, http_conns: $http_conns,
	  compat: $compat, ul_rates: $ul_rates}')
write_report

cat "$out.md"
echo "real clients: $(($(date +%s) - start)) s; $out.json, $out.md, $out.svg" >&2
[ "$failed" -eq 0 ] || {
	echo "real-clients.sh: $failed run(s) failed (see the report)" >&2
	exit 1
}
