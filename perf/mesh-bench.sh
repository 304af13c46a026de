#!/bin/sh
# mesh-bench.sh [BUILD] - the mesh part of `make bench`: requests/s and
# p50/p99 latency from pod A's app to pod B's app through both HAProxy
# sidecars (scripts/mesh/mesh.sh), plain vs accelerated by sockmesh, in one
# run, interleaved: each round runs every workload without sockmesh and
# with it (the order alternates between rounds); each figure is the median
# of the rounds. Writes perf/results/mesh.json and mesh.md and prints the
# table. Builds its own mesh (name "bench") and removes it whatever happens.
# Needs root, haproxy, redis, nginx-light, wrk (scripts/setup.sh).
#
#   redis-get   redis-benchmark -t get, MESH_CONNS connections, MESH_REDIS_N requests
#   http-100b   wrk, MESH_CONNS connections, MESH_TIME s, a 100 B file
#   http-64k    wrk, the same, a 64 KiB file
#   redis-get-v6, http-100b-v6, http-64k-v6
#               the same over IPv6 (pod B's 2001:db8::3), through meshfwd,
#               the tests' IPv6 sidecar (tests/mesh/meshfwd.c: HAProxy 2.6
#               cannot be one): a simpler proxy than HAProxy, so compare
#               these rows' ratios with each other, not with the IPv4 rows
#   ul-RATE     a fixed-rate client: sockperf under-load, 64 B messages at
#               RATE msg/s for MESH_TIME s, every one echoed (--reply-every
#               1) by a sockperf server in pod B, full round trip
#               (--full-rtt), p50/p99 from its percentile lines; one
#               workload per rate of MESH_UL_RATES: latency against load
#               through both sidecars
#   ol-redis-PCT, ol-http-PCT
#               open loop through both sidecars: sockmesh-bench's own client
#               (--target, --proto redis or http: non-blocking sockets, one
#               request in flight per connection, latency from each
#               request's intended send time, so no coordinated omission),
#               MESH_OL_CONNS connections, at PCT % of the rate the same
#               client reaches closed-loop through the plain mesh (measured
#               once, first); redis GET of a 3-byte value, HTTP GET of the
#               100 B file; one workload per PCT of MESH_OL_LOADS. The
#               curve: perf/results/mesh-ol-redis.svg and mesh-ol-http.svg
#               (perf/sweep-plot.sh, gnuplot)
#
#   amb-redis-get, amb-http-100b, amb-http-64k
#               the same through Istio ambient's layout (mesh.sh up ambient:
#               one node proxy, HAProxy as ztunnel, listening inside each
#               pod; app A -> node proxy in pod A -> mutual TLS to pod B's
#               15008 -> node proxy in pod B -> app B from A's address),
#               measured after the sidecar rows, on a mesh built anew
#   cx-redis-get, cx-http-100b, cx-http-64k, cx-redis-get-v6
#               the iptables-free mode (mesh.sh up connect: the same
#               sidecars, a mesh built anew after the sidecar rows): plain
#               is that mesh captured by istio-init's rules without
#               sockmesh (mesh.sh rules on), accel the same pods without a
#               rule, sockmeshd's [mesh] mode = connect capturing; with
#               MESH_CX_BASE=accel, plain is istio-init's rules with
#               sockmesh accelerating (mode = iptables): iptables-free
#               against iptables, both accelerated, interleaved
#   amb-redis-get-tlstcp, amb-http-100b-tlstcp, amb-http-64k-tlstcp
#               the same, the accelerated runs with the TLS hop (15008)
#               excluded, so left to TCP: is redirecting TLS records worth it
#
# Environment: MESH_ROUNDS=3, MESH_TIME=4, MESH_CONNS=16, MESH_REDIS_N=40000,
# MESH_UL_RATES="1000 5000", MESH_OL_LOADS="25 50 75 90", MESH_OL_CONNS=4,
# MESH_CX_BASE=plain (cx-* rows' baseline: plain or accel, above),
# MESH_WORKLOADS (default: all of the above), MESH_OUT=perf/results (where
# mesh.json, mesh.md and the curves go)
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
build=$(cd "${1:-build}" && pwd)
export SOCKMESH_BUILD="$build"
rounds=${MESH_ROUNDS:-3}
dur=${MESH_TIME:-4}
conns=${MESH_CONNS:-16}
redis_n=${MESH_REDIS_N:-40000}
cx_base=${MESH_CX_BASE:-plain}
case $cx_base in plain | accel) ;; *) echo "mesh-bench.sh: MESH_CX_BASE: '$cx_base' is not plain or accel" >&2 && exit 1 ;; esac
out=${MESH_OUT:-perf/results}
M="scripts/mesh/mesh.sh -n bench"
B=198.18.0.3
ul_rates=${MESH_UL_RATES:-1000 5000}
ul=""
for r in $ul_rates; do
	case $r in '' | *[!0-9]* | 0*) echo "mesh-bench.sh: MESH_UL_RATES: '$r' is not a rate" >&2 && exit 1 ;; esac
	ul="$ul ul-$r"
