#!/bin/sh
# sweep-plot.sh TSV OUT [TITLE] - the latency curve of a sockmesh-bench
# --sweep (its --save PREFIX.tsv): p50, p99 and p99.9 (log scale) against the
# achieved rate, one line per transport and percentile (colour: transport;
# solid p50, dashed p99, dotted p99.9). Points the transport could not keep
# up with (OVERLOADED, valid = 0) are drawn as crosses, not joined: their
# latency is a lower bound. OUT ending in .png is a PNG, else an SVG. Needs
# gnuplot (gnuplot-nox). Used by perf/run-bench.sh.
set -eu

die() {
	echo "sweep-plot.sh: $*" >&2
	exit 2
}
[ $# -ge 2 ] || die "usage: sweep-plot.sh TSV OUT [TITLE]"
tsv=$1
out=$2
title=${3:-rr latency against load (open loop, latency from intended send time)}
[ -s "$tsv" ] || die "$tsv is missing or empty"
command -v gnuplot >/dev/null || die "gnuplot is missing: apt-get install gnuplot-nox"
head -1 "$tsv" | grep -q '^# load	transport	rate_asked	rate_achieved	p50_ns' ||
	die "$tsv is not the TSV of sockmesh-bench --sweep"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sweep-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# one file per transport, valid points (sorted by achieved rate), and one of
# every overloaded point
awk -F'\t' -v d="$tmp" '
	/^#/ { next }
	$10 == 1 { print | ("sort -t \"\t\" -k4,4g > " d "/" $2 ".dat") }
	$10 != 1 { print > (d "/overloaded.dat"); over = 1 }
	END { if (!over) print "" > (d "/overloaded.dat") }' "$tsv"

case $out in
*.png) term='pngcairo size 900,560 enhanced font "sans,11" background rgb "white"' ;;
*) term='svg size 900,560 dynamic enhanced font "sans,12" background rgb "white"' ;;
esac

plots=""
for t in tcp accel uds; do
	f=$tmp/$t.dat
	[ -s "$f" ] || continue
	case $t in
	tcp) c="#1f77b4" ;;
	accel) c="#d62728" ;;
	uds) c="#2ca02c" ;;
	esac
	plots="$plots${plots:+, }\"$f\" using 4:(\$5/1e3) with linespoints lw 2 pt 7 lc rgb \"$c\" title \"$t p50\""
	plots="$plots, \"$f\" using 4:(\$7/1e3) with linespoints lw 1.5 dt 2 pt 6 lc rgb \"$c\" title \"$t p99\""
	plots="$plots, \"$f\" using 4:(\$8/1e3) with linespoints lw 1 dt 3 pt 4 lc rgb \"$c\" title \"$t p99.9\""
done
[ -n "$plots" ] || die "$tsv has no valid point"
if [ -s "$tmp/overloaded.dat" ] && grep -q . "$tmp/overloaded.dat"; then
	plots="$plots, \"$tmp/overloaded.dat\" using 4:(\$7/1e3) with points pt 2 ps 1.5 lc rgb \"black\" title \"OVERLOADED, p99\""
fi

cat >"$tmp/plot.gp" <<EOG
set terminal $term
set encoding utf8
set output "$out"
set title "$title"
set xlabel "achieved load (requests/s)"
set ylabel "latency (µs, log scale; lower is better)"
set grid
set key outside right top
set logscale y 10
set datafile separator "\t"
plot $plots
EOG
gnuplot "$tmp/plot.gp" 2>"$tmp/gnuplot.log" || {
	cat "$tmp/gnuplot.log" >&2
	die "gnuplot failed"
}
