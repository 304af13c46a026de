#!/bin/sh
# run-deploy.sh BUILD - the node service as an operator installs it, a stage
# of `make test` (tests/run-all.sh). Checks:
#
#   unit-verify        conf/sockmeshd.service passes `systemd-analyze verify`
#                      and uses no sandboxing that makes /sys/fs/bpf or the
#                      cgroup tree read-only
#   caps-run           sockmeshd with exactly the unit's CapabilityBoundingSet
#                      (every other capability dropped with capsh) loads,
#                      attaches, and a connection in its cgroup is redirected:
#                      counters grow by exactly 2 sockets, 2*N messages and
#                      2*N*SIZE bytes
#   caps-adopt         stopped with on_exit = keep and started again under the
#                      same set, it adopts the pins and still accelerates
#   caps-without-CAP   for each capability of the set: without it the daemon
#                      refuses with an error naming what failed, exits non-zero
#                      and leaves nothing attached or pinned
#   caps-no-bpffs      without a bpffs mounted (a private mount namespace) the
#                      set is not enough to mount one (CAP_SYS_ADMIN, which the
#                      unit leaves out): a clear refusal; with it, it mounts
#   syscall-filter     every system call the daemon makes (strace) is allowed
#                      by the unit's SystemCallFilter=
#   install            make install DESTDIR=...: the files, their modes, the
#                      installed binaries run, the config is not overwritten,
#                      make uninstall leaves no file
#   man-*              each man page renders with no warning, and documents
#                      every command, option and config key the binaries know
#   manifest           deploy/*.yaml parse (yamllint) and the DaemonSet asks
#                      for the unit's capabilities and the host mounts
#
# Each check ends with "ok   NAME (N s)" or "FAIL NAME: why"; the last line
# is "deploy: N passed, M failed". Needs root (real BPF, capsh).
# word splitting of option and word lists is meant throughout
# shellcheck disable=SC2086,SC2046
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
. scripts/lib.sh
top=$(pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-deploy.XXXXXX") || exit 1
tag=sm-deploy-$$
pins=/sys/fs/bpf/$tag
conf=$tmp/sockmesh.ini
passed=0
failed=0
pid=

cgmnt=$(sm_cgroup2_mount)

stop_daemon() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" 2>/dev/null
	fi
	pid=
}

cleanup() {
	stop_daemon
	if [ -d "$pins" ]; then
		"$build/sockmesh" unload -c "$conf" >/dev/null 2>&1
		rm -rf "$pins"
	fi
	[ -n "$cgmnt" ] && [ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(now)

# --- the unit --------------------------------------------------------------

unit=conf/sockmeshd.service

# unit_value KEY: the value of KEY= in the unit (the last one wins)
unit_value() {
	sed -n "s/^$1=//p" "$unit" | tail -n 1
}

# The capabilities the unit grants, lower case, comma-separated: the one
# list the capability checks and the DaemonSet check compare against.
unit_caps=$(unit_value CapabilityBoundingSet | tr 'A-Z ' 'a-z,')

echo "== the systemd unit ($unit)"
t0=$(now)
why=
if ! command -v systemd-analyze >/dev/null; then
	why="systemd-analyze is missing (scripts/setup.sh installs systemd)"
else
	# the unit as installed, pointing at this build
	sed -e "s|/usr/local/sbin/sockmeshd|$top/$build/sockmeshd|g" \
		"$unit" >"$tmp/sockmeshd.service"
	if ! systemd-analyze verify --man=no "$tmp/sockmeshd.service" \
		>"$tmp/verify.log" 2>&1; then
		show "$tmp/verify.log"
		why="systemd-analyze verify failed"
	elif [ -s "$tmp/verify.log" ]; then
		show "$tmp/verify.log"
		why="systemd-analyze verify warned"
	fi
fi
for bad in ProtectKernelTunables=yes ProtectControlGroups=yes \
	ProtectSystem=strict PrivateNetwork=yes; do
	grep -qx "$bad" "$unit" && why="$bad makes sockmeshd fail (docs/deploy.md)"
done
for need in Type=notify ExecReload= ExecStartPre= Restart=on-failure \
	RuntimeDirectory=sockmesh RuntimeDirectoryMode=0700; do
	grep -q "^$need" "$unit" || why="$need is missing"
done
case $(unit_value ExecStartPre) in
*--check*) ;;
*) why="ExecStartPre does not run sockmeshd --check" ;;
esac
[ -n "$unit_caps" ] || why="no CapabilityBoundingSet="
if [ -z "$why" ]; then
	echo "    CapabilityBoundingSet: $unit_caps"
	ok unit-verify "$t0"