done
ol_loads=${MESH_OL_LOADS:-25 50 75 90}
ol_conns=${MESH_OL_CONNS:-4}
case $ol_conns in '' | *[!0-9]* | 0*) echo "mesh-bench.sh: MESH_OL_CONNS: '$ol_conns' is not a number of connections" >&2 && exit 1 ;; esac
ol=""
for p in $ol_loads; do
	case $p in '' | *[!0-9]* | 0*) echo "mesh-bench.sh: MESH_OL_LOADS: '$p' is not a percentage" >&2 && exit 1 ;; esac
	ol="$ol ol-redis-$p ol-http-$p"
done
cx="cx-redis-get cx-http-100b cx-http-64k cx-redis-get-v6"
amb="amb-redis-get amb-http-100b amb-http-64k amb-redis-get-tlstcp amb-http-100b-tlstcp amb-http-64k-tlstcp"
WORKLOADS=${MESH_WORKLOADS:-redis-get http-100b http-64k redis-get-v6 http-100b-v6 http-64k-v6$ul$ol $cx $amb}
# the sidecar layout's workloads, then the connect layout's (cx-*), then
# the ambient layout's (amb-*)
side_w= cx_w= amb_w=
for w in $WORKLOADS; do
	case $w in
	amb-*) amb_w="$amb_w $w" ;;
	cx-*) cx_w="$cx_w $w" ;;
	*) side_w="$side_w $w" ;;
	esac
done
B6=2001:db8::3
mstate=/run/sockmesh-mesh-bench

die() {
	echo "mesh-bench.sh: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (namespaces, BPF programs, cgroups)"
for c in redis-benchmark wrk jq haproxy nginx redis-server sockperf; do
	command -v $c >/dev/null || die "$c is missing (scripts/setup.sh installs it)"
done
for b in sockmesh sockmeshd sockmesh-bench tests/meshfwd; do
	[ -x "$build/$b" ] || die "$build/$b is missing: \`make all\` builds it (\`make bench\` does)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-mesh-bench.XXXXXX")
sp_pid="" # the sockperf server in pod B (ul-*), ours to stop
stop_sockperf() {
	[ -n "$sp_pid" ] || return 0
	kill -TERM "$sp_pid" 2>/dev/null || true
	i=0
	while kill -0 "$sp_pid" 2>/dev/null && [ "$i" -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$sp_pid" 2>/dev/null || true
	wait "$sp_pid" 2>/dev/null || true
	sp_pid=""
}
cleanup() {
	rc=$?
	trap - EXIT HUP INT TERM
	stop_sockperf
	$M down >/dev/null 2>&1 || echo "mesh-bench.sh: mesh.sh down failed" >&2
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' HUP INT TERM

start=$(date +%s)
$M down >/dev/null 2>&1 || true # a mesh left by a killed run
layout=sidecar
[ -n "$side_w" ] || { [ -n "$cx_w" ] && layout=connect; } || layout=ambient
$M up $layout 2>"$tmp/up.log" || { cat "$tmp/up.log" >&2; die "mesh.sh up $layout failed"; }
conf=$($M conf)

# ul-*: a sockperf server in pod B on 127.0.0.1:11111, where HAProxy B's
# inbound sends connections to that port; mesh.sh exec execs all the way,
# so $! is sockperf's PID
case " $WORKLOADS " in
*" ul-"*)
	$M exec b sockperf sr --tcp -i 127.0.0.1 -p 11111 </dev/null >"$tmp/sockperf-sr.log" 2>&1 &
	sp_pid=$!
	i=0
	until $M exec b ss -Hltn "sport = :11111" | grep -q .; do
		kill -0 "$sp_pid" 2>/dev/null || { cat "$tmp/sockperf-sr.log" >&2; die "sockperf sr in pod B exited"; }
		i=$((i + 1))
		[ "$i" -lt 100 ] || die "sockperf sr in pod B not listening after 10 s"
		sleep 0.1
	done
	;;
esac

# ol-*: the key the redis client GETs (a 3-byte value, as redis-get's)
case " $WORKLOADS " in
*" ol-"*)
	$M exec a redis-cli -h $B -p 6379 set sockmesh-bench xyz >/dev/null ||
		die "cannot SET the open-loop key through the mesh"
	;;
