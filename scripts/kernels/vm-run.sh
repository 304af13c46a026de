#!/bin/bash
# vm-run.sh - run a command under one of Debian's own kernels, in qemu (TCG),
# on this machine's root filesystem shared into the guest.
#
# Usage: scripts/kernels/vm-run.sh [options] -- CMD [ARGS...]
#   -k ID        kernel of scripts/kernels/kernels.list (default: its first)
#   -t SECONDS   kill the VM after that long, boot included, and exit 124
#                (default 3600; 0: no limit)
#   -C DIR       run CMD in DIR (default: the current directory; below
#                /tmp, /var/tmp, /run or /dev/shm it is shared as with -w)
#   -e NAME=VAL  set an environment variable for CMD (repeatable)
#   -w DIR       share the host's DIR read-write at the same path (repeatable;
#                everything else the guest writes is thrown away)
#   -r           plain read-only root: no overlay, tmpfs on /tmp /run /var/tmp
#                /lib/modules only (default: overlayfs over the shared root
#                with a tmpfs upper, so every path is writable in the guest)
#   -m MEM       guest memory (default 3G)     -s N  guest CPUs (default 2)
#   -a ARGS      more kernel command line
#   -v           show the kernel's console (boot log) on stderr
#   -q           no summary line on stderr
# Exit status: CMD's; 124 on timeout; 125 when the VM did not run CMD (a
# boot failure: the end of the console log is printed); 130 on SIGINT.
# Environment: SM_KCACHE (kernel cache, see fetch.sh), SM_QEMU (default
# qemu-system-x86_64).
#
# The guest sees the host's / (9p, read-only, cache=loose, msize 512000) at
# the same paths, so build/... and the tools of this machine are there. The
# kernel is fetched (fetch.sh) and the initramfs built (initramfs.sh) when
# missing. Inside: proc, sysfs, devtmpfs, devpts, tmpfs /tmp /run /var/tmp
# /dev/shm, bpffs on /sys/fs/bpf, a pure cgroup2 on /sys/fs/cgroup,
# debugfs, tracefs, the kernel's modules at /lib/modules/$(uname -r)
# (modprobe works), lo up, no other network device (-nic none), hostname
# sockmesh-vm, SM_VM=ID in the environment, stdin /dev/null. CMD's stdout
# and stderr both come out on this script's stdout. No KVM (-accel tcg):
# nested KVM hangs on this machine. Works without a TTY (CI). Needs root,
# qemu-system-x86 and busybox-static (and kmod, for depmod/modprobe).
set -eu
# all in one block: bash parses it whole before running it, so editing
# this file while a VM runs cannot derail the running copy
{

here=$(cd "$(dirname "$0")" && pwd)
LIST=${SM_KLIST:-$here/kernels.list}
CACHE=${SM_KCACHE:-/var/cache/sockmesh-kernels}
QEMU=${SM_QEMU:-qemu-system-x86_64}

die() { echo "vm-run.sh: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

id="" timeout=3600 dir=$PWD mem=3G smp=2 root=overlay append="" verbose=0 quiet=0
envs=() shares=()
while getopts k:t:C:e:w:rm:s:a:vqh opt; do
	case $opt in
	k) id=$OPTARG ;;
	t) timeout=$OPTARG ;;
	C) dir=$OPTARG ;;
	e) envs+=("$OPTARG") ;;
	w) shares+=("$OPTARG") ;;
	r) root=ro ;;
	m) mem=$OPTARG ;;
	s) smp=$OPTARG ;;
	a) append="$append $OPTARG" ;;
	v) verbose=1 ;;
	q) quiet=1 ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { usage >&2; echo "vm-run.sh: no command given (after --)" >&2; exit 2; }
case $timeout in *[!0-9]* | "") die "-t wants whole seconds, not '$timeout'" ;; esac
[ "$(id -u)" = 0 ] || die "run as root"
command -v "$QEMU" >/dev/null || die "$QEMU not found: apt-get install --no-install-recommends qemu-system-x86"
[ -n "$id" ] || id=$(awk '!/^#/ && NF {print $1; exit}' "$LIST")
dir=$(cd "$dir" 2>/dev/null && pwd -P) || die "-C: no directory $dir"
for e in "${envs[@]}"; do
	case $e in [A-Za-z_]*=*) ;; *) die "-e wants NAME=VALUE, not '$e'" ;; esac
	case ${e%%=*} in *[!A-Za-z0-9_]*) die "-e: bad name in '$e'" ;; esac
done
for i in "${!shares[@]}"; do
	p=$(cd "${shares[$i]}" 2>/dev/null && pwd -P) || die "-w: no directory ${shares[$i]}"
	case $p in *[[:space:]]* | /) die "-w: cannot share '$p'" ;; esac
	shares[i]=$p
