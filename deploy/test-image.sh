#!/bin/sh
# test-image.sh [BUILD] - `make test-deploy`: build the container image of
# deploy/Containerfile with podman and check, on this host, that it does
# what the DaemonSet relies on:
#
#   image-build        the base image (deploy/base-image.sh), then podman build
#   image-contents     the binaries run in the image, no library is missing,
#                      the default config passes --check
#   image-privileged   a privileged container with the host's bpffs and cgroup2
#                      mount bind-mounted accelerates a connection made on the
#                      host (private config, pin dir and cgroup): counters
#                      exact; stopped, it detaches (on_exit = detach)
#   image-caps         the same with the DaemonSet's securityContext instead of
#                      privileged: only the unit's capabilities, no new
#                      privileges, seccomp unconfined
#   image-default-seccomp  and that podman's default seccomp profile refuses
#                      bpf() without CAP_SYS_ADMIN (why the DaemonSet asks for
#                      Unconfined)
#   image-restart      a connection open across a container restart (on_exit =
#                      keep, a new container adopts the pins) stays
#                      accelerated: every byte of both halves redirected
#   image-systemd      the unit as installed in the image, under a real
#                      systemd (PID 1 of a privileged container): starts with
#                      exactly the unit's capabilities, seccomp, NoNewPrivs;
#                      a ping-pong under it is redirected; reload keeps it
#                      up; SIGKILL restarts it (Restart=on-failure) and it
#                      adopts the pins; stop is clean; a bad config is refused
#                      by ExecStartPre= with file:line
#   image-systemd-unit a systemd service named by its unit's cgroup, under
#                      the same systemd: with cgroups =
#                      system.slice/sm-pingpong.service the daemon waits
#                      (log; status: attached nowhere, the cgroup under
#                      'waiting:', --json "waiting": [it]) and makes no
#                      cgroup; `systemctl start` of that unit: attached by
#                      itself (status, "waiting": [], log, bpftool), the
#                      unit's ping-pong redirected (exact counters, the
#                      node's and the cgroup's); `systemctl restart` (a new
#                      cgroup id): the log says the old id "is gone: its
#                      attachment released", never "no longer configured";
#                      attached again, redirected again; sockmeshd stopped
#                      (on_exit = detach): the unit's cgroup stays as systemd
#                      made it (id, mode, processes), no cgroup of the
#                      container removed or made, nothing pinned or attached
#   image-systemd-template  a template's instance, smpp@1.service, whose
#                      slice (system.slice/system-smpp.slice) systemd makes
#                      with it: configured while neither exists, the daemon
#                      waits (log, status) and makes neither; `systemctl
#                      start smpp@1`: attached without a reload, redirected
#                      (exact counters); `systemctl stop smpp@1` (systemd
#                      keeps the slice, said so) then `systemctl stop
#                      system-smpp.slice`: released ("is gone"), waited for
#                      again; started again (a new slice, a new cgroup id):
#                      attached again, redirected again; sockmeshd stopped:
#                      the slice and the instance's cgroup as systemd made
#                      them
#   image-config-watcher  the DaemonSet's config-watcher script (read from the
#                      manifest) in a capability-less container beside the
#                      daemon's: a ConfigMap-style update (symlink swap) with a
#                      bad file is refused with file:line, a good one attaches
#                      a second cgroup. Needs `sockmesh reload` (the runtime
#                      branch): without it, reported as skipped, saying why
#
# Last line "deploy-image: N passed, M failed, K skipped". Needs root,
# podman, jq, and the binaries of BUILD for the host side (sockmesh
# run/status, pingpong).
# word splitting of option and word lists is meant throughout
# shellcheck disable=SC2086,SC2046
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
. scripts/lib.sh
case $build in
/*) top_build=$build ;;
*) top_build=$(pwd)/$build ;;
esac

version=$(sed -n 's/^VERSION *:= *//p' Makefile)
image=localhost/sockmesh:$version-test
tag=sm-image-$$
pins=/sys/fs/bpf/$tag
dir=/tmp/$tag
conf=$dir/sockmesh.ini
passed=0
failed=0
skipped=0
ctrs=

cgmnt=$(sm_cgroup2_mount)

start=$(now)