esac

# olclient PROTO ARGS... : sockmesh-bench's client in pod A against pod B's
# redis (6379) or nginx (8080), through both sidecars; its JSON in $tmp/ol.json
olclient() {
	case $1 in
	redis) t=$B:6379 proto=redis:sockmesh-bench ;;
	http) t=$B:8080 proto=http:/100b ;;
	esac
	shift
	$M exec a "$build/sockmesh-bench" --target "$t" --proto "$proto" \
		-n "$ol_conns" -t "$dur" -w 0.5 --json "$@" >"$tmp/ol.json" 2>"$tmp/ol.err" || true
}

# counters FILE : sockmesh's counters as "name value" lines (none: plain)
counters() {
	if [ -d /sys/fs/bpf/sockmesh-mesh-bench ]; then
		"$build/sockmesh" status --json -c "$conf" |
			jq -r '.counters | to_entries[] | "\(.key) \(.value)"' >"$1"
	else
		: >"$1"
	fi
}
cval() { awk -v k="$2" '$1 == k { v = $2 } END { printf "%.0f\n", v }' "$1"; }
cdelta() { echo $(($(cval "$2" "$3") - $(cval "$1" "$3"))); }

# hopbytes POD-A-STATS POD-B-STATS : bytes on the three hops, as the proxies
# count them (HAProxy: A's outbound frontend, B's inbound frontend, B's
# local_app; the ambient node proxy: out_a, hbone_in_b and app_b; meshfwd:
# A's outbound and B's inbound connections, B's twice, from the lines each
# logs when a connection has closed)
proxystats() {
	if [ "$layout" = ambient ]; then
		# the node proxy: the three hops are its frontend in pod A, its
		# tunnel's end in pod B and its backend to B's app
		ip netns exec smesh-bench-node curl -sf 'http://127.0.0.1:15000/stats;csv' >"$1.a"
		head -n 1 "$1.a" >"$1.b"
		: >"$1.f"
		return
	fi
	$M exec a curl -sf 'http://127.0.0.1:15000/stats;csv' >"$1.a"
	$M exec b curl -sf 'http://127.0.0.1:15000/stats;csv' >"$1.b"
	cat "$mstate/a/meshfwd.log" "$mstate/b/meshfwd.log" >"$1.f"
}
# mfbytes BEFORE AFTER : meshfwd's hop bytes logged between the two snapshots
mfbytes() {
	awk 'NR == FNR { seen[$0] = 1; next }
		$1 == "conn" && !($0 in seen) { s += ($9 == "inbound" ? 2 : 1) * ($11 + $13) }
		END { printf "%.0f\n", s }' "$1.f" "$2.f"
}
hopbytes() {
	awk -F, '
		FNR == 1 { for (i = 1; i <= NF; i++) { h = $i; sub(/^# /, "", h); col[h] = i } next }
		($1 == "outbound" || $1 == "inbound" || $1 == "out_a" || $1 == "hbone_in_b") && $2 == "FRONTEND" ||
		($1 == "local_app" || $1 == "app_b") && $2 == "BACKEND" {
			s += $col["bin"] + $col["bout"]
		}
		END { printf "%.0f\n", s }' "$1.a" "$1.b"
}

# to_ms VALUE-WITH-UNIT (wrk: 812.00us, 1.23ms, 2.01s)
to_ms() {
	echo "$1" | awk '{ v = $1 + 0
		if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /ms$/) v += 0; else if ($1 ~ /s$/) v *= 1000
		printf "%.3f\n", v }'
}

# run WORKLOAD : prints "RPS P50_MS P99_MS ERRORS P999_MS OVERLOADED ASKED
# P90_MS P9999_MS" (the last five: open loop only, else "0 0 0 0 0")
run() {
	h=$B
	case $1 in *-v6) h=$B6 ;; esac
	set -- "$(echo "$1" | sed 's/^amb-//; s/^cx-//; s/-tlstcp$//')"
	case ${1%-v6} in
	redis-get)
		$M exec a redis-benchmark -h $h -p 6379 -t get -n "$redis_n" -c "$conns" \
			--csv 2>/dev/null >"$tmp/rb.csv" || true
		# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
		tr -d '"' <"$tmp/rb.csv" | awk -F, '$1 == "GET" { print $2, $5, $7, 0, 0, 0, 0, 0, 0; f = 1 }
			END { if (!f) print 0, 0, 0, 1, 0, 0, 0, 0, 0 }'
		;;
	http-100b | http-64k)
		f=${1#http-}
		f=${f%-v6}
		[ "$h" = "$B" ] || h="[$h]"
		$M exec a wrk -t 1 -c "$conns" -d "${dur}s" --latency "http://$h:8080/$f" \
			>"$tmp/wrk.out" 2>&1 || true
		rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
		p50=$(awk '$1 == "50%" { print $2 }' "$tmp/wrk.out")
		p99=$(awk '$1 == "99%" { print $2 }' "$tmp/wrk.out")
		errs=$(awk '/Non-2xx|Socket errors/ { n++ } END { print n + 0 }' "$tmp/wrk.out")
		[ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || { rps=0 p50=0 p99=0 errs=1; }
		echo "$rps $(to_ms "$p50") $(to_ms "$p99") $errs 0 0 0 0 0"
		;;
	ul-*)
		# the achieved rate (sent / valid duration) as req/s; an echo
		# missing (received < sent) is an error
		$M exec a sockperf ul --tcp -i $B -p 11111 -m 64 --mps "${1#ul-}" \
			-t "$dur" --full-rtt --reply-every 1 >"$tmp/ul.out" 2>&1 || true
		if set -- $(sm_sockperf_ul "$tmp/ul.out") && [ $# -eq 6 ]; then
			awk -v r="$1" -v p50="$2" -v p99="$3" -v s="$5" -v n="$6" \
				'BEGIN { printf "%s %.3f %.3f %d 0 0 0 0 0\n", r, p50 / 1000, p99 / 1000, (n < s) }'
		else
			echo "0 0 0 1 0 0 0 0 0"
		fi
		;;
	ol-*)
		# a run that fell short of its rate is OVERLOADED (its latency a
		# lower bound), not an error; a failed one (a bad response, a
		# closed connection) is
		set -- "${1#ol-}"
		pr=${1%-*}
		case $pr in
		redis) max=$ol_max_redis ;;
		*) max=$ol_max_http ;;
		esac
		rate=$((max * ${1##*-} / 100))
		olclient "$pr" --rate "$rate"
		jq -r --arg rate "$rate" '.[0] | if .error then "0 0 0 1 0 0 \($rate) 0 0" else
			"\(.open_loop.rate_achieved) \(.lat_ns.p50 / 1e6) \(.lat_ns.p99 / 1e6) 0 \(.lat_ns.p999 / 1e6) \(if .open_loop.valid then 0 else 1 end) \($rate) \(.lat_ns.p90 / 1e6) \(.lat_ns.p9999 / 1e6)" end' \
			"$tmp/ol.json" 2>/dev/null || echo "0 0 0 1 0 0 $rate 0 0"
		[ -s "$tmp/ol.err" ] && sed 's/^/    /' "$tmp/ol.err" >&2
		;;
	esac
}

# mfwait : until meshfwd in pods A and B holds no connection (each logs a
# connection's bytes when it has closed); 10 s at most
mfwait() {
	i=0
	while [ $i -lt 100 ]; do
		n=0
		for pod in a b; do
			n=$((n + $($M exec $pod ss -Htn6 state established '( sport = :15001 or sport = :15006 )' | wc -l)))
		done
		[ $n -gt 0 ] || return 0
		sleep 0.1
		i=$((i + 1))
	done
}

# set_mode plain|accel ; in the connect layout plain is istio-init's rules
# without sockmesh, accel no rule and sockmeshd's mode = connect
set_mode() {
	case $layout$1 in
	connectplain)
		if [ "$cx_base" = accel ]; then
			# the rules capture, sockmesh accelerates (mode = iptables)
			$M rules on && $M accel on 2>/dev/null &&
				sed 's/^mode = connect$/mode = iptables/' "$conf" >"$tmp/ipt.ini" &&
				"$build/sockmesh" reload -c "$tmp/ipt.ini" >/dev/null
		else
			$M accel off 2>/dev/null && $M rules on
		fi
		;;
	connectaccel)
		$M rules off && $M accel on 2>/dev/null
		if [ "$cx_base" = accel ]; then
			"$build/sockmesh" reload -c "$conf" >/dev/null && $M probe
		fi
		;;
	*plain) $M accel off 2>/dev/null ;;
	*accel) $M accel on 2>/dev/null ;;
	esac
}