else
	fail unit-verify "$why"
fi

# --- the capability set ----------------------------------------------------

# every capability this kernel knows, lower case
all_caps=$(n=0
	last=$(cat /proc/sys/kernel/cap_last_cap)
	while [ "$n" -le "$last" ]; do
		capsh --decode="$(printf '%x' $((1 << n)))" | sed 's/.*=//'
		n=$((n + 1))
	done)

# caps_drop KEEP: a comma list of every capability not in KEEP
caps_drop() {
	for c in $all_caps; do
		case ",$1," in
		*,"$c",*) ;;
		*) printf '%s\n' "$c" ;;
		esac
	done | paste -sd, -
}

write_conf() {
	cat >"$conf" <<-EOF
	[daemon]
	pin_dir = $pins
	run_dir = $tmp/run
	metrics = off
	on_exit = $1

	[accelerate]
	cgroups = $tag
	EOF
}

# start_capped KEEP [WRAPPER...]: sockmeshd as root with only KEEP in its
# bounding set, so an exec'd root process has only KEEP. Sets pid; 0 once
# the pid file is ours, 1 if it exited (its status in $rc) or hung.
start_capped() {
	keep=$1
	shift
	rm -f "$tmp/run/sockmeshd.pid"
	"$@" capsh --drop="$(caps_drop "$keep")" -- -c \
		"exec $build/sockmeshd -c $conf" >"$tmp/daemon.log" 2>&1 &
	pid=$!
	n=0
	while [ "$n" -lt 300 ]; do
		if [ "$(cat "$tmp/run/sockmeshd.pid" 2>/dev/null)" = "$pid" ]; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			rc=$?
			pid=
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	rc=timeout
	stop_daemon
	return 1
}

# counter NAME: its value in `sockmesh status --json`, or empty
counter() {
	"$build/sockmesh" status --json -c "$conf" 2>/dev/null |
		tr -d '\n' | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p"
}

rounds=100
size=1000

# accelerated NAME: a ping-pong in the daemon's cgroup grows the counters
# by exactly what it sent; 0, or 1 with why set
accelerated() {
	s0=$(counter sockets_added)
	m0=$(counter msgs_redirected)
	b0=$(counter bytes_redirected)
	if [ -z "$s0" ] || [ -z "$m0" ] || [ -z "$b0" ]; then
		why="no counters in sockmesh status --json"
		return 1
	fi
	if ! "$build/sockmesh" run -c "$conf" -- "$build/tests/pingpong" \
		"$rounds" "$size" >"$tmp/pingpong.log" 2>&1; then
		show "$tmp/pingpong.log"
		why="the ping-pong failed"
		return 1
	fi
	ds=$(($(counter sockets_added) - s0))
	dm=$(($(counter msgs_redirected) - m0))
	db=$(($(counter bytes_redirected) - b0))
	echo "    $(cat "$tmp/pingpong.log"): sockets_added +$ds," \
		"msgs_redirected +$dm, bytes_redirected +$db"
	if [ "$ds" -ne 2 ] || [ "$dm" -ne $((2 * rounds)) ] ||
		[ "$db" -ne $((2 * rounds * size)) ]; then
		why="expected +2 sockets, +$((2 * rounds)) messages, +$((2 * rounds * size)) bytes"
		return 1
	fi
	return 0
}

# pinned: something is pinned in the test's pin_dir (whatever the layout)
pinned() {
	[ -n "$(ls -A "$pins" 2>/dev/null)" ]
}

