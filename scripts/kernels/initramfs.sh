#!/bin/bash
# initramfs.sh - build the initramfs with which vm-run.sh boots a kernel.
#
# Usage: scripts/kernels/initramfs.sh [-f] ID...
#   ID    a kernel already fetched by fetch.sh (kernels.list)
#   -f    build again even when $SM_KCACHE/ID/initrd.img is up to date
# Environment: SM_KCACHE  cache directory (default /var/cache/sockmesh-kernels)
# Output: $SM_KCACHE/ID/initrd.img (newc cpio, uncompressed). It is rebuilt
# when older than this script, than busybox or than the fetched kernel.
#
# Contents: a static busybox (package busybox-static), the kernel package's
# own modules needed to reach the host root (virtio_pci, 9pnet_virtio, 9p,
# overlay and what modules.dep says they need, in that order; built-in
# ones are skipped, compressed .ko.xz/.ko.zst are unpacked here since
# busybox insmod cannot), /init (stage 1) and /stage2.
#
# Stage 1 (/init, busybox sh): mounts proc, sys, devtmpfs; insmods the
# modules; mounts the per-run 9p share (tag smrun) and reads its config;
# mounts the host root (9p tag hostroot, read-only) and, unless the run
# asks for a plain read-only root, an overlayfs on it with a tmpfs upper
# (so the guest can write anywhere, nothing reaches the host); tmpfs on /run;
# switch_root into it, running stage 2 with the host's /bin/sh.
# Stage 2 (/run/sm-stage2 in the new root): binds the kernel's modules
# from the cache onto /lib/modules/KREL (with -r: on a tmpfs /lib/modules,
# or an overlay on /lib when the host has no /lib/modules),
# tmpfs on /tmp /var/tmp /dev/shm, devpts, bpffs, a pure cgroup2 on
# /sys/fs/cgroup, debugfs and tracefs, /dev/fd, lo up; runs
# /run/smvm/cmd with its output into /run/smvm/out, its exit status into
# /run/smvm/status, then powers off. The protocol with vm-run.sh is all
# in the smrun share (config, env, cmd, started, out, status).
set -eu

CACHE=${SM_KCACHE:-/var/cache/sockmesh-kernels}
die() { echo "initramfs.sh: $*" >&2; exit 1; }

force=0
while getopts fh opt; do
	case $opt in
	f) force=1 ;;
	h) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || die "usage: initramfs.sh [-f] ID..."

BUSYBOX=
for b in /bin/busybox /usr/bin/busybox; do
	[ -x "$b" ] && BUSYBOX=$b && break
done
[ -n "$BUSYBOX" ] || die "busybox not found: apt-get install --no-install-recommends busybox-static"
# a dynamic busybox (package busybox) would need its libraries in the image
if command -v ldd >/dev/null && ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is not static: apt-get install --no-install-recommends busybox-static"
fi
command -v modprobe >/dev/null || die "modprobe not found: apt-get install kmod"

# modules stage 1 needs, in this order; each with what modules.dep wants
MODULES="virtio_pci 9pnet_virtio 9p overlay"