echo "mesh-bench: $WORKLOADS x plain,accel, $rounds rounds, $conns connections" >&2
: >"$tmp/runs"
failed=0
# ol-*: the closed-loop rate of the same client through the plain mesh
ol_max_redis=0 ol_max_http=0
case " $WORKLOADS " in
*" ol-"*)
	set_mode plain
	for pr in redis http; do
		olclient $pr
		v=$(jq -er '.[0] | select(.error | not) | .ops_per_s | floor' "$tmp/ol.json") ||
			die "ol-$pr: no closed-loop rate through the plain mesh: $(cat "$tmp/ol.err") $(jq -r '.[0].error // empty' "$tmp/ol.json" 2>/dev/null)"
		case $pr in
		redis) ol_max_redis=$v ;;
		*) ol_max_http=$v ;;
		esac
		echo "  ol-$pr: closed loop through the plain mesh, $ol_conns connections: $v req/s" >&2
	done
	;;
esac
# tls_tcp on|off : the accelerated mesh's config with the ambient TLS hop's
# port (15008) excluded, or as mesh.sh wrote it; applied by `sockmesh reload`
# (to the connections made after it: every run opens its own)
tls_tcp() {
	if [ "$1" = on ]; then
		cp "$conf" "$tmp/conf.saved"
		sed -i 's/^\(exclude_ports[ \t]*=[ \t]*\)/\115008, /' "$conf"
		grep -q '^exclude_ports.*15008' "$conf" || die "no exclude_ports line in $conf to add 15008 to"
	else
		cp "$tmp/conf.saved" "$conf"
	fi
	"$build/sockmesh" reload -c "$conf" >/dev/null || die "sockmesh reload (tls_tcp $1) failed"
}