# attached: the sock_ops program is attached to the test's cgroup
attached() {
	bpftool cgroup show "$cgmnt/$tag" 2>/dev/null | grep -q sock_ops
}

# effective_is LIST: the daemon's effective set is exactly LIST (what an
# exec'd root process gets from its bounding set)
effective_is() {
	got=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
	got=$(capsh --decode="$got" | sed 's/.*=//' | tr ',' '\n' | sort | paste -sd, -)
	want=$(echo "$1" | tr ',' '\n' | sort | paste -sd, -)
	[ "$got" = "$want" ]
}

echo "== sockmeshd under the unit's capabilities: $unit_caps"
t0=$(now)
why=
mkdir -p "$tmp/run"
write_conf keep
if [ ! -x "$build/tests/pingpong" ]; then
	why="$build/tests/pingpong is missing: make test builds it"
elif ! start_capped "$unit_caps"; then
	show "$tmp/daemon.log"
	why="the daemon did not start (exit status $rc)"
elif ! effective_is "$unit_caps"; then
	why="its effective capabilities are $got, not $want"
elif ! attached; then
	why="nothing attached to $cgmnt/$tag"
elif accelerated; then
	echo "    the daemon's effective capabilities: $got"
	ok caps-run "$t0"
fi
[ -n "$why" ] && fail caps-run "$why"

t0=$(now)
why=
if [ -n "$pid" ]; then
	stop_daemon
	if ! attached; then
		why="on_exit = keep: the attachment went with the daemon"
	elif ! start_capped "$unit_caps"; then
		show "$tmp/daemon.log"
		why="the second daemon did not start (exit status $rc)"
	elif ! grep -q adopted "$tmp/daemon.log"; then
		show "$tmp/daemon.log"
		why="it did not adopt the pinned datapath"
	elif accelerated; then
		ok caps-adopt "$t0"
	fi
else
	why="no daemon from caps-run"
fi
[ -n "$why" ] && fail caps-adopt "$why"
stop_daemon
"$build/sockmesh" unload -c "$conf" >/dev/null 2>&1
[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"

# What each capability is for, as measured: without it, the daemon's log
# has a line matching this (grep -E). The CAP_PERFMON case is the kernel's
# verifier line, which libbpf prints. A message may also name the missing
# capability; it must never blame the kernel (see blames_kernel).
expect_without() {
	case $1 in
	cap_bpf) echo "error: .*(Operation not permitted|CAP_BPF)" ;;
	cap_net_admin) echo "error: .*(Operation not permitted|CAP_NET_ADMIN)" ;;
	cap_perfmon) echo "cannot use helper bpf_skc_to_tcp_sock|error: .*CAP_PERFMON" ;;
	cap_dac_override) echo "error: .*cgroup .*$tag.*(Permission denied|CAP_DAC_OVERRIDE)" ;;
	*) echo "error:" ;;
	esac
}

# a refusal for want of a capability that says the kernel lacks a feature
blames_kernel() {
	grep -qiE "kernel (lacks|does not (have|support))" "$tmp/daemon.log"
}

