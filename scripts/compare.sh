#!/bin/sh
# compare.sh [ROUNDS] - redis-benchmark GET and sockperf (ping-pong, and under
# load beside sockmesh-bench --rate), plain loopback TCP vs accelerated,
# interleaved in one run: a subset of
# perf/real-clients.sh (the real-client table of `make bench`), which does
# the work and documents it. Needs root and the packages of
# `scripts/setup.sh --bench`. Writes build/compare.{md,json,svg}.
set -eu
cd "$(dirname "$0")/.."
exec perf/real-clients.sh --only redis,sockperf --rounds "${1:-3}" --out build/compare