# bench WORKLOAD... : every round, plain and accel, each workload
bench() {
ws=$* # each run's figures are set as the positional parameters
for r in $(seq "$rounds"); do
	[ $((r % 2)) = 1 ] && order="plain accel" || order="accel plain"
	for mode in $order; do
		set_mode $mode
		for w in $ws; do
			case $mode$w in accel*-tlstcp) tls_tcp on ;; esac
			counters "$tmp/c0"
			proxystats "$tmp/h0"
			set -- $(run "$w")
			case $w in *-v6) mfwait ;; esac
			proxystats "$tmp/h1"
			counters "$tmp/c1"
			case $mode$w in accel*-tlstcp) tls_tcp off ;; esac
			hop=$(($(hopbytes "$tmp/h1") - $(hopbytes "$tmp/h0") + $(mfbytes "$tmp/h0" "$tmp/h1")))
			[ "$4" = 0 ] || failed=$((failed + 1))
			# round mode workload rps p50 p99 errors hop_bytes, counter
			# deltas, p999 overloaded asked (open loop)
			printf '%s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s\n' "$r" "$mode" "$w" \
				"$1" "$2" "$3" "$4" "$hop" \
				"$(cdelta "$tmp/c0" "$tmp/c1" bytes_redirected)" \
				"$(cdelta "$tmp/c0" "$tmp/c1" msgs_redirected)" \
				"$(cdelta "$tmp/c0" "$tmp/c1" msgs_passed)" \
				"$(cdelta "$tmp/c0" "$tmp/c1" peer_misses)" \
				"$(cdelta "$tmp/c0" "$tmp/c1" peers_paired)" \
				"$(cdelta "$tmp/c0" "$tmp/c1" peers_paired_nat)" \
				"$(cdelta "$tmp/c0" "$tmp/c1" peers_unpaired)" "$5" "$6" "$7" "$8" "$9" >>"$tmp/runs"
			echo "  round $r $mode $w: $1 req/s, p50 $2 ms, p99 $3 ms$([ "$6" = 0 ] || echo ", OVERLOADED")" >&2
		done
	done