write_conf detach
for cap in $(echo "$unit_caps" | tr ',' ' '); do
	t0=$(now)
	why=
	keep=$(echo "$unit_caps" | tr ',' '\n' | grep -vx "$cap" | paste -sd, -)
	if start_capped "$keep"; then
		why="it started without $cap"
		stop_daemon
	elif [ "$rc" = timeout ]; then
		why="neither ready nor gone after 30 s"
	elif [ "$rc" = 0 ]; then
		why="it exited 0"
	elif blames_kernel; then
		show "$tmp/daemon.log"
		why="it blames the kernel, but a capability is missing"
	elif ! grep -qE "$(expect_without "$cap")" "$tmp/daemon.log"; then
		show "$tmp/daemon.log"
		why="no error matching '$(expect_without "$cap")'"
	elif attached || pinned; then
		why="it left an attachment or pins behind"
	else
		echo "    without $cap: exit $rc, $(grep -m1 -E "$(expect_without "$cap")" "$tmp/daemon.log" | cut -c1-110)"
		ok "caps-without-$cap" "$t0"
	fi
	[ -n "$why" ] && fail "caps-without-$cap" "$why"
	[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"
done

# No bpffs on /sys/fs/bpf: only a private mount namespace can show that
# without touching the host's. The wrapper unmounts it there and execs.
cat >"$tmp/nobpffs.sh" <<'EOF'
#!/bin/sh
mount --make-rprivate / && umount -l /sys/fs/bpf || exit 97
exec "$@"
EOF
chmod +x "$tmp/nobpffs.sh"
t0=$(now)
why=
if start_capped "$unit_caps" unshare -m "$tmp/nobpffs.sh"; then
	why="it started without bpffs and without CAP_SYS_ADMIN"
	stop_daemon
elif [ "$rc" = 97 ]; then
	why="cannot unmount /sys/fs/bpf in a private mount namespace"
elif blames_kernel || ! grep -qE \
	"error: pin_dir $pins.*(Operation not permitted|bpf filesystem|bpffs|CAP_SYS_ADMIN)" \
	"$tmp/daemon.log"; then
	show "$tmp/daemon.log"
	why="no error naming pin_dir and the missing bpffs or permission"
elif ! msg=$(grep -m1 'error: pin_dir' "$tmp/daemon.log") ||
	! start_capped "$unit_caps,cap_sys_admin" unshare -m "$tmp/nobpffs.sh"; then
	show "$tmp/daemon.log"
	why="with CAP_SYS_ADMIN it did not mount bpffs itself"
else
	echo "    without bpffs: $msg"
	echo "    with CAP_SYS_ADMIN added it mounts bpffs and starts"
	stop_daemon
	ok caps-no-bpffs "$t0"
fi
[ -n "$why" ] && fail caps-no-bpffs "$why"
[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"

# --- the system call filter ------------------------------------------------

# expand ITEM...: the system calls of each filter group, recursively
expand() {
	for item in "$@"; do
		case $item in
		@*)
			case " $seen " in
			*" $item "*) continue ;;
			esac
			seen="$seen $item"
			expand $(systemd-analyze syscall-filter "$item" 2>/dev/null |
				tail -n +2 | grep -v '#')
			;;
		*) echo "$item" ;;
		esac
	done
}

echo "== the daemon's system calls vs SystemCallFilter=$(unit_value SystemCallFilter)"
t0=$(now)
why=
write_conf detach
rm -f "$tmp/run/sockmeshd.pid"
if ! command -v strace >/dev/null; then
	why="strace is missing (scripts/setup.sh)"
