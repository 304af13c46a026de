# tests/mesh/lib.sh - what the mesh suites (run.sh, connect.sh, ambient.sh)
# share; sourced after scripts/lib.sh, with $build, $conf, $tmp, $M and (once
# the mesh is up) $state set by the suite.

note() { echo "    $*"; }

# suite_cleanup PID... : a suite's exit: its background clients (those of
# the PIDs still running) stopped, the mesh down, $tmp removed
suite_cleanup() {
	for p in "$@"; do
		if kill -0 "$p" 2>/dev/null; then
			kill "$p"
			wait "$p" 2>/dev/null
		fi
	done
	$M down >"$tmp/down.log" 2>&1 || { echo "    mesh.sh down:"; sed 's/^/    /' "$tmp/down.log"; }
	rm -rf "$tmp"
}

# snap FILE : the sockmesh counters (and "sockets") as "name value" lines
snap() {
	"$build/sockmesh" status --json -c "$conf" >"$tmp/status.json" 2>&1 ||
		{ : >"$1"; return 1; }
	jq -r '(.counters | to_entries[] | "\(.key) \(.value)"), "sockets \(.sockets)"' \
		"$tmp/status.json" >"$1"
}
# val FILE NAME
val() { awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }
# delta BEFORE AFTER NAME
delta() { echo $(($(val "$2" "$3") - $(val "$1" "$3"))); }

# csvval FILE PROXY SERVER FIELD : one field of HAProxy's stats CSV (pxname,
# svname, ..., stot, bin, bout, ...), 0 if the line is not there
csvval() {
	awk -F, -v p="$2" -v s="$3" -v f="$4" '
		NR == 1 { for (i = 1; i <= NF; i++) { h = $i; sub(/^# /, "", h); col[h] = i } next }
		$1 == p && $2 == s { print $col[f]; found = 1 }
		END { if (!found) print 0 }' "$1"
}

# pct PART WHOLE : a percentage with one decimal
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b; else print "n/a" }'; }
# ratio_ok PART WHOLE : PART >= 95 % of WHOLE (and WHOLE > 0)
ratio_ok() { [ "$2" -gt 0 ] && [ $((100 * $1)) -ge $((95 * $2)) ]; }

# down_clean CHECK : `mesh.sh down` ($M), then CHECK passes if it left no
# netns, cgroup, pin dir or state dir of mesh $name ($state: its state dir)
down_clean() {
	$M down >"$tmp/down.log" 2>&1
	left=
	ip netns list | grep -q "^smesh-$name-" && left="$left netns;"
	[ ! -e "$(sm_cgroup2_mount)/sockmesh-mesh-$name" ] || left="$left cgroups;"
	[ ! -e "/sys/fs/bpf/sockmesh-mesh-$name" ] || left="$left pins;"
	[ ! -e "$state" ] || left="$left $state;"
	if [ -z "$left" ]; then
		ok "$1"
	else
		sed 's/^/    /' "$tmp/down.log"
		fail "$1" "left behind:$left"
	fi
}

# --- the sidecars' own counts ---------------------------------------------

# hstat POD FILE : HAProxy's stats (CSV: pxname, svname, ..., stot, bin, bout)
hstat() {
	$M exec "$1" curl -sf 'http://127.0.0.1:15000/stats;csv' >"$2"
}
# hval FILE PROXY SERVER FIELD(stot|bin|bout)
hval() { csvval "$@"; }
# hwait POD PROXY N : until POD's HAProxy has closed N sessions of PROXY's
# frontend and holds none (it counts a session's bytes when both sides have
# closed); bounded at 30 s, the check that follows says what was missing
hwait() {
	i=0
	while [ $i -lt 300 ]; do
		hstat "$1" "$tmp/hw" || true
		[ "$(hval "$tmp/hw" "$2" FRONTEND stot)" -ge "$3" ] &&
			[ "$(hval "$tmp/hw" "$2" FRONTEND scur)" = 0 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
}
hdelta() { echo $(($(hval "$2" "$3" "$4" "$5") - $(hval "$1" "$3" "$4" "$5"))); }

# hops BEFORE_A BEFORE_B AFTER_A AFTER_B : bytes the three hops carried, as
# the proxies count them: app A <-> proxy A (A's outbound frontend), proxy A
# <-> proxy B (B's inbound frontend), proxy B <-> app B (B's local_app backend)
hops() {
	echo $(($(hdelta "$1" "$3" outbound FRONTEND bin) + $(hdelta "$1" "$3" outbound FRONTEND bout) +
		$(hdelta "$2" "$4" inbound FRONTEND bin) + $(hdelta "$2" "$4" inbound FRONTEND bout) +
		$(hdelta "$2" "$4" local_app BACKEND bin) + $(hdelta "$2" "$4" local_app BACKEND bout)))
}

# mf_lines POD FROM : meshfwd's log lines of pod POD after line FROM
mf_lines() { tail -n +$(($2 + 1)) "$state/$1/meshfwd.log" | grep '^conn '; }
# mf_wait POD FROM N : until N connections after line FROM are logged (the
# proxy logs when both sides have closed; 30 s at most)
mf_wait() {
	i=0
	while [ "$(mf_lines "$1" "$2" | wc -l)" -lt "$3" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
# mf_sum FILE FIELD(up|down) FRONTEND
mf_sum() { awk -v f="$2" -v d="$3" '$9 == d { s += (f == "up" ? $11 : $13) } END { print s + 0 }' "$1"; }

# bytes_exact NAME HOST SEED KEY OUT : meshcheck from pod A to HOST:6379
# through both sidecars (24 pairs, 6 per connection), ok or fail NAME; sets
# mc_conns, mc_sent, mc_recv from its last line
bytes_exact() {
	if $M exec a "$check" -n 24 -r 6 -s "$3" -k "$4" "$2" 6379 >"$5" 2>&1 &&
		grep -q '^meshcheck: ok' "$5"; then
		ok "$1"
		note "$(tail -n 1 "$5")"
	else
		sed 's/^/    /' "$5"
		fail "$1" "SET/GET to $2 through both sidecars lost or changed bytes"
	fi
	set -- $(sed -n 's/^meshcheck: ok: \([0-9]*\) pairs, \([0-9]*\) connections, sent \([0-9]*\) B, received \([0-9]*\) B$/\1 \2 \3 \4/p' "$5")
	mc_conns=${2:-0} mc_sent=${3:-0} mc_recv=${4:-0}
}