cleanup() {
	for c in $ctrs; do
		podman rm -f -t 5 "$c" >/dev/null 2>&1
	done
	if [ -d "$pins" ]; then
		"$build/sockmesh" unload -c "$conf" >/dev/null 2>&1
		rm -rf "$pins"
	fi
	[ -n "$cgmnt" ] && [ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"
	podman rmi -f "$image" "localhost/sockmesh-systemd:$version-test" \
		>/dev/null 2>&1
	rm -rf "$dir"
	# podman's parent cgroups, if our containers were the last in them
	rmdir /sys/fs/cgroup/*/libpod_parent/conmon /sys/fs/cgroup/*/libpod_parent \
		2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# This host mounts cgroup v1 with cgroup2 beside it (hybrid): crun refuses
# to create containers there ("cgroups in hybrid mode not supported"), runc
# does not. And without CAP_SYS_RESOURCE (this VM's root lacks it) podman's
# default rlimits cannot be set: ask for ones below our hard limits.
podman_opts=
if [ "$cgmnt" != /sys/fs/cgroup ] && command -v runc >/dev/null; then
	podman_opts="--runtime runc"
fi
run_opts="--network=none --cgroupns=host"
if ! capsh --has-b=cap_sys_resource 2>/dev/null; then
	run_opts="$run_opts --ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
fi
# the host mounts the DaemonSet uses: bpffs, the cgroup2 mount at the same
# path, and the private run dir (config, pid file, control socket)
mounts="-v /sys/fs/bpf:/sys/fs/bpf -v $cgmnt:$cgmnt -v $dir:$dir"
unit_caps=$(sed -n 's/^CapabilityBoundingSet=//p' conf/sockmeshd.service |
	tr ' ' ',')

mkdir -p "$dir/run"
write_conf() {
	cat >"$conf" <<-EOF
	[daemon]
	pin_dir = $pins
	run_dir = $dir/run
	metrics = off
	on_exit = $1

	[accelerate]
	cgroups = $tag
	EOF
	chmod 0644 "$conf"
}

# start NAME OPTS...: a detached container of the image on $conf; 0 once its
# daemon wrote the pid file, 1 (its log shown) if it did not in 30 s
start() {
	name=$1
	shift
	rm -f "$dir/run/sockmeshd.pid"
	if ! podman $podman_opts run -d --name "$name" $run_opts $mounts "$@" \
		"$image" -c "$conf" >"$dir/podman.log" 2>&1; then
		show "$dir/podman.log"
		return 1
	fi
	ctrs="$ctrs $name"
	n=0
	while [ ! -s "$dir/run/sockmeshd.pid" ] && [ "$n" -lt 300 ]; do
		[ "$(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] ||
			break
		sleep 0.1
		n=$((n + 1))
	done
	if [ ! -s "$dir/run/sockmeshd.pid" ]; then
		podman logs "$name" 2>&1 | show
		return 1
	fi
}

# stop NAME: SIGTERM, the container exits 0
stop() {
	podman stop -t 20 "$1" >/dev/null 2>&1
	code=$(podman inspect -f '{{.State.ExitCode}}' "$1" 2>/dev/null)
	podman logs "$1" >"$dir/$1.log" 2>&1
	podman rm -f "$1" >/dev/null 2>&1
	ctrs=$(echo "$ctrs" | tr ' ' '\n' | grep -vx "$1" | paste -sd' ' -)
	[ "$code" = 0 ]
}

# counter NAME: the node's counter NAME (not a cgroup's: those follow it)
counter() {
	"$build/sockmesh" status --json -c "$conf" 2>/dev/null |
		jq -r ".counters.$1 // empty" 2>/dev/null
}

# accelerated ROUNDS SIZE [PINGPONG OPTS]: a ping-pong on the host in the
# daemon's cgroup grows the counters by exactly what it sent
accelerated() {
	r=$1
	sz=$2
	shift 2
	m0=$(counter msgs_redirected)
	b0=$(counter bytes_redirected)
	p0=$(counter msgs_passed)
	if [ -z "$m0" ]; then
		why="no counters in sockmesh status --json"
		return 1
	fi
	if ! "$build/sockmesh" run -c "$conf" -- "$build/tests/pingpong" "$@" \
		"$r" "$sz" >"$dir/pingpong.log" 2>&1; then
		show "$dir/pingpong.log"
		why="the ping-pong failed"
		return 1
	fi
	dm=$(($(counter msgs_redirected) - m0))
	db=$(($(counter bytes_redirected) - b0))
	dp=$(($(counter msgs_passed) - p0))
	echo "    $(tail -n 1 "$dir/pingpong.log"): msgs_redirected +$dm," \
		"bytes_redirected +$db, msgs_passed +$dp"
	if [ "$dm" -ne $((2 * r)) ] || [ "$db" -ne $((2 * r * sz)) ] ||
		[ "$dp" -ne 0 ]; then
		why="expected +$((2 * r)) messages, +$((2 * r * sz)) bytes redirected, none passed"
		return 1
	fi
}

# pinned: something is pinned in the private pin_dir (whatever the layout)
pinned() {
	[ -n "$(ls -A "$pins" 2>/dev/null)" ]
}

# attached_to CGROUP: the sock_ops program is attached there
attached_to() {
	bpftool cgroup show "$cgmnt/$1" 2>/dev/null | grep -q sock_ops
}

gone() {
	! pinned &&
		! bpftool cgroup show "$cgmnt/$tag" 2>/dev/null | grep -q sock_ops
}

echo "== podman build -f deploy/Containerfile ($image)"
t0=$(now)
why=
base=
if ! command -v podman >/dev/null; then
	why="podman is missing (scripts/setup.sh --deploy)"
elif ! command -v jq >/dev/null; then
	why="jq is missing (scripts/setup.sh)"
elif [ ! -x "$build/tests/pingpong" ]; then
	why="$build/tests/pingpong is missing: make test-deploy builds it"
elif ! base=$(deploy/base-image.sh); then
	why="no base image"
else
	echo "    base image: $base; runtime: ${podman_opts:-the default}"
	if ! podman $podman_opts build --layers=false --network=host -f deploy/Containerfile \
		--build-arg BASE="$base" -t "$image" . >"$dir/build.log" 2>&1; then
		tail -n 30 "$dir/build.log" | show
		why="podman build failed"
	fi
fi
if [ -z "$why" ]; then
	echo "    $(podman image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
	ok image-build "$t0"
else
	fail image-build "$why"
	echo "deploy-image: $passed passed, $failed failed"
	exit 1
fi

t0=$(now)
why=
inimg() {
	entry=$1
	shift
	podman $podman_opts run --rm $run_opts --entrypoint "$entry" "$image" "$@"
}
ver=$(inimg /usr/sbin/sockmeshd --version 2>&1)
if [ "$ver" != "sockmeshd $version" ]; then
	why="sockmeshd --version in the image: $ver"
elif missing=$(podman $podman_opts run --rm $run_opts --entrypoint /bin/sh \
	"$image" -c 'ldd /usr/sbin/sockmeshd /usr/bin/sockmesh /usr/bin/sockmesh-bench' 2>&1 |
	grep 'not found'); then
	why="libraries missing in the image: $missing"
elif ! out=$(inimg /usr/sbin/sockmeshd --check -c /etc/sockmesh/sockmesh.ini 2>&1); then
	why="the image's config: $out"
elif ! inimg /usr/bin/sockmesh --version >/dev/null 2>&1; then
	why="sockmesh does not run in the image"
elif inimg /bin/sh -c 'command -v clang cc gcc' >/dev/null 2>&1; then
	why="a compiler is in the run stage"
else
	ok image-contents "$t0"
fi
[ -n "$why" ] && fail image-contents "$why"

echo "== the image's sockmeshd accelerates a connection on this host"
t0=$(now)
why=
write_conf detach
if ! start "$tag-priv" --privileged; then
	why="the privileged container did not start"
elif ! accelerated 100 1000; then
	:
elif ! stop "$tag-priv"; then
	show "$dir/$tag-priv.log"
	why="the container did not exit 0 on SIGTERM"
elif ! gone; then
	why="on_exit = detach left pins or an attachment"
else
	ok image-privileged "$t0"
fi
[ -n "$why" ] && fail image-privileged "$why"
[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"

t0=$(now)
why=
if ! start "$tag-caps" --cap-drop=all --cap-add="$unit_caps" --read-only \
	--security-opt no-new-privileges --security-opt seccomp=unconfined; then
	why="the container with only $unit_caps did not start"
elif ! accelerated 100 1000; then
	:
elif ! stop "$tag-caps"; then
	why="the container did not exit 0 on SIGTERM"
else
	echo "    capabilities $unit_caps, no-new-privileges, seccomp unconfined, read-only root"
	ok image-caps "$t0"
fi
[ -n "$why" ] && fail image-caps "$why"
[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"

t0=$(now)
why=
if start "$tag-seccomp" --cap-drop=all --cap-add="$unit_caps"; then
	why="it started under the default seccomp profile: the DaemonSet's Unconfined is not needed"
	stop "$tag-seccomp"
elif podman logs "$tag-seccomp" 2>&1 |
	grep -qiE "kernel (lacks|does not (have|support))"; then
	why="it blames the kernel, but seccomp refused bpf() (EPERM)"
elif ! podman logs "$tag-seccomp" 2>&1 | grep -q 'Operation not permitted'; then
	podman logs "$tag-seccomp" 2>&1 | show
	why="refused, but not with EPERM"
else
	echo "    $(podman logs "$tag-seccomp" 2>&1 | grep -m1 'error:')"
	ok image-default-seccomp "$t0"
fi
[ -n "$why" ] && fail image-default-seccomp "$why"
podman rm -f "$tag-seccomp" >/dev/null 2>&1
rm -rf "$pins"
[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"

echo "== a connection open across a container restart (on_exit = keep)"
t0=$(now)
why=
write_conf keep
rm -f "$dir/go"
if ! start "$tag-keep1" --privileged; then
	why="the first container did not start"
else
	m0=$(counter msgs_redirected)
	b0=$(counter bytes_redirected)
	p0=$(counter msgs_passed)
	"$build/sockmesh" run -c "$conf" -- "$build/tests/pingpong" \
		-W "$dir/go" 200 1000 >"$dir/pingpong.log" 2>&1 &
	pp=$!
	n=0
	while ! grep -q half "$dir/pingpong.log" && [ "$n" -lt 200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if ! stop "$tag-keep1"; then
		why="the first container did not exit 0"
	elif ! bpftool cgroup show "$cgmnt/$tag" | grep -q sock_ops; then
		why="on_exit = keep: the attachment went with the container"
	elif ! start "$tag-keep2" --privileged; then
		why="the second container did not start"
	elif ! podman logs "$tag-keep2" 2>&1 | grep -q adopted; then
		why="the second container did not adopt the pins"
	fi
	touch "$dir/go"
	if ! wait "$pp"; then
		show "$dir/pingpong.log"
		why="the ping-pong across the restart failed"
	fi
	dm=$(($(counter msgs_redirected) - m0))
	db=$(($(counter bytes_redirected) - b0))
	dp=$(($(counter msgs_passed) - p0))
	echo "    $(tail -n 1 "$dir/pingpong.log"), the daemon restarted halfway:" \
		"msgs_redirected +$dm, bytes_redirected +$db, msgs_passed +$dp"
	if [ -z "$why" ] && { [ "$dm" -ne 400 ] || [ "$db" -ne 400000 ] ||
		[ "$dp" -ne 0 ]; }; then
		why="expected +400 messages, +400000 bytes redirected, none passed"
	fi
	stop "$tag-keep2"
fi
if [ -z "$why" ]; then
	ok image-restart "$t0"
else
	fail image-restart "$why"
fi

# --- the unit under a real systemd -----------------------------------------
# image-systemd, image-systemd-unit and image-systemd-template boot the image
# with systemd added, as PID 1 of a privileged container in its own cgroup
# namespace: as on a host booted with systemd, the container's cgroup2 mount
# is systemd's root, so system.slice/NAME.service names a unit's cgroup
# there.

sdimg=localhost/sockmesh-systemd:$version-test
sd=
sdini=/etc/sockmesh/sockmesh.ini
# the unit as `make install PREFIX=/usr` put it in the image
unitdrop=$dir/sockmeshd.service.d
mkdir -p "$unitdrop" "$dir/etc"
# Type=notify needs READY=1 from the daemon: a build that does not speak
# sd_notify yet is started as Type=exec (said so), everything else verbatim
if grep -q NOTIFY_SOCKET "$build/sockmeshd"; then
	notify=yes
else
	notify=no
	printf '[Service]\nType=exec\n' >"$unitdrop/type.conf"
fi
sdc() {
	podman exec "$sd" "$@"
}
# sdstatus: `sockmesh status --json` of the daemon in the container
sdstatus() {
	sdc /usr/bin/sockmesh status --json -c "$sdini" 2>/dev/null
}
sdcounter() {
	sdstatus | jq -r ".counters.$1 // empty" 2>/dev/null
}
# sd_image: the image with systemd added, built once for the three checks
sd_built=
sd_image() {
	if [ -z "$sd_built" ]; then
		sd_built=no
		# procps: /bin/kill for ExecReload=, as on every standard
		# Debian system
		printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv procps >/dev/null && rm -rf /var/lib/apt/lists/*\n' \
			"$image" | podman $podman_opts build --layers=false --network=host \
			-t "$sdimg" -f - "$dir/etc" >"$dir/sdbuild.log" 2>&1 &&
			sd_built=yes
		[ $sd_built = yes ] || tail -n 20 "$dir/sdbuild.log" | show
	fi
	[ $sd_built = yes ] || {
		why="cannot build an image with systemd"
		return 1
	}
}
# sd_boot NAME: the container NAME ($sd from then on) with systemd as PID 1
# and $dir/etc as /etc/sockmesh; 0 once systemd is up, else 1 (why set).
# Sets sdcg (its cgroup2 mount, inside) and sdroot (its cgroup on this
# host, relative to $cgmnt: systemd's root).
sd_boot() {
	sd=$1
	if ! podman $podman_opts run -d --name "$sd" --systemd=always --privileged \
		--network=none --cgroupns=private \
		$(echo "$run_opts" | sed 's/--network=none//; s/--cgroupns=host//') \
		-v /sys/fs/bpf:/sys/fs/bpf -v "$dir/etc:/etc/sockmesh:ro" \
		-v "$unitdrop:/etc/systemd/system/sockmeshd.service.d:ro" \
		-v "$top_build/tests/pingpong:/usr/local/bin/pingpong:ro" \
		--entrypoint /lib/systemd/systemd "$sdimg" >"$dir/podman.log" 2>&1; then
		show "$dir/podman.log"
		why="cannot start systemd in a container"
		return 1
	fi
	ctrs="$ctrs $sd"
	n=0
	until state=$(sdc systemctl is-system-running 2>/dev/null) &&
		{ [ "$state" = running ] || [ "$state" = degraded ]; } ||
		[ "$n" -ge 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	# shellcheck disable=SC2016
	sdcg=$(sdc awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	sdroot=$(awk -F: '$1 == 0 { print $3 }' \
		"/proc/$(podman inspect -f '{{.State.Pid}}' "$sd")/cgroup" 2>/dev/null)
	if [ "$state" != running ] && [ "$state" != degraded ]; then
		why="systemd in the container is not up after 30 s (${state:-no state})"
		return 1
	elif [ -z "$sdcg" ] || [ "${sdroot%/init.scope}" = "$sdroot" ]; then
		why="systemd in the container: no cgroup2 mount ('$sdcg') or PID 1 not in init.scope ('$sdroot')"
		return 1
	fi
	sdroot=${sdroot%/init.scope}
	sdroot=${sdroot#/}
}
# sd_down: stop the daemon, remove the container
sd_down() {
	sdc systemctl stop sockmeshd >/dev/null 2>&1
	# the daemon's cgroup is in the container's cgroup tree: empty it first
	sdc rmdir "$sdcg/$tag" 2>/dev/null
	podman rm -f -t 5 "$sd" >/dev/null 2>&1
	ctrs=$(echo "$ctrs" | tr ' ' '\n' | grep -vx "$sd" | paste -sd' ' -)
}

echo "== conf/sockmeshd.service under systemd (PID 1 of a container)"
t0=$(now)
why=
cat >"$dir/etc/sockmesh.ini" <<EOF
[daemon]
pin_dir = $pins
metrics = off
on_exit = detach

[accelerate]
cgroups = $tag
EOF
chmod 0644 "$dir/etc/sockmesh.ini"
if ! sd_image; then
	:
elif ! sd_boot "$tag-systemd"; then
	sd_down
else
	mainpid=
	if ! sdc systemctl start sockmeshd >"$dir/sd.log" 2>&1; then
		sdc journalctl -u sockmeshd --no-pager 2>&1 | tail -n 20 | show
		why="systemctl start sockmeshd failed"
	else
		mainpid=$(sdc systemctl show -P MainPID sockmeshd)
		st=$(sdc cat "/proc/$mainpid/status")
		eff=$(capsh --decode="$(echo "$st" | awk '/^CapEff:/ { print $2 }')" |
			sed 's/.*=//' | tr ',' '\n' | sort | paste -sd, -)
		want=$(echo "$unit_caps" | tr '[:upper:]' '[:lower:]' | tr ',' '\n' | sort |
			paste -sd, -)
		echo "    started (Type=$([ $notify = yes ] && echo notify || echo 'exec: this sockmeshd does not speak sd_notify')):" \
			"pid $mainpid, capabilities $eff," \
			"NoNewPrivs $(echo "$st" | awk '/^NoNewPrivs:/ { print $2 }')," \
			"Seccomp $(echo "$st" | awk '/^Seccomp:/ { print $2 }')"
		if [ "$eff" != "$want" ]; then
			why="its capabilities are $eff, not $want"
		elif ! echo "$st" | grep -q '^Seccomp:[[:space:]]*2' ||
			! echo "$st" | grep -q '^NoNewPrivs:[[:space:]]*1'; then
			why="no seccomp filter or no NoNewPrivs"
		fi
	fi
	if [ -z "$why" ]; then
		m0=$(sdcounter msgs_redirected)
		b0=$(sdcounter bytes_redirected)
		if ! sdc /usr/bin/sockmesh run -c /etc/sockmesh/sockmesh.ini -- \
			/usr/local/bin/pingpong 100 1000 >"$dir/pingpong.log" 2>&1; then
			show "$dir/pingpong.log"
			why="the ping-pong under the unit failed"
		else
			dm=$(($(sdcounter msgs_redirected) - m0))
			db=$(($(sdcounter bytes_redirected) - b0))
			echo "    $(cat "$dir/pingpong.log"): msgs_redirected +$dm, bytes_redirected +$db"
			[ "$dm" -eq 200 ] && [ "$db" -eq 200000 ] ||
				why="expected +200 messages and +200000 bytes redirected"
		fi
	fi
	# reload: ExecReload= signals the daemon, which stays up
	if [ -z "$why" ] && { ! sdc systemctl reload sockmeshd >"$dir/sd.log" 2>&1 ||
		! sleep 1 || [ "$(sdc systemctl is-active sockmeshd)" != active ] ||
		[ "$(sdc systemctl show -P MainPID sockmeshd)" != "$mainpid" ]; }; then
		show "$dir/sd.log"
		why="systemctl reload: the daemon did not stay up"
	fi
	# Restart=on-failure: killed, it is started again and adopts the pins
	if [ -z "$why" ]; then
		sdc systemctl kill -s KILL sockmeshd
		n=0
		until [ "$(sdc systemctl is-active sockmeshd)" = active ] &&
			newpid=$(sdc systemctl show -P MainPID sockmeshd) &&
			[ "$newpid" != "$mainpid" ] && [ "$newpid" != 0 ] ||
			[ "$n" -ge 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		sleep 0.5
		if [ "$n" -ge 100 ]; then
			why="SIGKILL: Restart=on-failure did not start it again"
		elif ! sdc journalctl -u sockmeshd --no-pager | grep -q adopted; then
			why="restarted, but did not adopt the pins"
		else
			echo "    SIGKILL: restarted as pid $newpid, adopted the pins"
		fi
	fi
	# stop: clean exit, on_exit = detach took the pins
	if [ -z "$why" ]; then
		sdc systemctl stop sockmeshd
		res=$(sdc systemctl show -P Result sockmeshd)
		if [ "$res" != success ]; then
			why="systemctl stop: Result=$res"
		elif pinned; then
			why="stopped, but the pins are still there"
		fi
	fi
	# a bad file: ExecStartPre= --check refuses it, the daemon never runs
	if [ -z "$why" ]; then
		cp "$dir/etc/sockmesh.ini" "$dir/etc/good.ini"
		echo 'max_sockets = many' >>"$dir/etc/sockmesh.ini"
		if sdc systemctl start sockmeshd >/dev/null 2>&1; then
			why="it started on a bad config"
		elif ! sdc journalctl -u sockmeshd --no-pager |
			grep -q 'sockmesh.ini:[0-9]*: max_sockets'; then
			why="a bad config: no file:line in the journal"
		elif pinned; then
			why="a bad config: something was loaded"
		else
			echo "    bad config: $(sdc journalctl -u sockmeshd --no-pager |
				grep -m1 -o 'sockmesh.ini:[0-9]*: max_sockets.*')"
		fi
		cp "$dir/etc/good.ini" "$dir/etc/sockmesh.ini"
	fi
	sd_down
fi
rm -rf "$pins"
if [ -z "$why" ]; then
	ok image-systemd "$t0"
else
	fail image-systemd "$why"
fi

echo "== a systemd service accelerated by its unit's cgroup (real systemd)"
t0=$(now)
why=
unit=sm-pingpong.service
ucg=system.slice/$unit
# sd_conf: the daemon's config in the container: cgroups = $ucg
sd_conf() {
	cat >"$dir/etc/sockmesh.ini" <<-EOF
	[daemon]
	pin_dir = $pins
	run_dir = /run/sockmesh
	metrics = off
	on_exit = detach

	[accelerate]
	cgroups = $ucg
	EOF
	chmod 0644 "$dir/etc/sockmesh.ini"
}
sd_conf
# pp_unit FILE DESCRIPTION: the ping-pong service FILE (a unit, or a
# template) in the container's /etc/systemd/system
pp_unit() {
	podman exec -i "$sd" sh -c "cat >/etc/systemd/system/$1" <<-EOF
	[Unit]
	Description=sockmesh deploy test: $2

	[Service]
	Type=simple
	# deploy/test-image.sh writes the go file once sockmeshd has
	# attached this cgroup; the ping-pong, then stay (the cgroup too)
	ExecStart=/bin/sh -c 'until rm /run/sm-pingpong.go 2>/dev/null; do sleep 0.1; done; /usr/local/bin/pingpong 100 1000 >/run/sm-pingpong.out 2>&1 || exit 1; exec sleep infinity'
	EOF
}
# sdlog [UNIT]: that unit's journal in the container, messages only
sdlog() {
	sdc journalctl -u "${1:-sockmeshd}" --no-pager -o cat 2>/dev/null
}
# wait_for TENTHS CMD...: until CMD succeeds, TENTHS tenths of a second at most
wait_for() {
	_t=$1
	shift
	_n=0
	until "$@"; do
		[ "$_n" -ge "$_t" ] && return 1
		sleep 0.1
		_n=$((_n + 1))
	done
}
sd_ready() {
	sdlog | grep -q '^info: ready:'
}
# sd_cgroups: every cgroup in the container (systemd's tree), sorted
sd_cgroups() {
	sdc sh -c "cd $sdcg && find . -mindepth 1 -type d | sort"
}
# sd_cgroups_are FILE: they are those of FILE ($dir/cg-after: what they are)
sd_cgroups_are() {
	sd_cgroups >"$dir/cg-after" && cmp -s "$dir/cg-after" "$1"
}
# the unit's cgroup id (its inode), or nothing while it does not exist
unit_id() {
	sdc stat -c %i "$sdcg/$ucg" 2>/dev/null
}
# in_status ID: the daemon reports that cgroup id attached
in_status() {
	sdstatus | jq -e --argjson id "$1" 'any(.attached[]; .cgroup_id == $id)' \
		>/dev/null 2>&1
}
# sd_waiting WHEN: the daemon runs, attached nowhere, and its status names
# /$ucg as waited for: the text's 'waiting:' lines, --json's "waiting"
sd_waiting() {
	want_w="waiting:  (systemd's: attached when their unit starts)
  /$ucg"
	if ! sdc /usr/bin/sockmesh status -c "$sdini" >"$dir/status.txt" 2>&1 ||
		! grep -q '^daemon: *running' "$dir/status.txt" ||
		! grep -qx 'attached: nowhere' "$dir/status.txt" ||
		[ "$(sdstatus | jq -c .attached)" != '[]' ]; then
		show "$dir/status.txt"
		why="$1: while /$ucg is waited for, sockmesh status should say 'daemon: running' and 'attached: nowhere' (--json: attached [])"
	elif [ "$(awk '/^waiting:/ { w = 1; print; next }
		w && /^  / { print; next } { w = 0 }' "$dir/status.txt")" != "$want_w" ]; then
		show "$dir/status.txt"
		why="$1: sockmesh status should list the cgroup waited for as 'waiting:  (systemd's: attached when their unit starts)' then '  /$ucg', and nothing else"
	elif ! sdstatus | jq -e --arg p "/$ucg" '.waiting == [$p]' >/dev/null 2>&1; then
		why="$1: sockmesh status --json has \"waiting\": $(sdstatus | jq -c .waiting), not [\"/$ucg\"]"
	else
		why= # what a try before said (wait_for)
		return 0
	fi
	return 1
}
# unit_attached WHEN: systemd made the unit's cgroup and sockmeshd attached
# it by itself (no reload): in its status (no longer waited for), in its
# log, and in the kernel (bpftool on this host); sets uid
unit_attached() {
	if ! wait_for 100 sdc test -d "$sdcg/$ucg"; then
		why="$1: systemd made no cgroup /$ucg"
		return 1
	fi
	uid=$(unit_id)
	if ! wait_for 100 in_status "$uid"; then
		sdlog | tail -n 10 | show
		why="$1: systemd made /$ucg (id $uid), sockmeshd did not attach it in 10 s"
	elif ! sdlog | grep -qxF "info: attached to cgroup /$ucg (id $uid)"; then
		sdlog | tail -n 10 | show
		why="$1: attached, but the log does not say 'attached to cgroup /$ucg (id $uid)'"
	elif ! attached_to "$sdroot/$ucg"; then
		bpftool cgroup show "$cgmnt/$sdroot/$ucg" 2>&1 | show
		why="$1: sockmesh status lists id $uid, but bpftool shows no sock_ops program on $cgmnt/$sdroot/$ucg"
	elif [ "$(sdstatus | jq -c .waiting)" != '[]' ]; then
		why="$1: attached, but sockmesh status --json has \"waiting\": $(sdstatus | jq -c .waiting), not []"
	elif sdc /usr/bin/sockmesh status -c "$sdini" 2>&1 | grep -q '^waiting:'; then
		why="$1: attached, but sockmesh status still prints 'waiting:'"
	else
		return 0
	fi
	return 1
}
# unit_pingpong WHEN: let the unit's ping-pong go (its ExecStart= waits for
# /run/sm-pingpong.go: connections made before the attachment stay on TCP),
# wait for its result; the node's counters grow by exactly one ping-pong's
# worth, and those of the unit's cgroup (id $uid, a new cgroup) are exactly
# that
unit_pingpong() {
	s0=$(sdcounter sockets_added)
	m0=$(sdcounter msgs_redirected)
	b0=$(sdcounter bytes_redirected)
	p0=$(sdcounter msgs_passed)
	if [ -z "$m0" ]; then
		why="$1: no counters in sockmesh status --json"
		return 1
	fi
	sdc touch /run/sm-pingpong.go
	if ! wait_for 300 sdc grep -q verified /run/sm-pingpong.out; then
		sdc cat /run/sm-pingpong.out 2>&1 | show
		sdlog $unit | tail -n 5 | show
		why="$1: the unit's ping-pong did not verify in 30 s (unit $(sdc systemctl is-active $unit))"
		return 1
	fi
	ds=$(($(sdcounter sockets_added) - s0))
	dm=$(($(sdcounter msgs_redirected) - m0))
	db=$(($(sdcounter bytes_redirected) - b0))
	dp=$(($(sdcounter msgs_passed) - p0))
	cg=$(sdstatus | jq -r --argjson id "$uid" '.cgroups[] | select(.cgroup_id == $id) |
		.counters | "\(.sockets_added) \(.msgs_redirected) \(.bytes_redirected) \(.msgs_passed)"')
	echo "    $1: $(sdc cat /run/sm-pingpong.out) in $unit (cgroup id $uid):" \
		"sockets_added +$ds, msgs_redirected +$dm, bytes_redirected +$db," \
		"msgs_passed +$dp; the cgroup's own: ${cg:-none}"
	if [ "$ds" -ne 2 ] || [ "$dm" -ne 200 ] || [ "$db" -ne 200000 ] ||
		[ "$dp" -ne 0 ]; then
		why="$1: expected +2 sockets, +200 messages, +200000 bytes redirected, none passed; got +$ds, +$dm, +$db, +$dp passed"
	elif [ "$cg" != "2 200 200000 0" ]; then
		why="$1: the counters of cgroup id $uid are '${cg:-none}', not '2 200 200000 0' (sockets, msgs, bytes redirected, msgs passed)"
	else
		return 0
	fi
	return 1
}
# sd_logged LINE: the daemon's log has that line
# sd_released WHEN ID: the daemon's log says (within 10 s) that /$ucg of id
# ID is gone (its attachment released, attached again when made), and
# nowhere that a cgroup is no longer configured: /$ucg still is
sd_logged() {
	sdlog | grep -qxF "$1"
}
sd_released() {
	if ! wait_for 100 sd_logged "info: cgroup /$ucg (id $2) is gone: its attachment released; attached again when it is made"; then
		sdlog | tail -n 10 | show
		why="$1: the daemon's log does not say 'cgroup /$ucg (id $2) is gone: its attachment released; attached again when it is made'"
	elif sdlog | grep -q 'no longer configured'; then
		why="$1: the daemon's log says '$(sdlog | grep -m1 'no longer configured')', but /$ucg is still configured"
	else
		return 0
	fi
	return 1
}
# sd_daemon_stops: `systemctl stop sockmeshd` (on_exit = detach) leaves the
# container's cgroups as systemd has them: those of $dir/cg-before and the
# directories on the way to /$ucg, which with its parent keeps its id, mode
# and owner, and its processes (the unit still active); nothing is pinned
# or attached
sd_daemon_stops() {
	before=$(sdc stat -c '%i %a %U:%G' "$sdcg/$ucg" "$sdcg/${ucg%/*}" | paste -sd' ' -)
	procs=$(sdc cat "$sdcg/$ucg/cgroup.procs" | paste -sd' ' -)
	sdc systemctl stop sockmeshd
	res=$(sdc systemctl show -P Result sockmeshd)
	{
		cat "$dir/cg-before"
		p=$ucg
		while [ -n "$p" ]; do
			echo "./$p"
			case $p in
			*/*) p=${p%/*} ;;
			*) p= ;;
			esac
		done
	} | sort -u >"$dir/cg-want"
	wait_for 50 sd_cgroups_are "$dir/cg-want"
	gone=$(comm -23 "$dir/cg-want" "$dir/cg-after" | paste -sd' ' -)
	extra=$(comm -13 "$dir/cg-want" "$dir/cg-after" | paste -sd' ' -)
	now_st=$(sdc stat -c '%i %a %U:%G' "$sdcg/$ucg" "$sdcg/${ucg%/*}" 2>/dev/null | paste -sd' ' -)
	now_procs=$(sdc cat "$sdcg/$ucg/cgroup.procs" 2>/dev/null | paste -sd' ' -)
	if [ "$res" != success ]; then
		why="systemctl stop sockmeshd: Result=$res"
	elif ! sdc test -d "$sdcg/$ucg"; then
		why="sockmeshd stopped: systemd's cgroup /$ucg is gone"
	elif [ "$now_st" != "$before" ]; then
		why="sockmeshd stopped: /$ucg and /${ucg%/*} were '$before' (id, mode, owner each), now '$now_st'"
	elif [ "$now_procs" != "$procs" ] ||
		[ "$(sdc systemctl is-active $unit)" != active ]; then
		why="sockmeshd stopped: the unit's processes were '$procs', now '$now_procs' (unit $(sdc systemctl is-active $unit))"
	elif [ -n "$gone$extra" ]; then
		why="the container's cgroups after sockmeshd stopped: ${gone:+removed $gone }${extra:+made $extra}"
	elif pinned; then
		why="on_exit = detach: something is still pinned in $pins"
	elif attached_to "$sdroot/$ucg"; then
		why="on_exit = detach: a sock_ops program is still attached to /$ucg"
	else
		echo "    sockmeshd stopped: /$ucg stays (id, mode, owner: $before with its parent; processes $procs)," \
			"$(wc -l <"$dir/cg-before") cgroups of systemd's untouched, nothing pinned or attached"
		return 0
	fi
	return 1
}
if ! sd_image; then
	:
elif ! sd_boot "$tag-sdunit"; then
	sd_down
else
	# 1. the unit does not exist: the daemon waits, creates nothing
	sd_cgroups >"$dir/cg-before"
	if ! sdc systemctl start sockmeshd >"$dir/sd.log" 2>&1 ||
		! wait_for 100 sd_ready; then
		show "$dir/sd.log"
		sdlog | tail -n 20 | show
		why="systemctl start sockmeshd (cgroups = $ucg) failed"
	elif sdc test -e "$sdcg/$ucg"; then
		why="the unit is not started, but $sdcg/$ucg exists: sockmeshd made systemd's cgroup"
	elif ! sdlog | grep -qxF "info: cgroup /$ucg does not exist: it is systemd's, made when its unit starts; attached then"; then
		sdlog | tail -n 10 | show
		why="no 'cgroup /$ucg does not exist: it is systemd's ... attached then' in the daemon's log"
	elif ! sd_waiting "not started"; then
		:
	elif [ $notify = yes ] && ! sdc systemctl show -P StatusText sockmeshd |
		grep -q '^attached to 0 cgroups'; then
		why="systemctl status sockmeshd: '$(sdc systemctl show -P StatusText sockmeshd)', not 'attached to 0 cgroups'"
	else
		echo "    waiting: $(sdlog | grep -m1 -o "cgroup /$ucg does not exist.*");" \
			"status: $(grep '^attached' "$dir/status.txt"), $(sed -n '/^waiting:/{N;s/\n */ /;p;}' "$dir/status.txt")"
	fi
	# 2. systemd starts the unit: sockmeshd attaches its cgroup, the
	# unit's ping-pong is redirected
	if [ -z "$why" ]; then
		sdc rm -f /run/sm-pingpong.go /run/sm-pingpong.out
		pp_unit $unit "a ping-pong in its own unit"
		if ! sdc systemctl daemon-reload ||
			! sdc systemctl start $unit >"$dir/sd.log" 2>&1; then
			show "$dir/sd.log"
			why="systemctl start $unit failed"
		elif unit_attached "started" && unit_pingpong "started"; then
			id1=$uid
		fi
	fi
	# 3. a restart: systemd removes the cgroup and makes a new one
	if [ -z "$why" ]; then
		sdc rm -f /run/sm-pingpong.out
		if ! sdc systemctl restart $unit >"$dir/sd.log" 2>&1; then
			show "$dir/sd.log"
			why="systemctl restart $unit failed"
		elif ! unit_attached "restarted"; then
			:
		elif [ "$uid" = "$id1" ]; then
			why="restarted, but the cgroup id is still $id1: systemd did not make a new cgroup"
		elif in_status "$id1"; then
			why="restarted: the removed cgroup (id $id1) is still listed as attached"
		elif ! sdlog | grep -qxF "info: cgroup $unit was removed"; then
			why="restarted: the daemon's log does not say 'cgroup $unit was removed'"
		elif ! sd_released "restarted" "$id1"; then
			:
		elif unit_pingpong "restarted"; then
			echo "    restart: cgroup id $id1 removed, id $uid made and attached"
		fi
	fi
	# 4. the daemon stops (on_exit = detach): the unit's cgroup stays as
	# systemd made it, with its process; no cgroup removed or made
	[ -z "$why" ] && sd_daemon_stops
	sdc systemctl stop $unit >/dev/null 2>&1
	sd_down
fi
rm -rf "$pins"
if [ -z "$why" ]; then
	ok image-systemd-unit "$t0"
else
	fail image-systemd-unit "$why"
fi

echo "== a template's instance, its slice made and removed by systemd"
t0=$(now)
why=
# systemd puts smpp@1.service in system-smpp.slice (a template's name with a
# dash would be escaped there: sm-pp@ in system-sm\x2dpp.slice), made with
# the first instance
unit=smpp@1.service
slice=system.slice/system-smpp.slice
ucg=$slice/$unit
sd_conf
if ! sd_image; then
	:
elif ! sd_boot "$tag-sdtmpl"; then
	sd_down
else
	# 1. neither the instance nor its slice exists: the daemon waits for
	# the instance's cgroup, makes neither
	sdc rm -f /run/sm-pingpong.go /run/sm-pingpong.out
	pp_unit smpp@.service "a ping-pong in a template's instance (%i)"
	sd_cgroups >"$dir/cg-before"
	if ! sdc systemctl daemon-reload; then
		why="systemctl daemon-reload failed"
	elif sdc test -e "$sdcg/$slice"; then
		why="no instance started, but systemd has /$slice already"
	elif ! sdc systemctl start sockmeshd >"$dir/sd.log" 2>&1 ||
		! wait_for 100 sd_ready; then
		show "$dir/sd.log"
		sdlog | tail -n 20 | show
		why="systemctl start sockmeshd (cgroups = $ucg) failed"
	elif sdc test -e "$sdcg/$slice"; then
		why="no instance started, but $sdcg/$slice exists: sockmeshd made systemd's slice"
	elif ! sd_logged "info: cgroup /$ucg does not exist: it is systemd's, made when its unit starts; attached then"; then
		sdlog | tail -n 10 | show
		why="no 'cgroup /$ucg does not exist: it is systemd's ... attached then' in the daemon's log"
	elif sd_waiting "no slice yet"; then
		echo "    no /$slice yet: $(sed -n '/^waiting:/{N;s/\n */ /;p;}' "$dir/status.txt")"
	fi
	# 2. the first instance: systemd makes the slice and the instance's
	# cgroup, sockmeshd follows down and attaches (no reload)
	if [ -z "$why" ]; then
		if ! sdc systemctl start $unit >"$dir/sd.log" 2>&1; then
			show "$dir/sd.log"
			why="systemctl start $unit failed"
		elif [ "$(sdc systemctl show -P ControlGroup $unit)" != "/$ucg" ]; then
			why="systemd put $unit in '$(sdc systemctl show -P ControlGroup $unit)', not /$ucg"
		elif unit_attached "first instance" &&
			unit_pingpong "first instance"; then
			id1=$uid
			sid1=$(sdc stat -c %i "$sdcg/$slice")
		fi
	fi
	# 3. the instance stops: systemd removes its cgroup; the slice, if
	# systemd keeps it, stopped too: sockmeshd waits again, higher up
	if [ -z "$why" ]; then
		if ! sdc systemctl stop $unit >"$dir/sd.log" 2>&1; then
			show "$dir/sd.log"
			why="systemctl stop $unit failed"
		elif ! wait_for 100 sh -c "! podman exec $sd test -e $sdcg/$ucg"; then
			why="$unit stopped, but systemd did not remove /$ucg"
		elif ! sd_released "instance stopped" "$id1" ||
			! wait_for 50 sd_waiting "instance stopped"; then
			:
		elif ! sdc test -d "$sdcg/$slice"; then
			echo "    $unit stopped: systemd removed /$ucg and /$slice"
		elif slice_state=$(sdc systemctl is-active system-smpp.slice);
			! sdc systemctl stop system-smpp.slice >"$dir/sd.log" 2>&1; then
			show "$dir/sd.log"
			why="$unit stopped, /$slice stays ($slice_state): systemctl stop system-smpp.slice failed"
		elif ! wait_for 100 sh -c "! podman exec $sd test -e $sdcg/$slice"; then
			why="systemctl stop system-smpp.slice: systemd did not remove /$slice"
		else
			echo "    $unit stopped: systemd removed /$ucg, kept /$slice (slice $slice_state); systemctl stop system-smpp.slice removed it"
		fi
		if [ -z "$why" ] && [ "$(sdc systemctl is-active sockmeshd)" != active ]; then
			sdlog | tail -n 10 | show
			why="the slice removed: sockmeshd is $(sdc systemctl is-active sockmeshd)"
		elif [ -z "$why" ]; then
			sd_waiting "slice removed"
		fi
	fi
	# 4. the instance again: a new slice and a new cgroup, attached again
	if [ -z "$why" ]; then
		sdc rm -f /run/sm-pingpong.out
		made="info: cgroup ${slice#*/} was made (by systemd?)"
		nmade=$(sdlog | grep -cxF "$made")
		if ! sdc systemctl start $unit >"$dir/sd.log" 2>&1; then
			show "$dir/sd.log"
			why="systemctl start $unit (again) failed"
		elif ! unit_attached "started again"; then
			# made, not attached: did it see the slice made again,
			# does a reload attach
			if sdc test -d "$sdcg/$ucg" && ! in_status "$uid"; then
				[ "$(sdlog | grep -cxF "$made")" != "$nmade" ] ||
					why="$why; its log has no new '${made#info: }': it did not see /$slice made again"
				if sdc systemctl reload sockmeshd >/dev/null 2>&1 &&
					wait_for 50 in_status "$uid"; then
					why="$why; systemctl reload sockmeshd then attached it"
				fi
			fi
		elif [ "$uid" = "$id1" ] ||
			[ "$(sdc stat -c %i "$sdcg/$slice")" = "$sid1" ]; then
			why="started again, but the cgroup id is still $id1 or the slice's $sid1: systemd did not make them again"
		elif unit_pingpong "started again"; then
			echo "    started again: /$slice id $sid1 -> $(sdc stat -c %i "$sdcg/$slice")," \
				"/$ucg id $id1 -> $uid, attached"
		fi
	fi
	# 5. the daemon stops: the slice and the instance's cgroup stay
	[ -z "$why" ] && sd_daemon_stops
	sdc systemctl stop $unit >/dev/null 2>&1
	sd_down
fi
podman rmi -f "$sdimg" >/dev/null 2>&1
rm -rf "$pins"
if [ -z "$why" ]; then
	ok image-systemd-template "$t0"
else
	fail image-systemd-template "$why"
fi

# --- the DaemonSet's config watcher ----------------------------------------

echo "== the DaemonSet's config-watcher beside the daemon (ConfigMap update)"
t0=$(now)
why=
notrun=
mkdir -p "$dir/manifest" "$dir/cm" "$dir/krun"
if ! inimg /usr/bin/sockmesh help 2>/dev/null | grep -q '^  reload'; then
	notrun="this sockmesh has no reload command (the runtime branch adds it)"
elif ! /usr/bin/python3 tests/deploy/check-manifest.py \
	deploy/sockmesh-daemonset.yaml conf/sockmeshd.service "$dir/manifest" \
	>"$dir/manifest.log" 2>&1; then
	show "$dir/manifest.log"
	why="cannot read the watcher from the manifest"
else
	# the ConfigMap as the kubelet lays it out and updates it: the file is
	# a symlink through ..data, itself a symlink to a timestamped directory;
	# an update writes a new directory, renames a new ..data over the old
	# and removes the old directory
	cmv=0
	cm() {
		cmv=$((cmv + 1))
		mkdir -p "$dir/cm/..v$cmv"
		cat >"$dir/cm/..v$cmv/sockmesh.ini"
		chmod 0644 "$dir/cm/..v$cmv/sockmesh.ini"
		ln -sfn "..v$cmv" "$dir/cm/..data_tmp"
		mv -T "$dir/cm/..data_tmp" "$dir/cm/..data"
		[ -e "$dir/cm/sockmesh.ini" ] || ln -s ..data/sockmesh.ini "$dir/cm/sockmesh.ini"
		rm -rf "$dir/cm/..v$((cmv - 1))"
	}
	cm <<-EOF
	[daemon]
	pin_dir = $pins
	run_dir = /run/sockmesh
	metrics = off
	on_exit = detach

	[accelerate]
	cgroups = $tag
	EOF
	rm -f "$dir/krun/sockmeshd.pid"
	if ! podman $podman_opts run -d --name "$tag-cmd" $run_opts \
		--cap-drop=all --cap-add="$unit_caps" --read-only \
		--security-opt no-new-privileges --security-opt seccomp=unconfined \
		-v /sys/fs/bpf:/sys/fs/bpf -v "$cgmnt:$cgmnt" \
		-v "$dir/krun:/run/sockmesh" -v "$dir/cm:/etc/sockmesh:ro" \
		"$image" -c /etc/sockmesh/sockmesh.ini >"$dir/podman.log" 2>&1; then
		show "$dir/podman.log"
		why="the daemon container did not start"
	fi
	[ -z "$why" ] && ctrs="$ctrs $tag-cmd"
	n=0
	while [ -z "$why" ] && [ ! -s "$dir/krun/sockmeshd.pid" ] && [ "$n" -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if [ -z "$why" ] && [ ! -s "$dir/krun/sockmeshd.pid" ]; then
		podman logs "$tag-cmd" 2>&1 | show
		why="the daemon container is not ready"
	fi
	if [ -z "$why" ] && ! podman $podman_opts run -d --name "$tag-cmw" \
		$run_opts --cap-drop=all --read-only --security-opt no-new-privileges \
		-v /sys/fs/bpf:/sys/fs/bpf:ro -v "$dir/krun:/run/sockmesh" \
		-v "$dir/cm:/etc/sockmesh:ro" --entrypoint /bin/sh "$image" \
		-c "$(cat "$dir/manifest/watcher.sh")" >"$dir/podman.log" 2>&1; then
		show "$dir/podman.log"
		why="the watcher container did not start"
	fi
	[ -z "$why" ] && ctrs="$ctrs $tag-cmw"
	# wait_log CONTAINER TEXT: until its log has TEXT, 40 s at most
	wait_log() {
		n=0
		until podman logs "$1" 2>&1 | grep -q -- "$2" || [ "$n" -ge 400 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		podman logs "$1" 2>&1 | grep -q -- "$2"
	}
	if [ -z "$why" ]; then
		sleep 1 # the watcher has read the first version
		# a bad version: refused with file:line, the old config stays
		cm <<-EOF
		[daemon]
		pin_dir = $pins
		run_dir = /run/sockmesh
		metrics = off
		on_exit = detach

		[accelerate]
		cgroups = $tag
		max_sockets = many
		EOF
		if ! wait_log "$tag-cmw" 'sockmesh.ini:9:'; then
			podman logs "$tag-cmw" 2>&1 | show
			why="the watcher did not report the bad file with file:line"
		elif ! attached_to "$tag"; then
			why="after the refused file the cgroup is no longer attached"
		else
			echo "    bad file: $(podman logs "$tag-cmw" 2>&1 | grep -m1 -o 'sockmesh.ini:9:.*')"
		fi
	fi
	if [ -z "$why" ]; then
		# a good version: a second cgroup, attached by the reload
		cm <<-EOF
		[daemon]
		pin_dir = $pins
		run_dir = /run/sockmesh
		metrics = off
		on_exit = detach

		[accelerate]
		cgroups = $tag, $tag-b
		EOF
		if ! wait_log "$tag-cmd" 'reloaded /etc/sockmesh/.*: 2 cgroups'; then
			podman logs "$tag-cmd" 2>&1 | show
			podman logs "$tag-cmw" 2>&1 | show
			why="the daemon did not reload the changed ConfigMap"
		elif ! attached_to "$tag-b" || ! attached_to "$tag"; then
			why="reloaded, but not attached to both cgroups"
		else
			echo "    good file: $(podman logs "$tag-cmd" 2>&1 | grep -m1 -o 'reloaded /etc/sockmesh/.*')"
		fi
	fi
	if [ -z "$why" ]; then
		# one more update, then SIGHUP (an operator's reload, or the
		# alternative to the watcher): the daemon must find its config
		# by the path it was started with, not by a directory the kubelet
		# has since removed
		cm <"$dir/cm/..data/sockmesh.ini"
		before=$(podman logs "$tag-cmd" 2>&1 | grep -c 'reloaded /etc/sockmesh/')
		podman kill -s HUP "$tag-cmd" >/dev/null
		n=0
		until [ "$(podman logs "$tag-cmd" 2>&1 | grep -c -e 'reloaded /etc/sockmesh/' -e 'reload refused')" -gt "$before" ] ||
			[ "$n" -ge 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		last=$(podman logs "$tag-cmd" 2>&1 | grep -e 'reloaded /etc/sockmesh/' -e 'reload refused' | tail -n 1)
		case $last in
		*reloaded*) echo "    SIGHUP after another update: $last" ;;
		*) why="SIGHUP after the ConfigMap changed again: ${last:-no reload logged}" ;;
		esac
	fi
	podman rm -f -t 2 "$tag-cmw" >/dev/null 2>&1
	stop "$tag-cmd" || [ -n "$why" ] || why="the daemon container did not exit 0"
	ctrs=$(echo "$ctrs" | tr ' ' '\n' | grep -vx "$tag-cmw" | paste -sd' ' -)
fi
rm -rf "$pins"
for c in "$tag" "$tag-b"; do
	[ -d "$cgmnt/$c" ] && rmdir "$cgmnt/$c"
done
if [ -n "$notrun" ]; then
	skipped=$((skipped + 1))
	echo "skip image-config-watcher: $notrun"
elif [ -z "$why" ]; then
	ok image-config-watcher "$t0"
else
	fail image-config-watcher "$why"
fi

echo "    test-image.sh took $(($(now) - start)) s"
echo "deploy-image: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