else
	# strace inside capsh: it traces its own child, no extra capability
	capsh --drop="$(caps_drop "$unit_caps")" -- -c "exec strace -f -qq \
		-o $tmp/strace.log $build/sockmeshd -c $conf" \
		>"$tmp/daemon.log" 2>&1 &
	tracer=$!
	n=0
	while [ ! -s "$tmp/run/sockmeshd.pid" ] && kill -0 "$tracer" 2>/dev/null &&
		[ "$n" -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	dpid=$(cat "$tmp/run/sockmeshd.pid" 2>/dev/null)
	if [ -z "$dpid" ]; then
		show "$tmp/daemon.log"
		why="the traced daemon did not start"
		kill "$tracer" 2>/dev/null
	else
		"$build/sockmesh" run -c "$conf" -- "$build/tests/pingpong" 10 100 \
			>/dev/null 2>&1 || why="the ping-pong failed"
		"$build/sockmesh" status -c "$conf" >/dev/null 2>&1
		kill -HUP "$dpid"
		sleep 0.5
		kill -TERM "$dpid"
	fi
	wait "$tracer"
	allowed=$(seen=
		expand $(unit_value SystemCallFilter) | sort -u)
	used=$(sed -n 's/^[0-9]* *\([a-z_0-9]*\)(.*/\1/p' "$tmp/strace.log" |
		sort -u)
	denied=$(echo "$used" | grep -vxF "$allowed" | paste -sd' ' -)
	if [ -z "$why" ] && [ -z "$used" ]; then
		why="strace recorded no system call"
	elif [ -z "$why" ] && [ -n "$denied" ]; then
		why="SystemCallFilter= would refuse: $denied"
	fi
	[ -z "$why" ] && echo "    $(echo "$used" | wc -l) distinct system calls, all allowed"
fi
if [ -z "$why" ]; then
	ok syscall-filter "$t0"
else
	fail syscall-filter "$why"
fi
[ -d "$cgmnt/$tag" ] && rmdir "$cgmnt/$tag"

# --- make install / uninstall ----------------------------------------------

echo "== make install DESTDIR=... / make uninstall"
t0=$(now)
why=
dest=$tmp/dest
pfx=$dest/usr/local
inst() {
	make -s --no-print-directory BUILD="$build" DESTDIR="$dest" "$@" \
		>>"$tmp/install.log" 2>&1
}
# mode_is MODE FILE...: each FILE has MODE and belongs to root
mode_is() {
	m=$1
	shift
	for f in "$@"; do
		if [ "$(stat -c '%a %U' "$f" 2>/dev/null)" != "$m root" ]; then
			why="$f: $(stat -c '%a %U' "$f" 2>&1), expected $m root"
			return 1
		fi
	done
}
# runs CMD... : exits 0 and prints something
runs() {
	if ! out=$("$@" 2>&1) || [ -z "$out" ]; then
		why="'$*' failed: $out"
		return 1
	fi
}
installed_unit=$pfx/lib/systemd/system/sockmeshd.service
if ! inst install; then
	show "$tmp/install.log"
	why="make install failed"
elif ! mode_is 755 "$pfx/sbin/sockmeshd" "$pfx/bin/sockmesh" \
	"$pfx/bin/sockmesh-bench" ||
	! mode_is 644 "$installed_unit" "$dest/etc/sockmesh/sockmesh.ini" \
		"$pfx/share/man/man8/sockmeshd.8" "$pfx/share/man/man8/sockmesh.8" \
		"$pfx/share/man/man5/sockmesh.ini.5"; then
	:
elif ! runs "$pfx/sbin/sockmeshd" --version ||
	! runs "$pfx/sbin/sockmeshd" --help ||
	! runs "$pfx/bin/sockmesh" --version || ! runs "$pfx/bin/sockmesh" --help ||
	! runs "$pfx/bin/sockmesh-bench" --help ||
	! runs "$pfx/sbin/sockmeshd" --check -c "$dest/etc/sockmesh/sockmesh.ini"; then
	:
elif ! grep -qx 'ExecStart=/usr/local/sbin/sockmeshd -c /etc/sockmesh/sockmesh.ini' \
	"$installed_unit"; then
	why="the installed unit does not start /usr/local/sbin/sockmeshd on /etc/sockmesh/sockmesh.ini"
elif ! sed "s|/usr/local/sbin/|$pfx/sbin/|g" "$installed_unit" \
	>"$tmp/installed.service" ||
	! MANPATH=$pfx/share/man systemd-analyze verify "$tmp/installed.service" \
		>"$tmp/verify.log" 2>&1 || [ -s "$tmp/verify.log" ]; then
	# with MANPATH, verify also finds the unit's Documentation= pages
	show "$tmp/verify.log"
	why="systemd-analyze verify of the installed unit (and its man pages)"
elif ! echo '; mine' >>"$dest/etc/sockmesh/sockmesh.ini" || ! inst install ||
	! grep -q '^; mine$' "$dest/etc/sockmesh/sockmesh.ini"; then
	why="a second make install overwrote a changed config"
elif ! inst uninstall || [ "$(find "$dest" -type f | wc -l)" != 1 ] ||
	! grep -q '^; mine$' "$dest/etc/sockmesh/sockmesh.ini"; then
	find "$dest" -type f | show
	why="make uninstall should leave only the changed config"
elif ! rm -rf "$dest" || ! inst install || ! inst uninstall ||
	[ -n "$(find "$dest" -type f)" ]; then
	find "$dest" -type f | show
	why="make install, make uninstall left files behind"
elif ! rm -rf "$dest" || ! inst install PREFIX=/usr ||
	! grep -qx 'ExecStart=/usr/sbin/sockmeshd -c /etc/sockmesh/sockmesh.ini' \
		"$dest/usr/lib/systemd/system/sockmeshd.service" ||
	! [ -x "$dest/usr/bin/sockmesh" ] || ! inst uninstall PREFIX=/usr ||
	[ -n "$(find "$dest" -type f)" ]; then
	why="PREFIX=/usr: the unit or the binaries are not where they belong"
else
	echo "    installed, ran --version, --help, --check; uninstall left no file"
	ok install "$t0"
fi
[ -n "$why" ] && fail install "$why"
rm -rf "$dest"

# --- man pages -------------------------------------------------------------

# options: the -x and --xyz options in a help text on stdin
options() {
	grep -oE -- '(^|[[ ,|])-{1,2}[a-zA-Z][a-z-]*' | sed 's/^[^-]*//' | sort -u
}

# src PAGE: its roff source, with \- and font escapes undone
src() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "man/$1"
}

