#!/bin/sh
# run.sh BUILD - the mesh suite of `make test`: a two-pod Istio-style mesh
# (scripts/mesh/mesh.sh: HAProxy sidecars, istio-init's iptables rules, a
# pod outside the mesh) under a private sockmeshd made from
# conf/examples/istio.ini. Each check ends with "ok   NAME" or
# "FAIL NAME: why"; the last line is
#
#	mesh: N passed, M failed
#
# Every pod is dual-stack: the checks run over IPv4 (HAProxy sidecars) and
# IPv6 (meshfwd sidecars, tests/mesh/meshfwd.c), and both at once.
# Needs root, and the packages scripts/setup.sh installs (haproxy,
# redis-server, redis-tools, nginx-light, curl, iptables, jq).
set -u
build=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. tests/mesh/lib.sh
build=$(cd "$build" && pwd) || exit 1
export SOCKMESH_BUILD="$build"
name=t$$
M="scripts/mesh/mesh.sh -n $name"
check=$build/tests/meshcheck
B=198.18.0.3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-mesh.XXXXXX") || exit 1
passed=0
failed=0
loop_pid=
loop6_pid=
churn_pid=
start=$(date +%s)

cleanup() { suite_cleanup $loop_pid $loop6_pid $churn_pid; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- probes ----------------------------------------------------------------

conf=

# --- the mesh --------------------------------------------------------------

for c in haproxy redis-server redis-cli nginx curl iptables ip6tables jq ip setpriv; do
	if ! command -v $c >/dev/null; then
		fail setup "$c is not installed (scripts/setup.sh installs it)"
		echo "mesh: $passed passed, $failed failed"
		exit 1
	fi
done
[ -x "$check" ] || {
	fail setup "$check is missing: \`make test\` builds it"
	echo "mesh: $passed passed, $failed failed"
	exit 1
}

# sockmeshd first: the mesh's pod cgroups appear under its cgroup later
if ! $M accel on >"$tmp/accel.log" 2>&1 || ! $M up >"$tmp/up.log" 2>&1; then
	sed 's/^/    /' "$tmp/accel.log" "$tmp/up.log"
	fail mesh-up "mesh.sh up failed"
	echo "mesh: $passed passed, $failed failed"
	exit 1
fi
conf=$($M conf)
state=$(dirname "$conf")
attached=$("$build/sockmesh" status --json -c "$conf" | jq -r '[.attached[].cgroup] | join(",")')
if [ "$attached" = "/sockmesh-mesh-$name/mesh" ]; then
	ok mesh-up
	note "sockmeshd attached to $attached before the pods' cgroups under it existed"
else
	fail mesh-up "sockmeshd attached to '$attached', not /sockmesh-mesh-$name/mesh"
fi

# --- bytes exact through both proxies: redis --------------------------------

snap "$tmp/c0"
hstat a "$tmp/a0"
hstat b "$tmp/b0"
la0=$(wc -l <"$state/a/haproxy.log")
lb0=$(wc -l <"$state/b/haproxy.log")
bytes_exact redis-bytes-exact "$B" 1 meshA "$tmp/check.out"
conns=$mc_conns sent=$mc_sent recv=$mc_recv
sleep 0.3 # HAProxy logs and counts a connection when it has closed both sides
snap "$tmp/c1"
hstat a "$tmp/a1"
hstat b "$tmp/b1"

# The proxies' own stats: every connection and every byte passed both.
why=
for x in "a outbound FRONTEND" "a original_dst BACKEND" "b inbound FRONTEND" "b local_app BACKEND"; do
	set -- $x
	s=$(hdelta "$tmp/${1}0" "$tmp/${1}1" "$2" "$3" stot)
	i=$(hdelta "$tmp/${1}0" "$tmp/${1}1" "$2" "$3" bin)
	o=$(hdelta "$tmp/${1}0" "$tmp/${1}1" "$2" "$3" bout)
	note "pod $1 $2/$3: $s sessions, $i B in, $o B out"
	[ "$s" = "$conns" ] && [ "$i" = "$sent" ] && [ "$o" = "$recv" ] ||
		why="$why pod $1 $2/$3 saw $s sessions, $i B in, $o B out;"
done
if [ "$conns" -gt 0 ] && [ -z "$why" ]; then
	ok proxies-handled-all
else
	fail proxies-handled-all "the client made $conns connections, sent $sent B, received $recv B:$why"
fi

# The original destination: what the app asked for is what proxy A connected
# to, and proxy B took it from proxy A's connection to the app's port.
tail -n +$((la0 + 1)) "$state/a/haproxy.log" | grep '^conn ' >"$tmp/la"
tail -n +$((lb0 + 1)) "$state/b/haproxy.log" | grep '^conn ' >"$tmp/lb"
bad=$(awk -v b="$B:6379" '$4 != b || $8 != b || $9 != "outbound"' "$tmp/la" | head -n 3)
badb=$(awk -v b="$B:6379" '$4 != b || $8 != "127.0.0.1:6379" || $9 != "inbound"' "$tmp/lb" | head -n 3)
chain=$(awk 'NR == FNR { via[$6] = 1; next } !($2 in via)' "$tmp/la" "$tmp/lb" | head -n 3)
if [ "$(wc -l <"$tmp/la")" = "$conns" ] && [ "$(wc -l <"$tmp/lb")" = "$conns" ] &&
	[ -z "$bad$badb$chain" ]; then
	ok original-destination
	note "proxy A: $(head -n 1 "$tmp/la")"
	note "proxy B: $(head -n 1 "$tmp/lb")"
else
	note "proxy A log:"
	sed 's/^/      /' "$tmp/la"
	note "proxy B log:"
	sed 's/^/      /' "$tmp/lb"
	fail original-destination "want $conns connections, each app -> $B:6379 -> proxy A -> $B:6379 -> proxy B -> 127.0.0.1:6379"
fi

# --- bytes exact: HTTP --------------------------------------------------------

why=
for f in 100b 64k 256k 1m; do
	want=$(sha256sum <"$state/b/www/$f" | cut -d' ' -f1)
	got=$($M exec a curl -sf "http://$B:8080/$f" | sha256sum | cut -d' ' -f1)
	[ "$want" = "$got" ] || why="$why $f;"
done
sleep 0.3
snap "$tmp/c2"
hstat a "$tmp/a2"
hstat b "$tmp/b2"
hs=$(hdelta "$tmp/a1" "$tmp/a2" outbound FRONTEND stot)
hb=$(hdelta "$tmp/b1" "$tmp/b2" local_app BACKEND stot)
if [ -z "$why" ] && [ "$hs" = 4 ] && [ "$hb" = 4 ]; then
	ok http-bodies-exact
else
	fail http-bodies-exact "sha256 differs for:${why:- none}; proxy A saw $hs of 4 requests, proxy B $hb"
fi

# --- every hop redirected --------------------------------------------------
# Ground truth is what the proxies carried (bytes on the three hops); the
# counters must show >= 95 % of it redirected, and of the messages that
# sockmesh saw, >= 95 % redirected.
for run in "redis 0 1" "http 1 2"; do
	set -- $run
	hop=$(hops "$tmp/a$2" "$tmp/b$2" "$tmp/a$3" "$tmp/b$3")
	br=$(delta "$tmp/c$2" "$tmp/c$3" bytes_redirected)
	mr=$(delta "$tmp/c$2" "$tmp/c$3" msgs_redirected)
	mp=$(delta "$tmp/c$2" "$tmp/c$3" msgs_passed)
	note "$1: hop bytes $hop, redirected $br ($(pct "$br" "$hop") %); msgs redirected $mr, passed $mp ($(pct "$mr" $((mr + mp))) %); peer_misses $(delta "$tmp/c$2" "$tmp/c$3" peer_misses), sockets_added $(delta "$tmp/c$2" "$tmp/c$3" sockets_added), bulk/rcvbuf fallbacks $(delta "$tmp/c$2" "$tmp/c$3" bulk_fallbacks)/$(delta "$tmp/c$2" "$tmp/c$3" rcvbuf_fallbacks)"
done
hop=$(hops "$tmp/a0" "$tmp/b0" "$tmp/a2" "$tmp/b2")
br=$(delta "$tmp/c0" "$tmp/c2" bytes_redirected)
mr=$(delta "$tmp/c0" "$tmp/c2" msgs_redirected)
mp=$(delta "$tmp/c0" "$tmp/c2" msgs_passed)
if ratio_ok "$br" "$hop" && ratio_ok "$mr" $((mr + mp)); then
	ok hops-redirected
else
	fail hops-redirected "$(pct "$br" "$hop") % of the hops' bytes and $(pct "$mr" $((mr + mp))) % of the messages redirected (bar: 95 %)"
fi

# --- IPv6 and dual stack -----------------------------------------------------
# The same three hops over IPv6: ip6tables REDIRECTs (istio-init's rules with
# ::1 and ::6) to meshfwd, the IPv6 sidecar (HAProxy 2.6 does not read
# IP6T_SO_ORIGINAL_DST). meshfwd logs each connection when both sides have
# closed: "conn CLIENT orig ORIG via SRC srv SERVER outbound|inbound up U down D".
B6=2001:db8::3
C6=2001:db8::4 # pod C, outside the mesh

snap "$tmp/v0"
fa0=$(wc -l <"$state/a/meshfwd.log")
fb0=$(wc -l <"$state/b/meshfwd.log")
bytes_exact ipv6-bytes-exact "$B6" 6 meshA6 "$tmp/v6.out"
conns6=$mc_conns sent6=$mc_sent recv6=$mc_recv
mf_wait a "$fa0" "$conns6"
mf_wait b "$fb0" "$conns6"
snap "$tmp/v1"
mf_lines a "$fa0" >"$tmp/fa"
mf_lines b "$fb0" >"$tmp/fb"
# every connection: app -> [B6]:6379, proxy A -> [B6]:6379, proxy B (taking
# the original destination from the REDIRECT) -> [::1]:6379; proxy B's client
# is proxy A's own connection; every byte through both
bad=$(awk -v b="[$B6]:6379" '$4 != b || $8 != b || $9 != "outbound"' "$tmp/fa" | head -n 3)
badb=$(awk -v b="[$B6]:6379" '$4 != b || $8 != "[::1]:6379" || $9 != "inbound"' "$tmp/fb" | head -n 3)
chain=$(awk 'NR == FNR { via[$6] = 1; next } !($2 in via)' "$tmp/fa" "$tmp/fb" | head -n 3)
bytes="$(mf_sum "$tmp/fa" up outbound) $(mf_sum "$tmp/fa" down outbound) $(mf_sum "$tmp/fb" up inbound) $(mf_sum "$tmp/fb" down inbound)"
if [ "$conns6" -gt 0 ] && [ "$(wc -l <"$tmp/fa")" = "$conns6" ] && [ "$(wc -l <"$tmp/fb")" = "$conns6" ] &&
	[ -z "$bad$badb$chain" ] && [ "$bytes" = "$sent6 $recv6 $sent6 $recv6" ]; then
	ok ipv6-original-destination
	note "proxy A: $(head -n 1 "$tmp/fa")"
	note "proxy B: $(head -n 1 "$tmp/fb")"
else
	note "proxy A log:"
	sed 's/^/      /' "$tmp/fa"
	note "proxy B log:"
	sed 's/^/      /' "$tmp/fb"
	fail ipv6-original-destination "want $conns6 connections, each app -> [$B6]:6379 -> proxy A -> proxy B -> [::1]:6379, $sent6 B up and $recv6 B down through both (proxies: up/down A, up/down B: $bytes)"
fi
# hops 1 and 2 carry what the proxies counted, hop 3 the same again
hop6=$(($(mf_sum "$tmp/fa" up outbound) + $(mf_sum "$tmp/fa" down outbound) +
	2 * ($(mf_sum "$tmp/fb" up inbound) + $(mf_sum "$tmp/fb" down inbound))))
br=$(delta "$tmp/v0" "$tmp/v1" bytes_redirected)
mr=$(delta "$tmp/v0" "$tmp/v1" msgs_redirected)
mp=$(delta "$tmp/v0" "$tmp/v1" msgs_passed)
nat=$(delta "$tmp/v0" "$tmp/v1" peers_paired_nat)
if ratio_ok "$br" "$hop6" && ratio_ok "$mr" $((mr + mp)) && [ "$nat" -ge $((2 * conns6)) ]; then
	ok ipv6-hops-redirected
	note "hop bytes $hop6, redirected $br ($(pct "$br" "$hop6") %); msgs redirected $mr, passed $mp; peers_paired_nat +$nat for $conns6 connections"
else
	fail ipv6-hops-redirected "$(pct "$br" "$hop6") % of the hops' bytes and $(pct "$mr" $((mr + mp))) % of the messages redirected (bar: 95 %); peers_paired_nat +$nat (want at least $((2 * conns6)): hops 1 and 2 of each connection)"
fi

why=
fa0=$(wc -l <"$state/a/meshfwd.log")
for f in 100b 64k 256k 1m; do
	want=$(sha256sum <"$state/b/www/$f" | cut -d' ' -f1)
	got=$($M exec a curl -sf "http://[$B6]:8080/$f" | sha256sum | cut -d' ' -f1)
	[ "$want" = "$got" ] || why="$why $f;"
done
mf_wait a "$fa0" 4
n6=$(mf_lines a "$fa0" | awk -v b="[$B6]:8080" '$4 == b && $9 == "outbound"' | wc -l)
if [ -z "$why" ] && [ "$n6" = 4 ]; then
	ok ipv6-http-bodies-exact
else
	fail ipv6-http-bodies-exact "sha256 differs for:${why:- none}; proxy A saw $n6 of 4 requests to [$B6]:8080"
fi

# A dual-stack service: IPv4 and IPv6 clients of pod B's redis at once, each
# through its family's sidecars, keys apart, both redirected.
snap "$tmp/d0"
hstat b "$tmp/db0"
fb0=$(wc -l <"$state/b/meshfwd.log")
$M exec a "$check" -t 3 -r 3 -m 65536 -s 7 -k dual4 "$B" 6379 >"$tmp/d4.out" 2>&1 &
p4=$!
$M exec a "$check" -t 3 -r 3 -m 65536 -s 8 -k dual6 "$B6" 6379 >"$tmp/d6.out" 2>&1
r6=$?
wait $p4
r4=$?
c4=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/d4.out")
c6=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/d6.out")
mf_wait b "$fb0" "${c6:-1}"
sleep 0.3 # HAProxy counts a connection when it has closed both sides
snap "$tmp/d1"
hstat b "$tmp/db1"
h4=$(hdelta "$tmp/db0" "$tmp/db1" inbound FRONTEND stot)
m6=$(mf_lines b "$fb0" | awk '$9 == "inbound"' | wc -l)
k4=$($M exec b redis-cli -h 127.0.0.1 --scan --pattern 'dual4:*' | wc -l)
k6=$($M exec b redis-cli -h ::1 --scan --pattern 'dual6:*' | wc -l)
dr=$(delta "$tmp/d0" "$tmp/d1" msgs_redirected)
dp=$(delta "$tmp/d0" "$tmp/d1" msgs_passed)
if [ $r4 = 0 ] && [ $r6 = 0 ] && [ "${c4:-0}" -gt 0 ] && [ "$h4" = "$c4" ] && [ "$m6" = "$c6" ] &&
	[ "$k4" -gt 0 ] && [ "$k6" -gt 0 ] && ratio_ok "$dr" $((dr + dp)); then
	ok dual-stack-service
	note "IPv4: $(tail -n 1 "$tmp/d4.out")"
	note "IPv6: $(tail -n 1 "$tmp/d6.out")"
	note "HAProxy B inbound +$h4, meshfwd B inbound +$m6; keys dual4 $k4, dual6 $k6; msgs redirected $dr, passed $dp"
else
	sed 's/^/    4: /' "$tmp/d4.out"
	sed 's/^/    6: /' "$tmp/d6.out"
	fail dual-stack-service "exit $r4/$r6; connections v4 ${c4:-?} (HAProxy B saw $h4), v6 ${c6:-?} (meshfwd B saw $m6); keys $k4/$k6; $(pct "$dr" $((dr + dp))) % of messages redirected"
fi

# --- the pod outside the mesh is untouched ----------------------------------
snap "$tmp/o0"
if $M exec c "$check" -n 12 -m 65536 -r 3 -k podC 127.0.0.1 6379 >"$tmp/c.out" 2>&1; then
	snap "$tmp/o1"
	# pod C's own traffic (loopback, its cgroup not attached): no counter moves
	if cmp -s "$tmp/o0" "$tmp/o1"; then
		ok outside-untouched
	else
		diff "$tmp/o0" "$tmp/o1" | sed 's/^/    /'
		fail outside-untouched "the counters moved for pod C's own traffic"
	fi
else
	sed 's/^/    /' "$tmp/c.out"
	fail outside-untouched "pod C's traffic failed"
fi

# --- a client outside the mesh, a server inside ---------------------------------
# pod C -> pod B: B's PREROUTING sends it to proxy B, whose accepted socket
# has no peer in the map (counted as peers_unpaired, not as a NAT miss); the
# hop proxy B -> app B pairs as usual. Bytes exact.
snap "$tmp/x0"
hstat b "$tmp/xb0"
if $M exec c "$check" -n 12 -m 65536 -r 4 -s 5 -k fromC "$B" 6379 >"$tmp/x.out" 2>&1; then
	sleep 0.3
	snap "$tmp/x1"
	hstat b "$tmp/xb1"
	set -- $(sed -n 's/^meshcheck: ok: \([0-9]*\) pairs, \([0-9]*\) connections, .*/\2/p' "$tmp/x.out")
	xc=${1:-0}
	hop3=$(($(hdelta "$tmp/xb0" "$tmp/xb1" local_app BACKEND bin) + $(hdelta "$tmp/xb0" "$tmp/xb1" local_app BACKEND bout)))
	un=$(delta "$tmp/x0" "$tmp/x1" peers_unpaired)
	nat=$(delta "$tmp/x0" "$tmp/x1" peers_paired_nat)
	xbr=$(delta "$tmp/x0" "$tmp/x1" bytes_redirected)
	if [ "$xc" -gt 0 ] && [ "$un" = "$xc" ] && [ "$nat" = 0 ] && [ "$xbr" = "$hop3" ]; then
		ok outside-client-counted-apart
		note "$(tail -n 1 "$tmp/x.out"); peers_unpaired +$un, bytes_redirected +$xbr (= hop proxy B -> app B)"
	else
		fail outside-client-counted-apart "$xc connections from pod C: peers_unpaired +$un (want $xc), peers_paired_nat +$nat (want 0), bytes_redirected +$xbr (want the $hop3 B of hop 3)"
	fi
else
	sed 's/^/    /' "$tmp/x.out"
	fail outside-client-counted-apart "pod C -> pod B through B's sidecar failed"
fi

# the same over IPv6: pod C -> [B6]:6379, B's ip6tables PREROUTING sends it
# to meshfwd B (15006), whose accepted socket has no peer (peers_unpaired);
# the hop meshfwd B -> [::1]:6379 pairs, and carries what meshfwd logged
snap "$tmp/y0"
fb0=$(wc -l <"$state/b/meshfwd.log")
if $M exec c "$check" -n 12 -m 65536 -r 4 -s 6 -k fromC6 "$B6" 6379 >"$tmp/y.out" 2>&1; then
	set -- $(sed -n 's/^meshcheck: ok: \([0-9]*\) pairs, \([0-9]*\) connections, .*/\2/p' "$tmp/y.out")
	yc=${1:-0}
	mf_wait b "$fb0" "$yc"
	snap "$tmp/y1"
	mf_lines b "$fb0" >"$tmp/fy"
	cip=$C6
	notc=$(awk -v c="[$cip]" 'index($2, c) != 1 || $9 != "inbound" || $8 != "[::1]:6379"' "$tmp/fy" | head -n 3)
	hop3=$(($(mf_sum "$tmp/fy" up inbound) + $(mf_sum "$tmp/fy" down inbound)))
	un=$(delta "$tmp/y0" "$tmp/y1" peers_unpaired)
	nat=$(delta "$tmp/y0" "$tmp/y1" peers_paired_nat)
	ybr=$(delta "$tmp/y0" "$tmp/y1" bytes_redirected)
	if [ "$yc" -gt 0 ] && [ "$(wc -l <"$tmp/fy")" = "$yc" ] && [ -z "$notc" ] &&
		[ "$un" = "$yc" ] && [ "$nat" = 0 ] && [ "$ybr" = "$hop3" ]; then
		ok outside-client6-counted-apart
		note "$(tail -n 1 "$tmp/y.out"); meshfwd B: $(head -n 1 "$tmp/fy"); peers_unpaired +$un, bytes_redirected +$ybr (= hop meshfwd B -> [::1]:6379)"
	else
		sed 's/^/      /' "$tmp/fy"
		fail outside-client6-counted-apart "$yc connections from pod C ([$cip]): meshfwd B logged $(wc -l <"$tmp/fy") (from pod C, inbound to [::1]:6379: ${notc:-all}), peers_unpaired +$un (want $yc), peers_paired_nat +$nat (want 0), bytes_redirected +$ybr (want the $hop3 B of hop 3)"
	fi
else
	sed 's/^/    /' "$tmp/y.out"
	fail outside-client6-counted-apart "pod C -> [$B6]:6379 through B's IPv6 sidecar failed"
fi

# --- excluded ports are untouched --------------------------------------------
# the proxy's admin port (loopback) and pod B's readiness port reached by
# proxy A (uid 1337: no REDIRECT on either side)
snap "$tmp/e0"
why=
for i in 1 2 3; do
	$M exec a curl -sf -o /dev/null 'http://127.0.0.1:15000/stats' || why="$why admin;"
	$M exec a setpriv --reuid=1337 --regid=1337 --clear-groups \
		curl -sf -o /dev/null "http://$B:15021/healthz/ready" || why="$why readiness;"
done
snap "$tmp/e1"
moved=
for k in sockets_added msgs_redirected msgs_passed bytes_redirected peer_misses sockets; do
	[ "$(delta "$tmp/e0" "$tmp/e1" $k)" = 0 ] || moved="$moved $k +$(delta "$tmp/e0" "$tmp/e1" $k)"
done
if [ -z "$why$moved" ]; then
	ok excluded-ports-untouched
	note "sockets_skipped +$(delta "$tmp/e0" "$tmp/e1" sockets_skipped) for 6 connections (12 ends) to 15000 and 15021"
else
	fail excluded-ports-untouched "requests failed:${why:- none}; counters moved:${moved:- none}"
fi

# --- two pods on the same loopback ports never cross ---------------------------
# pod A and pod B each run redis on 127.0.0.1:6379 and [::1]:6379; both write
# their own keys at once, on many connections with the same local addresses
# and ports; once over IPv4 loopback, once over IPv6 loopback.
for lo in 127.0.0.1 ::1; do
	[ "$lo" = ::1 ] && t=loopback6-pods-isolated ka=podA6 kb=podB6 ||
		t=loopback-pods-isolated ka=podA kb=podB
	snap "$tmp/l0"
	$M exec a "$check" -t 3 -r 2 -m 4096 -s 2 -k $ka $lo 6379 >"$tmp/la.out" 2>&1 &
	pa=$!
	$M exec b "$check" -t 3 -r 2 -m 4096 -s 3 -k $kb $lo 6379 >"$tmp/lb.out" 2>&1
	rb=$?
	wait $pa
	ra=$?
	snap "$tmp/l1"
	mine_a=$($M exec a redis-cli -h $lo --scan --pattern "$ka:*" | wc -l)
	theirs_a=$($M exec a redis-cli -h $lo --scan --pattern "$kb:*" | wc -l)
	mine_b=$($M exec b redis-cli -h $lo --scan --pattern "$kb:*" | wc -l)
	theirs_b=$($M exec b redis-cli -h $lo --scan --pattern "$ka:*" | wc -l)
	lr=$(delta "$tmp/l0" "$tmp/l1" msgs_redirected)
	if [ $ra = 0 ] && [ $rb = 0 ] && [ "$mine_a" -gt 0 ] && [ "$mine_b" -gt 0 ] &&
		[ "$theirs_a" = 0 ] && [ "$theirs_b" = 0 ] && [ "$lr" -gt 0 ]; then
		ok $t
		note "A: $(tail -n 1 "$tmp/la.out")"
		note "B: $(tail -n 1 "$tmp/lb.out"); $lr msgs redirected"
	else
		sed 's/^/    A: /' "$tmp/la.out"
		sed 's/^/    B: /' "$tmp/lb.out"
		fail $t "over $lo: pod A holds $mine_a of its keys and $theirs_a of B's, pod B $mine_b and $theirs_b; $lr msgs redirected"
	fi
done

# --- a pod starts and stops under load ------------------------------------------
# A client loop from pod A to pod B (small values, a new connection every 10
# pairs: 20 messages, not "short", so the short-connection rule, which would
# skip the port's next connections and D's with them, stays out of it) runs
# while pod D joins the mesh (mesh.sh pod start d: netns, a cgroup under the
# attached parent, istio-init's rules, sidecars), opens its first
# connections the moment its sidecars listen, and leaves (pod stop d); twice,
# the second time with the same cgroup path and addresses. Each time: D's
# first connections are bytes exact over IPv4 (values up to 1 MiB: D's hops
# carry most of the window's bytes) and then IPv6, with the original
# destination in D's IPv6 sidecar log; bytes_redirected covers 95 % of what
# every hop of the window carried (HAProxy A's, B's and D's counts), so D's
# hops were redirected from its first connection; D leaves no netns or
# cgroup. The loop never fails.
$M exec a "$check" -t 60 -r 10 -m 256 -s 12 -k churn -f "$tmp/churn.stop" "$B" 6379 >"$tmp/churn.out" 2>&1 &
churn_pid=$!
why=
notes=
cgd=$(sm_cgroup2_mount)/sockmesh-mesh-$name/mesh/pod-d
for r in 1 2; do
	snap "$tmp/p0"
	hstat a "$tmp/pa0"
	hstat b "$tmp/pb0"
	if ! $M pod start d >"$tmp/podd.log" 2>&1; then
		sed 's/^/    /' "$tmp/podd.log"
		why="$why round $r: pod start d failed;"
		break
	fi
	if ! $M exec d "$check" -n 32 -r 4 -m 1048576 -s $((20 + r)) -k podD$r "$B" 6379 >"$tmp/pd.out" 2>&1; then
		sed 's/^/    /' "$tmp/pd.out"
		why="$why round $r: pod D's first IPv4 connections failed;"
	fi
	set -- $(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/pd.out")
	hwait d outbound "${1:-1}"
	snap "$tmp/p1"
	hstat a "$tmp/pa1"
	hstat b "$tmp/pb1"
	hstat d "$tmp/pd1" # a new HAProxy: its counts start at 0
	hop=$(($(hops "$tmp/pa0" "$tmp/pb0" "$tmp/pa1" "$tmp/pb1") +
		$(hval "$tmp/pd1" outbound FRONTEND bin) + $(hval "$tmp/pd1" outbound FRONTEND bout)))
	br=$(delta "$tmp/p0" "$tmp/p1" bytes_redirected)
	dsess=$(hval "$tmp/pd1" outbound FRONTEND stot)
	[ "${1:-0}" -gt 0 ] && [ "$dsess" = "$1" ] ||
		why="$why round $r: HAProxy D saw $dsess sessions for ${1:-no} connections;"
	ratio_ok "$br" "$hop" ||
		why="$why round $r: $(pct "$br" "$hop") % of the window's hop bytes redirected (short_skipped +$(delta "$tmp/p0" "$tmp/p1" short_skipped));"
	notes="$notes round $r: D $(sed -n 's/^meshcheck: ok: //p' "$tmp/pd.out"), D hop bytes $((3 * $(hval "$tmp/pd1" outbound FRONTEND bin) + 3 * $(hval "$tmp/pd1" outbound FRONTEND bout))) of $hop, redirected $(pct "$br" "$hop") %;"
	if $M exec d "$check" -n 8 -r 4 -m 65536 -s $((30 + r)) -k podD6$r "$B6" 6379 >"$tmp/pd6.out" 2>&1; then
		mf_wait d 0 2
		bad=$(awk -v b="[$B6]:6379" '$1 == "conn" && ($4 != b || $9 != "outbound")' "$state/d/meshfwd.log" | head -n 2)
		n6=$(grep -c '^conn ' "$state/d/meshfwd.log")
		[ "$n6" -ge 2 ] && [ -z "$bad" ] ||
			why="$why round $r: meshfwd D logged $n6 connections (${bad:-to [$B6]:6379});"
	else
		sed 's/^/    /' "$tmp/pd6.out"
		why="$why round $r: pod D's first IPv6 connections failed;"
	fi
	$M pod stop d >"$tmp/podd.log" 2>&1 || why="$why round $r: pod stop d failed: $(cat "$tmp/podd.log");"
	[ ! -e "/run/netns/smesh-$name-d" ] || why="$why round $r: pod D's netns is left;"
	[ ! -e "$cgd" ] || why="$why round $r: pod D's cgroup is left;"
done
: >"$tmp/churn.stop"
wait $churn_pid
crc=$?
churn_pid=
if [ $crc = 0 ] && [ -z "$why" ]; then
	ok pods-start-stop-under-load
	note "loop A -> B: $(tail -n 1 "$tmp/churn.out")"
	note "${notes# }"
else
	sed 's/^/    /' "$tmp/churn.out"
	fail pods-start-stop-under-load "the loop's exit status $crc;${why:- }"
fi

# --- sockmesh started, stopped, unloaded under a running mesh --------------------
# A client loop (new connection every 3 pairs) runs from pod A through both
# sidecars while the daemon goes: stop (SIGTERM, on_exit = keep), start on
# the kept pins, `sockmesh unload` (the daemon running: it detaches and
# exits), start, stop, `sockmesh unload` (no daemon), start, `sockmesh reload`
# twice; then the loops are told to finish (a stop file: each ends after the
# pair in flight). Two loops, IPv4 and IPv6. No request may fail.
pins=/sys/fs/bpf/sockmesh-mesh-$name
$M exec a "$check" -t 60 -r 3 -m 65536 -s 4 -k life -f "$tmp/life.stop" "$B" 6379 >"$tmp/life.out" 2>&1 &
loop_pid=$!
$M exec a "$check" -t 60 -r 3 -m 65536 -s 9 -k life6 -f "$tmp/life.stop" "$B6" 6379 >"$tmp/life6.out" 2>&1 &
loop6_pid=$!
t0=$(date +%s.%N)
why=
step() {
	sleep 1.2
	echo "at $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }') s: accel $1" >>"$tmp/life.log"
	$M accel "$1" >>"$tmp/life.log" 2>&1 || why="$why accel $1 failed;"
}
step stop
[ -d "$pins" ] || why="$why on_exit = keep removed the pins;"
step on
sleep 1.2
dpid=$("$build/sockmesh" status --json -c "$conf" | jq -r '.daemon_pid // empty')
echo "at $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }') s: sockmesh unload, daemon pid $dpid running" >>"$tmp/life.log"
"$build/sockmesh" unload -c "$conf" >>"$tmp/life.log" 2>&1 || why="$why sockmesh unload (daemon running) failed;"
i=0
while [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -n "$dpid" ] && ! kill -0 "$dpid" 2>/dev/null || why="$why the daemon (pid $dpid) did not exit on unload;"
[ ! -d "$pins" ] || why="$why unload (daemon running) left $pins;"
step on
step stop
step off
[ ! -d "$pins" ] || why="$why unload left $pins;"
step on
for i in 1 2; do
	sleep 1.2
	echo "at $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }') s: sockmesh reload" >>"$tmp/life.log"
	"$build/sockmesh" reload -c "$conf" >>"$tmp/life.log" 2>&1 || why="$why sockmesh reload failed;"
done
sleep 1.5
snap "$tmp/life-c"
: >"$tmp/life.stop"
wait $loop_pid
lrc=$?
loop_pid=
wait $loop6_pid
lrc6=$?
loop6_pid=
churn_pid=
if [ $lrc = 0 ] && [ $lrc6 = 0 ] && [ -z "$why" ] && [ "$(val "$tmp/life-c" sockets_added)" -gt 0 ]; then
	ok lifecycle-no-request-fails
	note "IPv4: $(tail -n 1 "$tmp/life.out")"
	note "IPv6: $(tail -n 1 "$tmp/life6.out")"
	note "after the last start: sockets_added $(val "$tmp/life-c" sockets_added), msgs_redirected $(val "$tmp/life-c" msgs_redirected)"
else
	sed 's/^/    /' "$tmp/life.out" "$tmp/life6.out" "$tmp/life.log"
	fail lifecycle-no-request-fails "client exit status $lrc (IPv4), $lrc6 (IPv6);${why:- }; sockets_added after restart: $(val "$tmp/life-c" sockets_added)"
fi

# --- down leaves nothing -----------------------------------------------------
down_clean mesh-down-clean

echo "    tests/mesh/run.sh took $(($(date +%s) - start)) s"
echo "mesh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
