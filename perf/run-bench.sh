#!/bin/sh
# run-bench.sh [BUILD] - `make bench`: the sockmesh-bench matrix (rr, stream,
# stream-rw, crr x 64 B .. 1 MiB x tcp, accel, uds, interleaved) against a private
# sockmeshd, then a latency sweep (rr 64 B, --sweep: open loop at 10..110% of
# plain TCP's maximum, tcp, accel, uds). Writes perf/results/latest.json,
# latest.md, latency.svg, throughput.svg, crr.svg, and sweep.json, sweep.md,
# sweep.tsv, sweep.svg (perf/sweep-plot.sh), puts both reports in
# perf/README.md and prints them. Uses a private cgroup, pin dir and run dir;
# removes them whatever happens. Needs root and gnuplot (gnuplot-nox).
#
# Environment (the defaults take about 6 minutes on 2 CPUs):
#   BENCH_TIME=1.2           seconds measured per run
#   BENCH_ROUNDS=3           rounds of the whole matrix; each figure merges them
#   BENCH_WARMUP=0.2         unmeasured seconds before each run
#   BENCH_MODES=rr,stream,stream-rw,crr
#   BENCH_SIZES=64,1K,16K,64K,256K,1M
#   BENCH_CPUS=none          or SERVER,CLIENT: pin them (e.g. 1,0)
#   BENCH_ARGS=              more sockmesh-bench options (e.g. -n 4)
#   BENCH_SWEEP=1            0: no sweep
#   BENCH_SWEEP_TIME=1       seconds measured per point of the sweep
#   BENCH_SWEEP_SIZE=64      its message size
#   BENCH_SWEEP_ARGS=        more sockmesh-bench options for it (e.g.
#                            --arrivals exp, --knee-us 200, -n 4)
#   BENCH_OUT=perf/results   where the results go; perf/README.md is updated
#                            only when it is perf/results
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
bench=$build/sockmesh-bench
out=${BENCH_OUT:-perf/results}
time_s=${BENCH_TIME:-1.2}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP:-0.2}
modes=${BENCH_MODES:-rr,stream,stream-rw,crr}
sizes=${BENCH_SIZES:-64,1K,16K,64K,256K,1M}
sweep=${BENCH_SWEEP:-1}
sweep_time=${BENCH_SWEEP_TIME:-1}
sweep_size=${BENCH_SWEEP_SIZE:-64}

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

# The latency sweep: latency against offered load, open loop (perf/README.md,
# "Open loop and the latency sweep"). Overloaded points are part of the
# curve, not failures; a failed run makes the exit status 1, as above.
if [ "$sweep" != 0 ]; then
	echo "sockmesh-bench --sweep: rr $sweep_size x tcp,accel,uds, 8 points of ${sweep_time} s" >&2
	src=0
	# shellcheck disable=SC2086 # $pin and $BENCH_SWEEP_ARGS are lists of options
	"$bench" -c "$sm_conf" --sweep -s "$sweep_size" -T tcp,accel,uds \
		-t "$sweep_time" -w "$warmup" $pin ${BENCH_SWEEP_ARGS:-} \
		--save "$run/sweep" -v >"$run/sweep.txt" || src=$?
	[ "$src" -eq 0 ] || rc=1
	if [ "$src" -gt 1 ] || [ ! -s "$run/sweep.tsv" ]; then
		# the matrix's results are still worth writing
		echo "run-bench.sh: sockmesh-bench --sweep failed (exit $src), no sweep report:" >&2
		tail -5 "$run/sweep.txt" >&2
		rm -f "$run/sweep.json" "$run/sweep.md" "$run/sweep.tsv"
		sweep=0
	fi
fi

sm_daemon_stop

if [ "$sweep" != 0 ]; then
	perf/sweep-plot.sh "$run/sweep.tsv" "$run/sweep.svg" \
		"rr, size $sweep_size: latency against load (open loop, from intended send time; lower is better)"
fi

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
for f in latest.json latest.md latency.svg throughput.svg crr.svg \
	sweep.json sweep.md sweep.tsv sweep.svg; do
	if [ -f "$run/$f" ]; then
		cp "$run/$f" "$out/$f"
	else
		rm -f "$out/$f"
	fi
done
# embed REPORT MARKER [LINE]: the report (and LINE after it) goes between
# the markers MARKER:begin and MARKER:end of perf/README.md, a level down
# (results of perf/results only)
embed() {
	[ "$out" = perf/results ] && [ -f "$1" ] || return 0
	grep -q "^<!-- $2:begin -->" perf/README.md 2>/dev/null || return 0
	sed 's/^#/##/' "$1" >"$run/embed.md"
	[ -z "${3:-}" ] || printf '%s\n\n' "$3" >>"$run/embed.md"
	awk -v f="$run/embed.md" -v b="<!-- $2:begin -->" -v e="<!-- $2:end -->" '
		$0 == b {
			print
			while ((getline l < f) > 0) print l
			skip = 1
			next
		}
		$0 == e { skip = 0 }
		!skip' perf/README.md >"$run/README.md"
	cp "$run/README.md" perf/README.md
}
embed "$run/latest.md" bench-results
embed "$run/sweep.md" sweep-results "![latency against load](results/sweep.svg)"

cat "$out/latest.md"
[ ! -f "$out/sweep.md" ] || cat "$out/sweep.md"
end=$(date +%s)
echo "make bench: $((end - start)) s; results in $out/ ($(cd "$out" && ls latest.md latest.json sweep.md sweep.json sweep.tsv *.svg 2>/dev/null | tr '\n' ' ' | sed 's/ $//'))"
exit "$rc"