# lint PAGE: man --warnings prints nothing on stderr
lint() {
	MANWIDTH=80 man --warnings -E UTF-8 -l "man/$1" >/dev/null \
		2>"$tmp/man.err"
	if [ -s "$tmp/man.err" ]; then
		show "$tmp/man.err"
		why="man --warnings: $(wc -l <"$tmp/man.err") lines on stderr"
		return 1
	fi
}

# has PAGE WORD...: each WORD is in the page (as a word), or why names it
has() {
	page=$1
	shift
	missing=
	for w in "$@"; do
		src "$page" | grep -qw -e "$w" || missing="$missing $w"
	done
	[ -z "$missing" ] || why="does not document:$missing"
	[ -z "$missing" ]
}

echo "== man pages (man --warnings, and everything documented)"
t0=$(now)
why=
if lint sockmeshd.8 &&
	has sockmeshd.8 $("$build/sockmeshd" --help |
		options) \
		SIGHUP SIGTERM SIGINT READY=1 NOTIFY_SOCKET \
		/etc/sockmesh/sockmesh.ini; then
	ok man-sockmeshd "$t0"
else
	fail man-sockmeshd "$why"
fi

t0=$(now)
why=
# the commands, options and exit codes of `sockmesh help`; the counters of
# the one counter list (include/sockmesh.h)
cmds=$("$build/sockmesh" help | sed -n 's/^  \([a-z][a-z]*\).*/\1/p')
opts=$("$build/sockmesh" help | options)
counters=$(sed -n 's/^[[:space:]]*X(\([a-z_]*\)).*/\1/p' include/sockmesh.h)
codes=$("$build/sockmesh" help | sed -n 's/^Exit status: //p' |
	grep -o '[0-9] [a-z]' | cut -c1)
missing_cmd=
for c in $cmds; do
	src sockmesh.8 | grep -q "^\.B $c\( \|$\)" || missing_cmd="$missing_cmd $c"
done
missing_code=
for c in $codes; do
	src sockmesh.8 | sed -n '/^\.SH EXIT STATUS/,/^\.SH [^E]/p' |
		grep -qx "\.B $c" || missing_code="$missing_code $c"
done
if [ -z "$cmds" ] || [ -z "$counters" ] || [ -z "$codes" ]; then
	why="could not read the commands, counters or exit codes"
elif [ -n "$missing_cmd" ]; then
	why="no COMMANDS entry for:$missing_cmd"
elif [ -n "$missing_code" ]; then
	why="no EXIT STATUS entry for:$missing_code"
elif lint sockmesh.8 && has sockmesh.8 $opts $counters; then
	echo "    $(echo $cmds | wc -w) commands, $(echo $opts | wc -w) options," \
		"$(echo $counters | wc -w) counters, exit codes" $codes
fi
if [ -z "$why" ]; then
	ok man-sockmesh "$t0"
