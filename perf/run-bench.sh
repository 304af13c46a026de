#!/bin/sh
# run-bench.sh [BUILD] - `make bench`: the sockmesh-bench matrix (rr, stream,
# stream-rw, crr x 64 B .. 1 MiB x tcp, accel, uds, interleaved) against a private
# sockmeshd. Writes perf/results/latest.json, latest.md, latency.svg,
# throughput.svg and crr.svg, puts the report in perf/README.md and prints
# it. Uses a private cgroup, pin dir and run dir; removes them whatever
# happens. Needs root and gnuplot (gnuplot-nox).
#
# Environment (the defaults take about 5 minutes on 2 CPUs):
#   BENCH_TIME=1.2           seconds measured per run
#   BENCH_ROUNDS=3           rounds of the whole matrix; each figure merges them
#   BENCH_WARMUP=0.2         unmeasured seconds before each run
#   BENCH_MODES=rr,stream,stream-rw,crr
#   BENCH_SIZES=64,1K,16K,64K,256K,1M
#   BENCH_CPUS=none          or SERVER,CLIENT: pin them (e.g. 1,0)
#   BENCH_ARGS=              more sockmesh-bench options (e.g. -n 4)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
bench=$build/sockmesh-bench
out=perf/results
time_s=${BENCH_TIME:-1.2}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP:-0.2}
modes=${BENCH_MODES:-rr,stream,stream-rw,crr}
sizes=${BENCH_SIZES:-64,1K,16K,64K,256K,1M}

die() {
	echo "run-bench.sh: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (BPF programs, cgroups)"
[ -x "$bench" ] || die "$bench is missing: run make"
command -v gnuplot >/dev/null || die "gnuplot is missing: apt-get install gnuplot-nox (or make deps)"

# Not pinned by default: on a small machine shared with other work, a pinned
# process stalls whenever something else runs on its CPU (see perf/README.md).
pin=""
case ${BENCH_CPUS:-none} in
none) ;;
*,*) pin="--cpu-server ${BENCH_CPUS%,*} --cpu-client ${BENCH_CPUS#*,}" ;;
*) die "BENCH_CPUS: SERVER,CLIENT (e.g. 1,0) or none" ;;
esac

. scripts/private-daemon.sh
start=$(date +%s)
sm_daemon_traps
# sockmesh-bench's io_uring loops use blocking sockets (io_uring never
# blocks a recv on them: it polls), which compat = strict keeps on TCP; the
# matrix measures the datapath itself. real-clients.sh shows strict.
SM_COMPAT=fast
sm_daemon_start "$build" "sockmesh-bench-$$" || die "cannot start a private sockmeshd"
unset SM_COMPAT
run=$sm_run

echo "sockmesh-bench: $modes x $sizes x tcp,accel,uds, $rounds rounds of ${time_s} s" >&2
rc=0
# shellcheck disable=SC2086 # $pin and $BENCH_ARGS are lists of options
"$bench" -c "$sm_conf" -m "$modes" -s "$sizes" -T tcp,accel,uds \
	-t "$time_s" -w "$warmup" -r "$rounds" $pin ${BENCH_ARGS:-} \
	--save "$run/latest" -v >"$run/table.txt" || rc=$?
# 1: some run failed, and the report says which; anything else: no report
[ "$rc" -le 1 ] && [ -s "$run/latest.md" ] || die "sockmesh-bench failed (exit $rc)"

sm_daemon_stop

# Plots: one data file per mode and transport, one line per transport.
mkdir -p "$run/plot"
awk -F'\t' -v d="$run/plot" '!/^#/ { print > (d "/" $1 "-" $2 ".dat") }' "$run/latest.tsv"
tics=$(awk -F'\t' '!/^#/ && !seen[$3]++ {
	s = $3
	if (s >= 1048576 && s % 1048576 == 0) l = s / 1048576 " MiB"
	else if (s >= 1024 && s % 1024 == 0) l = s / 1024 " KiB"
	else l = s " B"
	printf "%s\"%s\" %s", n++ ? ", " : "", l, s
}' "$run/latest.tsv")