done
# the guest covers /tmp, /var/tmp, /run and /dev/shm with tmpfs: a -C
# directory below them (a clone in /tmp) is shared into the guest as it is
case $dir in
/tmp/* | /var/tmp/* | /run/* | /dev/shm/*)
	covered=0
	for p in "${shares[@]}"; do
		case $dir/ in "$p"/*) covered=1 ;; esac
	done
	[ "$covered" = 1 ] || shares+=("$dir")
	;;
esac

# the kernel and its initramfs (quick when there)
line=$("$here/fetch.sh" -q "$id" | tail -n 1) || die "fetch.sh $id failed"
krel=${line##* }
"$here/initramfs.sh" "$id" || die "initramfs.sh $id failed"
kdir=$CACHE/$id
moddir=$(readlink -f "$kdir/root/lib/modules/$krel")
case $moddir in *[[:space:]]*) die "the cache path $moddir has a space" ;; esac

# single-quote for sh
sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sm-vm.XXXXXX")
chmod 755 "$tmp"
qpid="" tpids=()
# shellcheck disable=SC2317 # run by the traps
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	for p in "${tpids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "vm-run.sh: interrupted, VM killed" >&2; exit 130' INT
trap 'echo "vm-run.sh: terminated, VM killed" >&2; exit 143' TERM HUP

{
	echo "SM_ID=$(sq "$id")"
	echo "SM_KREL=$(sq "$krel")"
	echo "SM_MODDIR=$(sq "$moddir")"
	echo "SM_ROOT=$root"
	echo "SM_SHARES=$(sq "${shares[*]}")"
} >"$tmp/config"
for e in "${envs[@]}"; do
	echo "export ${e%%=*}=$(sq "${e#*=}")"
done >"$tmp/env"
{
	echo "cd $(sq "$dir") || exit 125"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(sq "$a")"; done
	echo
} >"$tmp/cmd"

o9p="security_model=none,multidevs=remap"
# shellcheck disable=SC2054 # qemu's commas
qargs=(-nodefaults -no-user-config -machine pc -accel tcg,thread=multi -cpu max
	-smp "$smp" -m "$mem" -display none -monitor none -no-reboot -nic none
	-kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.img"
	-append "console=ttyS0 loglevel=3 quiet panic=-1 mitigations=off random.trust_cpu=on$append"
	-serial "file:$tmp/console.log"
	-fsdev "local,id=hostroot,path=/,readonly=on,$o9p"
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
	-fsdev "local,id=smrun,path=$tmp,$o9p"
	-device virtio-9p-pci,fsdev=smrun,mount_tag=smrun)
for i in "${!shares[@]}"; do
	qargs+=(-fsdev "local,id=smw$i,path=${shares[$i]},$o9p"
		-device "virtio-9p-pci,fsdev=smw$i,mount_tag=smw$i")
done

now() { date +%s.%N; }
t0=$(now)
"$QEMU" "${qargs[@]}" </dev/null >"$tmp/qemu.log" 2>&1 &
qpid=$!
# CMD's output, as it comes
tail -s 0.2 -n +1 -F --pid="$qpid" "$tmp/out" 2>/dev/null &
tpids+=($!)
outpid=$!
if [ "$verbose" = 1 ]; then
	tail -s 0.2 -n +1 -F --pid="$qpid" "$tmp/console.log" >&2 2>/dev/null &
	tpids+=($!)
fi

timedout=0 tstart="" tend="" deadline=""
[ "$timeout" -gt 0 ] && deadline=$(awk -v a="$t0" -v b="$timeout" 'BEGIN {printf "%d", a + b}')
while kill -0 "$qpid" 2>/dev/null; do
	[ -z "$tstart" ] && [ -s "$tmp/started" ] && tstart=$(now)
	if [ -z "$tend" ] && [ -s "$tmp/status" ]; then
		tend=$(now)
	fi
	if [ -n "$tend" ] && awk -v a="$(now)" -v b="$tend" 'BEGIN {exit !(a - b > 20)}'; then
		echo "vm-run.sh: the guest did not power off after CMD ended; killing it" >&2
		kill -KILL "$qpid" 2>/dev/null || true
	fi
	if [ -n "$deadline" ] && [ "$(date +%s)" -ge "$deadline" ]; then
		timedout=1
		kill -KILL "$qpid" 2>/dev/null || true
		break
	fi
	sleep 0.2
done
qrc=0
wait "$qpid" 2>/dev/null || qrc=$?
qpid=""
wait "$outpid" 2>/dev/null || true
t1=$(now)
[ -z "$tstart" ] && [ -s "$tmp/started" ] && tstart=$t1
[ -z "$tend" ] && [ -s "$tmp/status" ] && tend=$t1

summary() {
	[ "$quiet" = 1 ] && return 0
	awk -v id="$id" -v k="$krel" -v t0="$t0" -v ts="${tstart:-}" -v te="${tend:-}" -v t1="$t1" \
		-v up="$(cat "$tmp/started" 2>/dev/null)" -v rc="$1" 'BEGIN {
		s = sprintf("vm-run.sh: %s (%s):", id, k)
		if (ts != "") s = s sprintf(" boot %.1fs (guest uptime %ss),", ts - t0, up)
		if (ts != "" && te != "") s = s sprintf(" command %.1fs,", te - ts)
		printf "%s total %.1fs, exit %s\n", s, t1 - t0, rc
	}' >&2
}
diagnose() {
	echo "vm-run.sh: --- end of the console log ($id, $krel) ---" >&2
	tail -n 40 "$tmp/console.log" >&2 2>/dev/null || true
	if [ -s "$tmp/qemu.log" ]; then
		echo "vm-run.sh: --- qemu (exit $qrc) ---" >&2
		tail -n 20 "$tmp/qemu.log" >&2
	fi
}

if [ "$timedout" = 1 ]; then
	echo "vm-run.sh: timeout: killed the VM after ${timeout}s (-t); CMD $([ -n "$tstart" ] && echo "had started" || echo "had not started: still booting")" >&2
	[ "$verbose" = 1 ] || [ -n "$tstart" ] || diagnose
	summary 124
	exit 124
fi
if [ ! -s "$tmp/status" ]; then
	echo "vm-run.sh: the VM ended without running CMD to its end" >&2
	diagnose
	summary 125
	exit 125
fi
rc=$(cat "$tmp/status")
case $rc in *[!0-9]* | "") die "bad exit status '$rc' from the guest" ;; esac
[ "$rc" = 125 ] && grep -q 'sm-\(init\|stage2\): error' "$tmp/console.log" && diagnose
summary "$rc"
exit "$rc"
}