else
	fail man-sockmesh "$why"
fi

t0=$(now)
why=
# every key with its default, as `sockmeshd --check` prints them for a file
# that sets nothing
: >"$tmp/empty.ini"
chmod 0644 "$tmp/empty.ini"
"$build/sockmeshd" --check -c "$tmp/empty.ini" 2>&1 | grep ' = ' \
	>"$tmp/defaults"
missing=
n=0
while IFS= read -r line; do
	key=${line%% = *}
	val=${line#* = }
	n=$((n + 1))
	want=".BR $key \" (default ${val:-empty})\""
	[ -n "$val" ] && want=".BR $key \" (default $val)\""
	src sockmesh.ini.5 | grep -qxF "$want" || missing="$missing $key"
done <"$tmp/defaults"
sed -n '/^\.EX/,/^\.EE/p' man/sockmesh.ini.5 | sed '1d;$d' >"$tmp/example.ini"
chmod 0644 "$tmp/example.ini"
# the pin layout version, from the header, wherever the docs name it
layout=$(sed -n 's/^#define SM_PIN_LAYOUT "\(v[0-9]*\)".*/\1/p' include/sockmesh.h)
stale=$(grep -HnoE '(/sys/fs/bpf/sockmesh/v[0-9]+|^\.IR v[0-9]+ \)|this release: v[0-9]+)' \
	man/sockmesh.8 man/sockmeshd.8 man/sockmesh.ini.5 docs/deploy.md |
	grep -v "[/ ]$layout\b" || true)
if [ "$n" -lt 5 ]; then
	why="sockmeshd --check printed no keys"
elif [ -z "$layout" ]; then
	why="no SM_PIN_LAYOUT in include/sockmesh.h"
elif [ -n "$stale" ]; then
	why="a pin layout other than $layout named: $stale"
elif [ -n "$missing" ]; then
	why="no entry with the right default for:$missing"
elif ! "$build/sockmeshd" --check -c "$tmp/example.ini" >"$tmp/check.log" 2>&1; then
	why="its EXAMPLE does not pass --check: $(cat "$tmp/check.log")"
elif lint sockmesh.ini.5; then
	echo "    $n keys with their defaults; the EXAMPLE passes --check"
fi
if [ -z "$why" ]; then
	ok man-sockmesh.ini "$t0"
else
	fail man-sockmesh.ini "$why"
fi

# --- the Kubernetes manifest -----------------------------------------------

echo "== deploy/*.yaml (yamllint, tests/deploy/check-manifest.py)"
t0=$(now)
why=
py=/usr/bin/python3
[ -x "$py" ] || py=python3
mkdir -p "$tmp/manifest"
if ! command -v yamllint >/dev/null; then
	why="yamllint is missing (scripts/setup.sh)"
elif ! yamllint -s deploy/*.yaml >"$tmp/yamllint.log" 2>&1; then
	show "$tmp/yamllint.log"
	why="yamllint"
elif ! "$py" tests/deploy/check-manifest.py deploy/sockmesh-daemonset.yaml \
	"$unit" "$tmp/manifest" >"$tmp/manifest.log" 2>&1; then
	show "$tmp/manifest.log"
	why="the DaemonSet does not say what sockmeshd needs"
elif ! "$build/sockmeshd" --check -c "$tmp/manifest/configmap.ini" \
	>"$tmp/check.log" 2>&1; then
	show "$tmp/check.log"
	why="the ConfigMap's sockmesh.ini does not pass sockmeshd --check"
elif ! sh -n "$tmp/manifest/watcher.sh" || ! sh -n "$tmp/manifest/prestop.sh"; then
	why="the config-watcher or preStop script is not valid sh"
else
	echo "    parses; capabilities = the unit's; host mounts, probe, preStop," \
		"watcher; the ConfigMap passes --check"
	ok manifest "$t0"
fi
[ -n "$why" ] && fail manifest "$why"

echo "deploy: $passed passed, $failed failed"
echo "    run-deploy.sh took $(($(now) - start)) s"
[ "$failed" -eq 0 ]
