#!/bin/sh
# ambient.sh BUILD - the ambient part of `make test`'s mesh suite: Istio
# ambient's layout (scripts/mesh/mesh.sh `up ambient`): no sidecars, one node
# proxy (HAProxy as ztunnel, its own cgroup, uid 1337) with its listening
# sockets inside each mesh pod's namespace, in-pod REDIRECTs to its 15001
# (outbound) and 15006 (inbound), mutual TLS between the node proxy's two
# ends of a request (to the destination pod's 15008), and the last hop from
# inside the destination pod with the client pod's address as source
# (IP_TRANSPARENT). Under a private sockmeshd made from conf/examples/istio.ini.
# Each check ends with "ok   NAME" or "FAIL NAME: why"; the last line is
#
#	ambient: N passed, M failed
#
# IPv4 only: Debian's HAProxy does not read IP6T_SO_ORIGINAL_DST (docs/mesh.md).
# Needs root and what scripts/setup.sh installs (haproxy, redis, nginx-light,
# curl, iptables, openssl, jq).
set -u
build=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. tests/mesh/lib.sh
build=$(cd "$build" && pwd) || exit 1
export SOCKMESH_BUILD="$build"
name=a$$
M="scripts/mesh/mesh.sh -n $name"
check=$build/tests/meshcheck
A=198.18.0.2
B=198.18.0.3
C=198.18.0.4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-ambient.XXXXXX") || exit 1
passed=0
failed=0
loop_pid=
start=$(date +%s)

cleanup() { suite_cleanup $loop_pid; }
trap cleanup EXIT
trap 'exit 130' INT TERM

summary() { echo "ambient: $passed passed, $failed failed"; }

conf=