write_init() {
	cat >"$1" <<'EOF'
#!/bin/sh
# stage 1 of scripts/kernels/vm-run.sh (written by initramfs.sh)
/bin/busybox mkdir -p /proc /sys /dev /newroot /lower /ovl /smvm
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || { mount -t tmpfs -o mode=0755 dev /dev && mdev -s; }
exec </dev/console >/dev/console 2>&1

fail() {
	echo "sm-init: error: $*"
	echo "SM-VM-EXIT=125"
	[ -d /smvm/. ] && echo 125 >/smvm/status 2>/dev/null
	sync
	echo o >/proc/sysrq-trigger
	sleep 10
	poweroff -f
}

msize=512000 cache=loose
for a in $(cat /proc/cmdline); do
	case $a in
	sm.msize=*) msize=${a#*=} ;;
	sm.cache=*) cache=${a#*=} ;;
	esac
done
o9p="trans=virtio,version=9p2000.L,msize=$msize"

while read -r ko; do
	[ -n "$ko" ] || continue
	insmod "/kmod/$ko" || fail "insmod $ko failed"
done </kmod/order

mount -t 9p -o "$o9p,cache=none" smrun /smvm || fail "cannot mount the run share (9p tag smrun)"
[ -r /smvm/config ] || fail "no config in the run share"
. /smvm/config
mount -t 9p -o "$o9p,cache=$cache,ro" hostroot /lower || fail "cannot mount the host root (9p tag hostroot)"
if [ "$SM_ROOT" = overlay ]; then
	mount -t tmpfs -o mode=0755 ovl /ovl || fail "tmpfs for the overlay"
	mkdir -p /ovl/upper /ovl/work
	mount -t overlay -o "lowerdir=/lower,upperdir=/ovl/upper,workdir=/ovl/work" overlay /newroot ||
		fail "overlayfs over the 9p root failed (try vm-run.sh -r)"
else
	mount --move /lower /newroot || fail "mount --move /lower /newroot"
fi
mount -t tmpfs -o mode=0755,nosuid,nodev run /newroot/run || fail "tmpfs on /run"
mkdir -p /newroot/run/smvm
mount --move /smvm /newroot/run/smvm || fail "mount --move the run share"
cp /stage2 /newroot/run/sm-stage2
mkdir -p /newroot/run/sm-bin && cp /bin/busybox /newroot/run/sm-bin/busybox
for d in dev proc sys; do
	mount --move "/$d" "/newroot/$d" || fail "mount --move /$d"
done
exec switch_root /newroot /bin/sh /run/sm-stage2
echo "sm-init: switch_root failed"
echo o >/newroot/proc/sysrq-trigger
EOF
	chmod 755 "$1"
}

write_stage2() {
	cat >"$1" <<'EOF'
#!/bin/sh
# stage 2 of scripts/kernels/vm-run.sh (written by initramfs.sh); PID 1,
# run by the host's /bin/sh in the guest's new root
exec </dev/console >/dev/console 2>&1
bb=/run/sm-bin/busybox
off() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 10
	$bb poweroff -f
}
fail() {
	echo "sm-stage2: error: $*"
	echo "SM-VM-EXIT=125"
	echo 125 >/run/smvm/status
	off
}
. /run/smvm/config

# the kernel's own modules, before /tmp is covered (the cache may be there)
[ -d "$SM_MODDIR/kernel" ] || fail "$SM_MODDIR: not there"
if [ "$SM_ROOT" != overlay ]; then
	if [ -d /lib/modules ]; then
		mount -t tmpfs -o mode=0755 modules /lib/modules || fail "tmpfs on /lib/modules"
	else
		# the host has no /lib/modules to mount on: overlay its parent
		lib=$(readlink -f /lib)
		mkdir -p /run/sm-libovl && mount -t tmpfs -o mode=0755 libovl /run/sm-libovl &&
			mkdir /run/sm-libovl/upper /run/sm-libovl/work &&
			mount -t overlay -o "lowerdir=$lib,upperdir=/run/sm-libovl/upper,workdir=/run/sm-libovl/work" libovl "$lib" ||
			fail "the host has no /lib/modules and an overlay on $lib failed: mkdir /lib/modules on the host"
	fi
fi
mkdir -p "/lib/modules/$SM_KREL" &&
	mount --bind "$SM_MODDIR" "/lib/modules/$SM_KREL" || fail "bind $SM_MODDIR on /lib/modules/$SM_KREL"

mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp || fail "tmpfs on /tmp"
mount -t tmpfs -o mode=1777,nosuid,nodev vartmp /var/tmp || fail "tmpfs on /var/tmp"
mkdir -p /dev/pts /dev/shm /run/netns /run/lock /run/user
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm || fail "tmpfs on /dev/shm"
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fail "devpts"
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t bpf -o mode=0700 bpffs /sys/fs/bpf || fail "bpffs on /sys/fs/bpf"
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup 2>/dev/null ||
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cgroup2 on /sys/fs/cgroup"
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
[ -e /etc/mtab ] || ln -s /proc/self/mounts /etc/mtab 2>/dev/null
# the writable shares (-w), last: over the tmpfs mounts above
msize=512000
for a in $(cat /proc/cmdline); do
	case $a in sm.msize=*) msize=${a#*=} ;; esac
done
i=0
for p in $SM_SHARES; do
	mkdir -p "$p" 2>/dev/null
	mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$msize,cache=mmap" "smw$i" "$p" ||
		fail "cannot mount writable share $p (tag smw$i)"
	i=$((i + 1))
done
echo 1 >/proc/sys/kernel/sysrq 2>/dev/null
$bb hostname sockmesh-vm
ip link set lo up 2>/dev/null || $bb ip link set lo up || fail "lo up"
ulimit -l unlimited 2>/dev/null
ulimit -n 65536 2>/dev/null

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb SM_VM=$SM_ID
[ -r /run/smvm/env ] && . /run/smvm/env
cut -d' ' -f1 /proc/uptime >/run/smvm/started
cd /
sh /run/smvm/cmd </dev/null >/run/smvm/out 2>&1
rc=$?
echo "$rc" >/run/smvm/status
echo "SM-VM-EXIT=$rc"
off
EOF
	chmod 755 "$1"
}

build_one() {
	local id=$1 dir=$CACHE/$1 out=$CACHE/$1/initrd.img KREL tmp m line ko n base
	[ -s "$dir/info" ] || die "$id: not fetched (scripts/kernels/fetch.sh $id)"
	# shellcheck disable=SC1091
	KREL=$(. "$dir/info" && echo "$KREL")
	if [ "$force" = 0 ] && [ -s "$out" ] && [ "$out" -nt "$0" ] &&
		[ "$out" -nt "$BUSYBOX" ] && [ "$out" -nt "$dir/info" ]; then
		return 0
	fi
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/sm-initramfs.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	mkdir -p "$tmp/img/bin" "$tmp/img/kmod"
	cp "$BUSYBOX" "$tmp/img/bin/busybox"
	ln -s busybox "$tmp/img/bin/sh"
	write_init "$tmp/img/init"
	write_stage2 "$tmp/img/stage2"
	: >"$tmp/img/kmod/order"
	n=0
	for m in $MODULES; do
		modprobe -d "$dir/root" -S "$KREL" --show-depends "$m" >"$tmp/deps" 2>"$tmp/err" ||
			die "$id: module $m: $(cat "$tmp/err")"
		while read -r line; do
			case $line in
			builtin\ *) continue ;;
			insmod\ *) ko=${line#insmod } ko=${ko%% *} ;;
			*) die "$id: unexpected modprobe output: $line" ;;
			esac
			base=$(basename "$ko")
			base=${base%.xz} base=${base%.zst} base=${base%.gz}
			grep -qxF "$base" "$tmp/img/kmod/order" && continue
			case $ko in
			*.xz) xz -dc "$ko" >"$tmp/img/kmod/$base" ;;
			*.zst) zstd -qdc "$ko" >"$tmp/img/kmod/$base" ;;
			*.gz) gzip -dc "$ko" >"$tmp/img/kmod/$base" ;;
			*) cp "$ko" "$tmp/img/kmod/$base" ;;
			esac || die "$id: cannot unpack $ko"
			echo "$base" >>"$tmp/img/kmod/order"
			n=$((n + 1))
		done <"$tmp/deps"
	done
	(cd "$tmp/img" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) >"$tmp/initrd.img" ||
		die "$id: cpio failed"
	mv "$tmp/initrd.img" "$out"
	rm -rf "$tmp"
	trap - EXIT
	echo "initramfs.sh: $id: built $out ($KREL, $n modules)" >&2
}

for id in "$@"; do
	build_one "$id"
done