done
}
[ -z "$side_w" ] || bench $side_w
set_mode plain
stop_sockperf
# phase LAYOUT TITLE WORKLOAD... : the workloads on a mesh of LAYOUT, built
# anew unless it is the one up
phase() {
	lay=$1 title=$2
	shift 2
	[ $# -gt 0 ] || return 0
	if [ "$layout" != "$lay" ]; then
		$M down >/dev/null 2>&1 || die "mesh.sh down (before the $lay layout) failed"
		layout=$lay
		$M up "$lay" 2>"$tmp/up.log" || { cat "$tmp/up.log" >&2; die "mesh.sh up $lay failed"; }
		conf=$($M conf)
	fi
	echo "mesh-bench: the $title layout: $*" >&2
	bench "$@"
	set_mode plain
}
# shellcheck disable=SC2086
phase connect "connect (iptables-free)" $cx_w
# shellcheck disable=SC2086
phase ambient ambient $amb_w

# --- report ------------------------------------------------------------------
main_commit=$(git log -1 --format=%h 2>/dev/null || echo unknown)
when=$(date -u '+%Y-%m-%d %H:%M UTC')
host="Linux $(uname -r) $(uname -m), $(nproc) CPUs"

mkdir -p "$out"
awk -v when="$when" -v host="$host" -v commit="$main_commit" -v rounds="$rounds" \
	-v conns="$conns" -v dur="$dur" -v rn="$redis_n" -v olc="$ol_conns" \
	-v olmr="$ol_max_redis" -v olmh="$ol_max_http" -v tsv="$tmp/ol" -v cxb="$cx_base" '
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
		k = $3 SUBSEP $2; n[k]++
		rps[k, n[k]] = $4; p50[k, n[k]] = $5; p99[k, n[k]] = $6
		err[k] += $7; hop[k] += $8; br[k] += $9; mr[k] += $10; mp[k] += $11
		pm[k] += $12; pp[k] += $13; pn[k] += $14; pu[k] += $15
		p999[k, n[k]] = $16; ov[k] += $17; asked[k] = $18
		p90[k, n[k]] = $19; p9999[k, n[k]] = $20
		if (!($3 in seen)) { seen[$3] = 1; order[++nw] = $3 }
		runs[++nr] = $0
	}
	function med(arr, k,   i, t) { for (i = 1; i <= n[k]; i++) t[i] = arr[k, i]; return median(t, n[k]) }
	END {
		js = "{\"when\": \"" when "\", \"host\": \"" host "\", \"commit\": \"" commit "\", "
		js = js "\"rounds\": " rounds ", \"connections\": " conns ", \"wrk_seconds\": " dur ", \"redis_requests\": " rn ", \"results\": ["
		md = "# sockmesh mesh benchmark\n\n- " when ", " host ", commit " commit "\n"
		md = md "- pod A app -> HAProxy A (15001) -> HAProxy B (15006) -> pod B app, istio-init iptables, both sidecars as uid 1337 (scripts/mesh/mesh.sh)\n"
		md = md "- *-v6: the same over IPv6 (ip6tables, pod B 2001:db8::3) through meshfwd, the IPv6 sidecar of tests/mesh (HAProxy 2.6 cannot be one); a simpler proxy, so compare these ratios with each other\n"
		md = md "- cx-*: the iptables-free mode (mesh.sh up connect, a mesh built anew after the sidecar rows): plain is that mesh captured by istio-init'"'"'s rules " (cxb == "accel" ? "WITH sockmesh accelerating ([mesh] mode = iptables; MESH_CX_BASE=accel)" : "without sockmesh") ", accel the same pods with no rule, sockmeshd'"'"'s [mesh] mode = connect capturing; compare its accel column with the sidecar rows'"'"' (iptables capture, accelerated)\n"
		md = md "- amb-*: Istio ambient'"'"'s layout (mesh.sh up ambient, a mesh built anew after the rows above): app A -> node proxy (HAProxy as ztunnel, listening inside pod A) -> mutual TLS, pod A to pod B:15008 -> node proxy inside pod B -> app B from A'"'"'s address; hops redirected counts the TLS hop at its plaintext size; *-tlstcp: the accelerated runs with 15008 excluded (the TLS hop on TCP)\n"
		md = md "- " conns " connections; redis-benchmark -t get -n " rn "; wrk -t 1 for " dur " s; median of " rounds " rounds, plain and accel interleaved in each round\n"
		md = md "- ul-RATE: a fixed-rate client, `sockperf ul --tcp -m 64 --mps RATE --full-rtt --reply-every 1` for " dur " s, one connection, to a sockperf server in pod B: req/s is the achieved message rate, p50/p99 the full round trip through both sidecars\n"
		md = md "- hops redirected: bytes_redirected / the bytes the three hops carried (HAProxy stats), over the accel runs\n"
		md = md "- ol-*: open loop through both sidecars (below)\n\n"
		md = md "| workload | plain req/s | accel req/s | accel/plain | plain p50 ms | accel p50 ms | plain p99 ms | accel p99 ms | hops redirected | msgs redirected | msgs passed | peers paired (NAT) | unpaired | errors |\n"
		md = md "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
		for (i = 1; i <= nw; i++) {
			w = order[i]; kp = w SUBSEP "plain"; ka = w SUBSEP "accel"
			rp = med(rps, kp); ra = med(rps, ka)
			if (w ~ /^ol-/) { nol++; continue }
			cov = hop[ka] > 0 ? 100 * br[ka] / hop[ka] : 0
			md = md sprintf("| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f %% | %.0f | %.0f | %.0f (%.0f) | %.0f | %.0f |\n",
				w, rp, ra, rp > 0 ? ra / rp : 0, med(p50, kp), med(p50, ka), med(p99, kp), med(p99, ka),
				cov, mr[ka], mp[ka], pp[ka], pn[ka], pu[ka], err[kp] + err[ka])
			js = js (js1 ? ", " : "") sprintf("{\"workload\": \"%s\", \"plain\": {\"rps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}, \"accel\": {\"rps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}, \"speedup\": %.3f, \"hop_bytes\": %.0f, \"bytes_redirected\": %.0f, \"hops_redirected\": %.4f, \"msgs_redirected\": %.0f, \"msgs_passed\": %.0f, \"peer_misses\": %.0f, \"peers_paired\": %.0f, \"peers_paired_nat\": %.0f, \"peers_unpaired\": %.0f, \"errors\": %.0f}",
				w, rp, med(p50, kp), med(p99, kp), ra, med(p50, ka), med(p99, ka), rp > 0 ? ra / rp : 0,
				hop[ka], br[ka], cov / 100, mr[ka], mp[ka], pm[ka], pp[ka], pn[ka], pu[ka], err[kp] + err[ka])
			js1 = 1
		}
		if (nol) {
			md = md "\n## Open loop through the mesh: latency against load\n\n"
			md = md "sockmesh-bench'"'"'s own client in pod A (`--target 198.18.0.3:6379 --proto redis:sockmesh-bench`, a GET of a 3-byte value; `--target 198.18.0.3:8080 --proto http:/100b`), " olc " connections with one request in flight each, non-blocking sockets; at a fixed rate, constant arrivals, each latency from the request'"'"'s intended send time (no coordinated omission), for " dur " s after 0.5 s of warm-up. Loads are fractions of the rate the same client reached closed-loop through the plain mesh, measured once first: redis " olmr "/s, http " olmh "/s. A round that completed fewer than 99 % of the requests it scheduled is OVERLOADED (its latency a lower bound). µs, medians of " rounds " rounds. Plots: mesh-ol-redis.svg, mesh-ol-http.svg (perf/sweep-plot.sh).\n\n"
			md = md "| workload | asked/s | plain done/s | plain p50 | plain p99 | plain p99.9 | accel done/s | accel p50 | accel p99 | accel p99.9 | accel/plain p99 | hops redirected | overloaded rounds (plain, accel) | errors |\n"
			md = md "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
		}
		for (i = 1; i <= nw; i++) {
			w = order[i]; kp = w SUBSEP "plain"; ka = w SUBSEP "accel"
			if (w !~ /^ol-/) continue
			cov = hop[ka] > 0 ? 100 * br[ka] / hop[ka] : 0
			q99p = med(p99, kp); q99a = med(p99, ka)
			md = md sprintf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.1f %% | %.0f, %.0f | %.0f |\n",
				w, asked[kp], med(rps, kp), 1000 * med(p50, kp), 1000 * q99p, 1000 * med(p999, kp),
				med(rps, ka), 1000 * med(p50, ka), 1000 * q99a, 1000 * med(p999, ka),
				q99p > 0 ? q99a / q99p : 0, cov, ov[kp], ov[ka], err[kp] + err[ka])
			js = js (js1 ? ", " : "") sprintf("{\"workload\": \"%s\", \"open_loop\": true, \"asked_rps\": %.0f, \"plain\": {\"rps\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"overloaded_rounds\": %.0f}, \"accel\": {\"rps\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"overloaded_rounds\": %.0f}, \"p99_accel_over_plain\": %.3f, \"hop_bytes\": %.0f, \"bytes_redirected\": %.0f, \"hops_redirected\": %.4f, \"peers_unpaired\": %.0f, \"errors\": %.0f}",
				w, asked[kp], med(rps, kp), med(p50, kp), q99p, med(p999, kp), ov[kp],
				med(rps, ka), med(p50, ka), q99a, med(p999, ka), ov[ka],
				q99p > 0 ? q99a / q99p : 0, hop[ka], br[ka], cov / 100, pu[ka], err[kp] + err[ka])
			js1 = 1
			# the curve, in perf/sweep-plot.sh'"'"'s TSV (plain as tcp)
			split(w, part, "-")
			tf = tsv "-" part[2] ".tsv"
			if (!(tf in hdr)) { hdr[tf] = 1; print "# load\ttransport\trate_asked\trate_achieved\tp50_ns\tp90_ns\tp99_ns\tp999_ns\tp9999_ns\tvalid" > tf }
			for (m = 1; m <= 2; m++) {
				k = w SUBSEP (m == 1 ? "plain" : "accel")
				printf "%.2f\t%s\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\n", part[3] / 100,
					m == 1 ? "tcp" : "accel", asked[k], med(rps, k), 1e6 * med(p50, k), 1e6 * med(p90, k),
					1e6 * med(p99, k), 1e6 * med(p999, k), 1e6 * med(p9999, k), (ov[k] == 0) > tf
			}
		}
		js = js "], \"runs\": ["
		for (i = 1; i <= nr; i++) {
			split(runs[i], f, " ")
			js = js (i > 1 ? ", " : "") sprintf("{\"round\": %.0f, \"mode\": \"%s\", \"workload\": \"%s\", \"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"errors\": %.0f, \"hop_bytes\": %.0f, \"bytes_redirected\": %.0f, \"msgs_redirected\": %.0f, \"msgs_passed\": %.0f, \"peer_misses\": %.0f, \"peers_paired\": %.0f, \"peers_paired_nat\": %.0f, \"peers_unpaired\": %.0f, \"p999_ms\": %s, \"overloaded\": %s, \"asked_rps\": %s}",
				f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13], f[14], f[15], f[16], f[17] ? "true" : "false", f[18])
		}
		print js "]}" > "/dev/stderr"
		printf "%s", md
	}' "$tmp/runs" >"$out/mesh.md" 2>"$tmp/mesh.json"
jq . "$tmp/mesh.json" >"$out/mesh.json" || die "the JSON report is malformed ($tmp/mesh.json)"
for pr in redis http; do
	[ -s "$tmp/ol-$pr.tsv" ] || continue
	if command -v gnuplot >/dev/null; then
		perf/sweep-plot.sh "$tmp/ol-$pr.tsv" "$out/mesh-ol-$pr.svg" \
			"$pr through both sidecars, open loop ($ol_conns connections; tcp = plain mesh, accel = sockmesh)" ||
			echo "mesh-bench.sh: the $pr curve was not drawn" >&2
	else
		echo "mesh-bench.sh: gnuplot is missing (scripts/setup.sh --bench): no mesh-ol-$pr.svg" >&2
	fi
done
echo "- took $(($(date +%s) - start)) s" >>"$out/mesh.md"
cat "$out/mesh.md"
[ "$failed" = 0 ] || die "$failed runs reported errors (see $out/mesh.json)"