# zstat FILE : the node proxy's stats (CSV), from the node's namespace
zstat() {
	ip netns exec "smesh-$name-node" curl -sf 'http://127.0.0.1:15000/stats;csv' >"$1"
}
# zval FILE PROXY SERVER FIELD
zval() { csvval "$@"; }
zdelta() { echo $(($(zval "$2" "$3" "$4" "$5") - $(zval "$1" "$3" "$4" "$5"))); }
# zwait PROXY N : until the node proxy has closed N sessions of frontend
# PROXY and holds none of its sessions (it counts and logs a session when
# both sides have closed); at most 30 s, the check that follows says what
# was missing
zwait() {
	i=0
	while [ $i -lt 300 ]; do
		zstat "$tmp/zw" || true
		[ "$(zval "$tmp/zw" "$1" FRONTEND stot)" -ge "$2" ] &&
			[ "$(zval "$tmp/zw" "$1" FRONTEND scur)" = 0 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
}
# hops BEFORE AFTER : bytes of the three hops of pod A -> pod B as the node
# proxy counts them (plaintext; the TLS hop carries more on the wire)
hops() {
	echo $(($(zdelta "$1" "$2" out_a FRONTEND bin) + $(zdelta "$1" "$2" out_a FRONTEND bout) +
		$(zdelta "$1" "$2" hbone_in_b FRONTEND bin) + $(zdelta "$1" "$2" hbone_in_b FRONTEND bout) +
		$(zdelta "$1" "$2" app_b BACKEND bin) + $(zdelta "$1" "$2" app_b BACKEND bout)))
}

# --- the mesh --------------------------------------------------------------

for c in haproxy redis-server redis-cli nginx curl iptables openssl jq ip setpriv; do
	if ! command -v $c >/dev/null; then
		fail setup "$c is not installed (scripts/setup.sh installs it)"
		summary
		exit 1
	fi
done
[ -x "$check" ] || {
	fail setup "$check is missing: \`make test\` builds it"
	summary
	exit 1
}

if ! $M accel on >"$tmp/accel.log" 2>&1 || ! $M up ambient >"$tmp/up.log" 2>&1; then
	sed 's/^/    /' "$tmp/accel.log" "$tmp/up.log"
	fail ambient-up "mesh.sh up ambient failed"
	summary
	exit 1
fi
conf=$($M conf)
state=$(dirname "$conf")
zlog=$state/z/ztunnel.log
ok ambient-up
note "node proxy $(awk '$1 == "z" { print "pid " $3 }' "$state/pids"), cgroup /sockmesh-mesh-$name/mesh/ztunnel, listening in pods a and b"

# mc NAME HOST SEED KEY OUT [ARGS] : meshcheck from pod A, ok or fail NAME;
# sets mc_conns, mc_sent, mc_recv from its last line
mc() {
	n=$1 host=$2 seed=$3 key=$4 out=$5
	shift 5
	if $M exec a "$check" "$@" -s "$seed" -k "$key" "$host" 6379 >"$out" 2>&1 &&
		grep -q '^meshcheck: ok' "$out"; then
		ok "$n"
		note "$(tail -n 1 "$out")"
	else
		sed 's/^/    /' "$out"
		fail "$n" "SET/GET to $host:6379 through the node proxy lost or changed bytes"
	fi
	set -- $(sed -n 's/^meshcheck: ok: \([0-9]*\) pairs, \([0-9]*\) connections, sent \([0-9]*\) B, received \([0-9]*\) B$/\1 \2 \3 \4/p' "$out")
	mc_conns=${2:-0} mc_sent=${3:-0} mc_recv=${4:-0}
}

# --- bytes exact, original destination, every hop redirected ---------------

snap "$tmp/c0"
zstat "$tmp/z0"
l0=$(wc -l <"$zlog")
mc ambient-bytes-exact "$B" 1 ambA "$tmp/check.out" -n 24 -r 6
conns=$mc_conns sent=$mc_sent recv=$mc_recv
zwait out_a "$(($(zval "$tmp/z0" out_a FRONTEND stot) + conns))"
snap "$tmp/c1"
zstat "$tmp/z1"

# Each connection in the node proxy's log twice: out_a (the app's connection,
# its original destination B:6379, carried to B:15008) and hbone_in_b (the
# tunnel's end in pod B: the original destination from the PROXY header,
# connected to from A's address, TLS: HAProxy marks such a frontend "~").
tail -n +$((l0 + 1)) "$zlog" | grep '^conn ' >"$tmp/l1"
awk -v b="$B:6379" '$9 == "out_a" && $4 == b && $8 == "'$B':15008"' "$tmp/l1" >"$tmp/out"
awk -v b="$B:6379" -v a="$A" '$9 == "hbone_in_b~" && $4 == b && $8 == b && index($6, a ":") == 1' "$tmp/l1" >"$tmp/in"
# the app's address and port, as B's end saw it, is the client's
chain=$(awk 'NR == FNR { c[$2] = 1; next } !($2 in c)' "$tmp/out" "$tmp/in" | head -n 3)
if [ "$conns" -gt 0 ] && [ "$(wc -l <"$tmp/out")" = "$conns" ] &&
	[ "$(wc -l <"$tmp/in")" = "$conns" ] && [ -z "$chain" ]; then
	ok ambient-original-destination
	note "out:  $(head -n 1 "$tmp/out")"
	note "in:   $(head -n 1 "$tmp/in")"
else
	sed 's/^/      /' "$tmp/l1"
	fail ambient-original-destination "want $conns connections, each app A -> $B:6379 -> node proxy in pod A -> TLS to $B:15008 -> node proxy in pod B -> $B:6379 from $A"
fi

hop=$(hops "$tmp/z0" "$tmp/z1")
br=$(delta "$tmp/c0" "$tmp/c1" bytes_redirected)
mr=$(delta "$tmp/c0" "$tmp/c1" msgs_redirected)
mp=$(delta "$tmp/c0" "$tmp/c1" msgs_passed)
pa=$(delta "$tmp/c0" "$tmp/c1" peers_paired)
pn=$(delta "$tmp/c0" "$tmp/c1" peers_paired_nat)
note "hop bytes (plaintext) $hop, redirected $br ($(pct "$br" "$hop") %); msgs redirected $mr, passed $mp; peers_paired $pa, peers_paired_nat $pn for $conns connections"
# three pairs a connection: hop 1 through the REDIRECT (NAT), hops 2 and 3
# with mirrored tuples; the TLS hop's bytes are counted as its plaintext,
# so a hop left to TCP shows as a third missing
if ratio_ok "$br" "$hop" && ratio_ok "$mr" $((mr + mp)) &&
	[ "$pa" -ge $((3 * conns)) ] && [ "$pn" -ge "$conns" ]; then
	ok ambient-hops-redirected
else
	fail ambient-hops-redirected "$(pct "$br" "$hop") % of the hops' bytes and $(pct "$mr" $((mr + mp))) % of the messages redirected (bar: 95 %), peers_paired $pa (want $((3 * conns))), peers_paired_nat $pn (want $conns)"
fi

# --- HTTP bodies exact -------------------------------------------------------
why=
for f in 100b 64k 256k 1m; do
	want=$(sha256sum <"$state/b/www/$f" | cut -d' ' -f1)
	got=$($M exec a curl -sf "http://$B:8080/$f" | sha256sum | cut -d' ' -f1)
	[ "$want" = "$got" ] || why="$why $f;"
done
zwait out_a "$(($(zval "$tmp/z1" out_a FRONTEND stot) + 4))"
zstat "$tmp/z2"
hs=$(zdelta "$tmp/z1" "$tmp/z2" out_a FRONTEND stot)
hb=$(zdelta "$tmp/z1" "$tmp/z2" app_b BACKEND stot)
if [ -z "$why" ] && [ "$hs" = 4 ] && [ "$hb" = 4 ]; then
	ok ambient-http-bodies-exact
else
	fail ambient-http-bodies-exact "sha256 differs for:${why:- none}; the node proxy took $hs of 4 requests from pod A, made $hb of 4 to pod B's app"
fi

# --- pods outside the mesh ---------------------------------------------------
# Pod A to pod C (no ztunnel there): the node proxy connects from inside pod A,
# plain TCP (direct_a). Pod C to pod B: C's connection is REDIRECTed inside
# pod B to the node proxy's 15006 (in_b), which connects to B's app with C's
# address. C's own sockets are outside the accelerated cgroups.
snap "$tmp/o0"
zstat "$tmp/zo0"
l0=$(wc -l <"$zlog")
mc ambient-to-outside-pod "$C" 2 ambC "$tmp/c.out" -n 8 -r 4
ca=$mc_conns
if $M exec c "$check" -n 8 -r 4 -s 3 -k fromC "$B" 6379 >"$tmp/fromc.out" 2>&1 &&
	grep -q '^meshcheck: ok' "$tmp/fromc.out"; then
	cb=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections.*/\1/p' "$tmp/fromc.out")
	zwait in_b "$(($(zval "$tmp/zo0" in_b FRONTEND stot) + cb))"
	zwait out_a "$(($(zval "$tmp/zo0" out_a FRONTEND stot) + ca))"
	snap "$tmp/o1"
	tail -n +$((l0 + 1)) "$zlog" | grep '^conn ' >"$tmp/lo"
	nd=$(awk -v c="$C:6379" '$9 == "out_a" && $4 == c && $8 == c' "$tmp/lo" | wc -l)
	ni=$(awk -v b="$B:6379" -v c="$C" '$9 == "in_b" && $4 == b && $8 == b && index($2, c ":") == 1 && index($6, c ":") == 1' "$tmp/lo" | wc -l)
	# the node proxy's end of C's connection finds no connecting end in
	# the map (peers_unpaired); its connection to C finds no peer at its
	# first message (peer_misses)
	un=$(delta "$tmp/o0" "$tmp/o1" peers_unpaired)
	pm=$(delta "$tmp/o0" "$tmp/o1" peer_misses)
	if [ "$nd" = "$ca" ] && [ "$ni" = "$cb" ] && [ "$un" -ge "$cb" ] && [ "$pm" -ge "$ca" ]; then
		ok ambient-from-outside-pod
		note "$(tail -n 1 "$tmp/fromc.out")"
		note "A -> C: $nd direct connections, peer_misses $pm; C -> B: $ni through in_b from $C, peers_unpaired $un"
	else
		sed 's/^/      /' "$tmp/lo"
		fail ambient-from-outside-pod "want $ca connections A -> $C:6379 plain from pod A, $cb C -> $B:6379 through in_b from $C's address: got $nd, $ni; peers_unpaired $un (want >= $cb), peer_misses $pm (want >= $ca)"
	fi
else
	sed 's/^/    /' "$tmp/fromc.out"
	fail ambient-from-outside-pod "SET/GET from pod C to $B:6379 lost or changed bytes"
fi

# --- sockmeshd restarted and reloaded under load ------------------------------
# A client loop (a new connection every 3 pairs) from pod A through the node
# proxy while the daemon stops (on_exit = keep), starts on the kept pins and
# reloads twice; then the loop is told to finish. No request may fail.
$M exec a "$check" -t 60 -r 3 -m 65536 -s 4 -k life -f "$tmp/life.stop" "$B" 6379 >"$tmp/life.out" 2>&1 &
loop_pid=$!
why=
for s in stop on reload reload; do
	sleep 1.2
	if [ "$s" = reload ]; then
		"$build/sockmesh" reload -c "$conf" >>"$tmp/life.log" 2>&1 || why="$why reload failed;"
	else
		$M accel "$s" >>"$tmp/life.log" 2>&1 || why="$why accel $s failed;"
	fi
done
sleep 1.2
snap "$tmp/l1"
: >"$tmp/life.stop"
wait $loop_pid
lrc=$?
loop_pid=
if [ $lrc = 0 ] && [ -z "$why" ] && [ "$(val "$tmp/l1" sockets_added)" -gt 0 ]; then
	ok ambient-lifecycle-no-request-fails
	note "$(tail -n 1 "$tmp/life.out")"
else
	sed 's/^/    /' "$tmp/life.out" "$tmp/life.log"
	fail ambient-lifecycle-no-request-fails "client exit status $lrc;${why:- }"
fi

# --- down leaves nothing -----------------------------------------------------
down_clean ambient-down-clean

echo "    tests/mesh/ambient.sh took $(($(date +%s) - start)) s"
summary
[ "$failed" -eq 0 ]
