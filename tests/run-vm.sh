#!/bin/sh
# run-vm.sh BUILD - the part of `make test` that keeps the README's platform
# working: the integration suite under Debian 12's own kernel (6.1), booted
# in qemu by scripts/kernels/vm-run.sh (the kernel package is fetched once
# into /var/cache/sockmesh-kernels). `make test-kernels` runs every kernel
# and both suites. SM_VM_KERNELS=ID,... runs others here instead.
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
ids=${SM_VM_KERNELS:-6.1}
ids=$(echo "$ids" | tr ',' ' ')
# shellcheck disable=SC2086
scripts/kernels/test-kernels.sh -b "$build" -s integration $ids 2>&1 |
	sed 's/^kernels: /vm: /'