# plot MODE YEXPR TITLE... : the plot command's clauses for each transport
lines() {
	mode=$1
	shift
	sep=""
	for t in tcp accel uds; do
		f="$run/plot/$mode-$t.dat"
		[ -f "$f" ] || continue
		case $t in
		tcp) c="#1f77b4" ;;
		accel) c="#d62728" ;;
		uds) c="#2ca02c" ;;
		esac
		printf '%s"%s" using 3:(%s) with linespoints %s lc rgb "%s" title "%s%s"' \
			"$sep" "$f" "$1" "${style:-lw 2 pt 7}" "$c" "$t" "$2"
		sep=", "
		if [ $# -ge 4 ]; then
			printf ', "%s" using 3:(%s) with linespoints lw 1 dt 2 pt 6 lc rgb "%s" title "%s%s"' \
				"$f" "$3" "$c" "$t" "$4"
		fi
	done
}

# plot_block FILE TITLE XLABEL YLABEL CLAUSES: one plot, if its mode ran
plot_block() {
	[ -n "$5" ] || return 0
	printf 'set output "%s/%s"\nset title "%s"\nset xlabel "%s"\nset ylabel "%s"\nplot %s\n\n' \
		"$run" "$1" "$2" "$3" "$4" "$5"
}

# stream (io_uring, solid) and stream-rw (blocking, dashed) in one plot
tp=$(lines stream '$5/1e6' ' io_uring')
rw=$(style="lw 1 dt 2 pt 6" lines stream-rw '$5/1e6' ' blocking (stream-rw)')
tp_clauses=$tp${tp:+${rw:+, }}$rw

{
	cat <<EOG
set terminal svg size 820,520 dynamic enhanced font "sans,12" background rgb "white"
set encoding utf8
set grid
set key top left
set logscale x 2
set logscale y 10
set xtics ($tics)

EOG
	plot_block latency.svg \
		"rr latency by message size (p50 solid, p99 dashed; lower is better)" \
		"message size" "latency (µs)" \
		"$(lines rr '$6/1e3' ' p50' '$8/1e3' ' p99')"
	plot_block throughput.svg \
		"stream throughput by write size: io_uring, verified (solid), blocking read/write (dashed); higher is better" \
		"write size" "throughput (MB/s)" "$tp_clauses"
	plot_block crr.svg \
		"crr: connect, one exchange, close (higher is better)" \
		"message size" "connections/s" "$(lines crr '$4' '')"
} >"$run/plot.gp"
gnuplot "$run/plot.gp" 2>"$run/gnuplot.log" || {
	cat "$run/gnuplot.log" >&2
	die "gnuplot failed"
}

mkdir -p "$out"
# a plot of a mode that did not run would belong to another run: drop it
for f in latest.json latest.md latency.svg throughput.svg crr.svg; do
	if [ -f "$run/$f" ]; then
		cp "$run/$f" "$out/$f"
	else
		rm -f "$out/$f"
	fi
done
# the report goes between the markers of perf/README.md, a level down
if grep -q '^<!-- bench-results:begin -->' perf/README.md 2>/dev/null; then
	sed 's/^#/##/' "$run/latest.md" >"$run/embed.md"
	awk -v f="$run/embed.md" '
		/^<!-- bench-results:begin -->/ {
			print
			while ((getline l < f) > 0) print l
			skip = 1
			next
		}
		/^<!-- bench-results:end -->/ { skip = 0 }
		!skip' perf/README.md >"$run/README.md"
	cp "$run/README.md" perf/README.md
fi

cat "$out/latest.md"
end=$(date +%s)
echo "make bench: $((end - start)) s; results in $out/ ($(cd "$out" && ls latest.md latest.json *.svg 2>/dev/null | tr '\n' ' ' | sed 's/ $//'))"
exit "$rc"
