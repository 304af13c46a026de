#!/bin/sh
# setup.sh - install the Debian packages sockmesh needs to build, run and
# test. Idempotent: it installs only what is missing, and is quick when
# nothing is. Run as root (make run / make test call it).
#   scripts/setup.sh --bench   also the clients and servers of the real-client
#                              benchmark (make bench, perf/real-clients.sh); the
#                              redis-server, nginx-light and postgresql packages start their
#                              system services, which the benchmark does not use
#                              (it runs its own in a private network namespace)
set -eu

PKGS="clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev libcgroup-dev
liburing-dev libinih-dev libcmocka-dev pkg-config make gcc iproute2
clang-format cppcheck gnuplot-nox libclang-rt-dev valgrind prometheus
iptables haproxy redis-server redis-tools nginx-light wrk curl jq python3
openssl"
BENCH_PKGS="iperf3 sockperf redis-server redis-tools nginx-light wrk jq util-linux
postgresql python3 default-jdk-headless"
[ "${1:-}" = --bench ] && PKGS="$PKGS $BENCH_PKGS"

# the node service's checks (tests/run-deploy.sh): capsh, systemd-analyze,
# strace, man --warnings, yamllint
PKGS="$PKGS libcap2-bin systemd strace man-db groff-base yamllint"
# Debian's own kernels under qemu (tests/run-vm.sh, make test-kernels)
PKGS="$PKGS qemu-system-x86 busybox-static kmod debian-archive-keyring"
# `setup.sh --deploy` (make test-deploy): also what builds and runs the
# container image
[ "${1:-}" = --deploy ] && PKGS="$PKGS podman runc debootstrap"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh: missing packages:$missing; run as root to install them" >&2
	exit 1
fi
echo "setup.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
