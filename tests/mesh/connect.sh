#!/bin/sh
# connect.sh BUILD - the iptables-free part of `make test`'s mesh suite:
# the sidecar mesh of scripts/mesh/mesh.sh (`up connect`: HAProxy and
# meshfwd sidecars, uid 1337) with no iptables rule in any pod; sockmeshd's
# `[mesh] mode = connect` programs capture instead (docs/mesh.md, "The
# iptables-free mode"). A private sockmeshd made from
# conf/examples/istio.ini plus that section. Each check ends with
# "ok   NAME" or "FAIL NAME: why"; the last line is
#
#	connect: N passed, M failed
#
# IPv4, IPv6 and both at once. Needs root, Linux 5.15 or later (the mode's
# programs; older kernels refuse it, and so does this suite), and what
# scripts/setup.sh installs (haproxy, redis, nginx-light, curl, iptables,
# jq, python3).
set -u
build=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. tests/mesh/lib.sh
build=$(cd "$build" && pwd) || exit 1
export SOCKMESH_BUILD="$build"
name=c$$
M="scripts/mesh/mesh.sh -n $name"
check=$build/tests/meshcheck
# Debian's python3 (a python3 of root's own, earlier in PATH, may be
# closed to the sidecar's uid)
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
view="$py tests/mesh/appview.py"
A=198.18.0.2 B=198.18.0.3 C=198.18.0.4 D=198.18.0.5
A6=2001:db8::2 B6=2001:db8::3 D6=2001:db8::5
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-connect.XXXXXX") || exit 1
passed=0
failed=0
loop_pid=
start=$(date +%s)

x_pid=
cleanup() {
	ip netns del "smesh-$name-x" 2>/dev/null
	suite_cleanup $loop_pid $x_pid
}
trap cleanup EXIT
trap 'exit 130' INT TERM

summary() { echo "connect: $passed passed, $failed failed"; }
conf=

# mstat FILE : the mesh object's figures (status --json .mesh) as "name value"
mstat() {
	"$build/sockmesh" status --json -c "$conf" 2>/dev/null |
		jq -r '.mesh | to_entries[] | "\(.key) \(.value)"' >"$1"
}
# lines POD FILE FROM : the proxy log FILE (haproxy or meshfwd) of POD after line FROM
lines() { tail -n +$(($3 + 1)) "$state/$1/$2.log" | grep '^conn '; }
# nrules POD : rules of every table, both families, nft and legacy, in POD
nrules() {
	for t in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
		ip netns exec "smesh-$name-$1" $t 2>/dev/null
	done | grep -c '^-A'
}

for c in haproxy redis-server redis-cli nginx curl jq ip setpriv python3 iptables-legacy; do
	if ! command -v $c >/dev/null; then
		fail setup "$c is not installed (scripts/setup.sh installs it)"
		summary
		exit 1
	fi
done

# --- the mesh, no rule in it ------------------------------------------------
# The pods first, then sockmeshd; `accel on` runs the kubelet's readiness
# probes (mesh.sh probe), which tell the programs which pods are meshed.
if ! $M up connect >"$tmp/up.log" 2>&1 || ! $M accel on >"$tmp/accel.log" 2>&1; then
	dlog=$(dirname "$($M conf 2>/dev/null)")/sockmeshd.log
	if grep -q 'the mode needs Linux 5.15' "$dlog" 2>/dev/null; then
		# the one skip: a kernel without the mode's helpers
		echo "skip connect-*: $(uname -r) lacks what [mesh] mode = connect needs: $(grep -o 'cannot load its programs: .*' "$dlog" | head -n 1)"
		echo "connect: 0 passed, 0 failed, 1 skipped"
		exit 0
	fi
	sed 's/^/    /' "$tmp/up.log" "$tmp/accel.log" "$(dirname "$($M conf 2>/dev/null)")/sockmeshd.log" 2>/dev/null
	fail connect-up "mesh.sh up connect, accel on failed"
	summary
	exit 1
fi
conf=$($M conf)
state=$(dirname "$conf")
mstat "$tmp/m0"
r=0
for pod in a b c; do r=$((r + $(nrules $pod))); done
if [ "$(val "$tmp/m0" mode)" = connect ] && [ "$(val "$tmp/m0" pods)" = 4 ] && [ $r = 0 ]; then
	ok connect-up
	note "no iptables or ip6tables rule (nft or legacy) in pods a, b, c; mesh: $(tr '\n' ' ' <"$tmp/m0")"
else
	sed 's/^/    /' "$tmp/m0"
	fail connect-up "mode $(val "$tmp/m0" mode) (want connect), $(val "$tmp/m0" pods) meshed pod addresses (want 4: a and b, both families), $r iptables rules in the pods (want 0)"
fi

# --- bytes exact, the original destination, every hop redirected -----------
snap "$tmp/c0"
mstat "$tmp/m0"
hstat a "$tmp/a0"
hstat b "$tmp/b0"
la0=$(wc -l <"$state/a/haproxy.log")
lb0=$(wc -l <"$state/b/haproxy.log")
bytes_exact connect-bytes-exact "$B" 1 conA "$tmp/check.out"
conns=$mc_conns
hwait a outbound "$(($(hval "$tmp/a0" outbound FRONTEND stot) + conns))"
hwait b inbound "$(($(hval "$tmp/b0" inbound FRONTEND stot) + conns))"
snap "$tmp/c1"
mstat "$tmp/m1"
hstat a "$tmp/a1"
hstat b "$tmp/b1"

# proxy A got each connection from the app's pod address (as a REDIRECT
# leaves it) with B:6379 as its original destination and connected there;
# proxy B got that very connection on 15006 with B:6379 as its original
# destination and connected to the app on that port
lines a haproxy "$la0" | awk -v a="$A:" -v b="$B:6379" \
	'index($2, a) == 1 && $4 == b && index($6, a) == 1 && $8 == b && $9 == "outbound"' >"$tmp/la"
lines b haproxy "$lb0" | awk -v a="$A:" -v b="$B:6379" \
	'index($2, a) == 1 && $4 == b && $8 == "127.0.0.1:6379" && $9 == "inbound"' >"$tmp/lb"
out=$(delta "$tmp/m0" "$tmp/m1" outbound)
in=$(delta "$tmp/m0" "$tmp/m1" inbound)
ans=$(delta "$tmp/m0" "$tmp/m1" answered)
if [ "$conns" -gt 0 ] && [ "$(wc -l <"$tmp/la")" = "$conns" ] && [ "$(wc -l <"$tmp/lb")" = "$conns" ] &&
	[ "$out" = "$conns" ] && [ "$in" = "$conns" ] && [ "$ans" = $((2 * conns)) ]; then
	ok connect-original-destination
	note "proxy A: $(head -n 1 "$tmp/la")"
	note "proxy B: $(head -n 1 "$tmp/lb")"
	note "mesh: outbound +$out, inbound +$in, SO_ORIGINAL_DST answered +$ans for $conns connections"
else
	lines a haproxy "$la0" | sed 's/^/    A: /'
	lines b haproxy "$lb0" | sed 's/^/    B: /'
	fail connect-original-destination "want $conns connections app A -> proxy A ($A:*, orig $B:6379) -> proxy B (orig $B:6379) -> 127.0.0.1:6379: proxy A logged $(wc -l <"$tmp/la"), proxy B $(wc -l <"$tmp/lb"); mesh outbound +$out, inbound +$in, answered +$ans (want $((2 * conns)))"
fi

hop=$(hops "$tmp/a0" "$tmp/b0" "$tmp/a1" "$tmp/b1")
br=$(delta "$tmp/c0" "$tmp/c1" bytes_redirected)
mr=$(delta "$tmp/c0" "$tmp/c1" msgs_redirected)
mp=$(delta "$tmp/c0" "$tmp/c1" msgs_passed)
if ratio_ok "$br" "$hop" && ratio_ok "$mr" $((mr + mp)); then
	ok connect-hops-redirected
	note "hop bytes $hop, redirected $br ($(pct "$br" "$hop") %); msgs redirected $mr, passed $mp; peers_paired +$(delta "$tmp/c0" "$tmp/c1" peers_paired), peers_paired_nat +$(delta "$tmp/c0" "$tmp/c1" peers_paired_nat)"
else
	fail connect-hops-redirected "$(pct "$br" "$hop") % of the hops' bytes ($br of $hop) and $(pct "$mr" $((mr + mp))) % of the messages redirected (bar: 95 %)"
fi

# --- IPv6 and dual stack ----------------------------------------------------
# pod A -> [B6]:6379 through the IPv6 sidecars (meshfwd reads
# IP6T_SO_ORIGINAL_DST), while IPv4 clients of the same service run
fa0=$(wc -l <"$state/a/meshfwd.log")
fb0=$(wc -l <"$state/b/meshfwd.log")
snap "$tmp/v0"
$M exec a "$check" -t 3 -r 3 -m 65536 -s 7 -k dual4 "$B" 6379 >"$tmp/d4.out" 2>&1 &
p4=$!
$M exec a "$check" -n 24 -r 6 -m 1048576 -s 8 -k dual6 "$B6" 6379 >"$tmp/d6.out" 2>&1
r6=$?
wait $p4
r4=$?
c6=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/d6.out")
mf_wait a "$fa0" "${c6:-1}"
mf_wait b "$fb0" "${c6:-1}"
snap "$tmp/v1"
mf_lines a "$fa0" | awk -v a="[$A6]:" -v b="[$B6]:6379" \
	'index($2, a) == 1 && $4 == b && $8 == b && $9 == "outbound"' >"$tmp/fa"
mf_lines b "$fb0" | awk -v a="[$A6]:" -v b="[$B6]:6379" \
	'index($2, a) == 1 && $4 == b && $8 == "[::1]:6379" && $9 == "inbound"' >"$tmp/fb"
hop6=$(($(mf_sum "$tmp/fa" up outbound) + $(mf_sum "$tmp/fa" down outbound) +
	$(mf_sum "$tmp/fb" up inbound) + $(mf_sum "$tmp/fb" down inbound)))
mr=$(delta "$tmp/v0" "$tmp/v1" msgs_redirected)
mp=$(delta "$tmp/v0" "$tmp/v1" msgs_passed)
if [ $r4 = 0 ] && [ $r6 = 0 ] && [ "${c6:-0}" -gt 0 ] && [ "$(wc -l <"$tmp/fa")" = "$c6" ] &&
	[ "$(wc -l <"$tmp/fb")" = "$c6" ] && ratio_ok "$mr" $((mr + mp)); then
	ok connect-ipv6-dual-stack
	note "IPv6: $(tail -n 1 "$tmp/d6.out")"
	note "IPv4 at once: $(tail -n 1 "$tmp/d4.out")"
	note "meshfwd A: $(head -n 1 "$tmp/fa")"
	note "meshfwd B: $(head -n 1 "$tmp/fb"); both sidecars carried $hop6 B; msgs redirected $mr, passed $mp"
else
	sed 's/^/    /' "$tmp/d6.out" "$tmp/d4.out"
	mf_lines a "$fa0" | sed 's/^/    A: /'
	mf_lines b "$fb0" | sed 's/^/    B: /'
	fail connect-ipv6-dual-stack "exit $r6 (IPv6), $r4 (IPv4); want ${c6:-?} connections app A ([$A6]) -> meshfwd A (orig [$B6]:6379) -> meshfwd B -> [::1]:6379: A logged $(wc -l <"$tmp/fa"), B $(wc -l <"$tmp/fb"); $(pct "$mr" $((mr + mp))) % of messages redirected"
fi

# --- what the application sees ----------------------------------------------
# the peer it asked for and its own pod address, as through istio-init's
# REDIRECT (cgroup getpeername programs; the app's connect goes to the
# sidecar at the pod's own address): IPv4, IPv6 and IPv4-mapped on an
# AF_INET6 socket
why=
for t in "$B $B $A" "$B6 $B6 $A6" "::ffff:$B ::ffff:$B ::ffff:$A"; do
	set -- $t
	got=$($M exec a $view view "$1" 6379 2>&1)
	[ "$got" = "peer $2 6379 sock $3 pong OK" ] || why="$why connect to $1: '$got' (want peer $2 6379 sock $3 pong OK);"
done
# SO_ORIGINAL_DST of a connection nobody redirected, TCP_INFO, SO_RCVBUF:
# what the kernel answers, as in pod C (outside the mesh's cgroups)
oa=$($M exec a $view opts 127.0.0.1 6379 2>&1)
oc=$($M exec c $view opts 127.0.0.1 6379 2>&1)
[ "$oa" = "$oc" ] && case $oa in "original_dst error "*) ;; *) false ;; esac ||
	why="$why getsockopt in pod A '$oa', in pod C '$oc';"
if [ -z "$why" ]; then
	ok connect-app-view
	note "peer and own address as asked for (IPv4, IPv6, ::ffff:); getsockopt untouched: $oa"
else
	fail connect-app-view "$why"
fi

# --- iptables' own getsockopt() calls ----------------------------------------
# iptables-legacy reads its table with getsockopt(IPT_SO_GET_INFO,
# IPT_SO_GET_ENTRIES): a ruleset larger than a page, listed by a process in
# pod A's cgroup, is the one listed from outside any mesh cgroup. A chain
# of the filter table, made for this check and removed after it.
ns=smesh-$name-a
why=
ip netns exec $ns iptables-legacy -N SMTEST || why="iptables-legacy -N failed;"
i=0
while [ $i -lt 200 ] && [ -z "$why" ]; do
	ip netns exec $ns iptables-legacy -A SMTEST -p tcp --dport $((20000 + i)) -j RETURN || why="iptables-legacy -A failed;"
	i=$((i + 1))
done
ip netns exec $ns iptables-legacy-save -t filter 2>&1 | grep -v '^#' >"$tmp/ipt-out"
$M exec a iptables-legacy-save -t filter 2>&1 | grep -v '^#' >"$tmp/ipt-in"
$M exec a iptables-legacy -L SMTEST -n >/dev/null 2>"$tmp/ipt-err" || why="$why iptables-legacy -L in pod A's cgroup: $(head -n 1 "$tmp/ipt-err");"
n=$(grep -c '^-A SMTEST' "$tmp/ipt-in")
cmp -s "$tmp/ipt-out" "$tmp/ipt-in" || why="$why the listings differ;"
ip netns exec $ns iptables-legacy -F SMTEST
ip netns exec $ns iptables-legacy -X SMTEST
if [ -z "$why" ] && [ "$n" = 200 ]; then
	ok connect-iptables-getsockopt
	note "iptables-legacy-save in pod A's cgroup: the same $n rules ($(wc -c <"$tmp/ipt-in") B) as outside it"
else
	diff "$tmp/ipt-out" "$tmp/ipt-in" | head -n 5 | sed 's/^/    /'
	fail connect-iptables-getsockopt "${why:-} $n of 200 rules listed"
fi

# --- outside the mesh ---------------------------------------------------------
# pod A -> pod C (no sidecar): through A's sidecar only; pod C (not in the
# mesh's cgroups) -> pod B: straight to B's app, no sidecar on the way (the
# mode captures at the connecting end: docs/mesh.md); a pod without a
# sidecar inside the mesh's cgroups (pod C's netns, a process in pod A's
# cgroup: a pod the mesh did not inject) -> pod B: into B's sidecar, as
# B's PREROUTING rule would send it; all bytes exact
hstat a "$tmp/oa0"
hstat b "$tmp/ob0"
la0=$(wc -l <"$state/a/haproxy.log")
lb0=$(wc -l <"$state/b/haproxy.log")
mstat "$tmp/om0"
why=
$M exec a "$check" -n 8 -r 4 -s 5 -k toC "$C" 6379 >"$tmp/toc.out" 2>&1 || why="A -> C failed;"
$M exec c "$check" -n 8 -r 4 -s 6 -k fromC "$B" 6379 >"$tmp/fromc.out" 2>&1 || why="$why C -> B failed;"
nc=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/toc.out")
hwait a outbound "$(($(hval "$tmp/oa0" outbound FRONTEND stot) + ${nc:-0}))"
hstat b "$tmp/ob1"
mstat "$tmp/om1"
lines a haproxy "$la0" | awk -v c="$C:6379" '$4 == c && $8 == c && $9 == "outbound"' >"$tmp/lc"
[ "$(wc -l <"$tmp/lc")" = "${nc:-x}" ] || why="$why proxy A logged $(wc -l <"$tmp/lc") connections to $C:6379 for ${nc:-?};"
[ "$(hdelta "$tmp/ob0" "$tmp/ob1" inbound FRONTEND stot)" = 0 ] || why="$why proxy B's inbound took $(hdelta "$tmp/ob0" "$tmp/ob1" inbound FRONTEND stot) connections from pod C;"
[ "$(delta "$tmp/om0" "$tmp/om1" inbound)" = 0 ] || why="$why mesh inbound +$(delta "$tmp/om0" "$tmp/om1" inbound) for pod C;"
# the uninjected pod
cga=$(sm_cgroup2_mount)/sockmesh-mesh-$name/mesh/pod-a
sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cga" \
	ip netns exec "smesh-$name-c" "$check" -n 8 -r 4 -s 7 -k bare "$B" 6379 >"$tmp/bare.out" 2>&1 ||
	why="$why the uninjected pod -> B failed;"
nb=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/bare.out")
hwait b inbound "$(($(hval "$tmp/ob1" inbound FRONTEND stot) + ${nb:-1}))"
mstat "$tmp/om2"
bl=$(lines b haproxy "$lb0" | awk -v c="$C:" -v b="$B:6379" 'index($2, c) == 1 && $4 == b && $9 == "inbound"' | wc -l)
[ "${nb:-0}" -gt 0 ] && [ "$bl" = "$nb" ] || why="$why the uninjected pod: ${nb:-?} connections, proxy B's inbound logged $bl from $C;"
[ "$(delta "$tmp/om1" "$tmp/om2" inbound)" = "${nb:-x}" ] || why="$why the uninjected pod: mesh inbound +$(delta "$tmp/om1" "$tmp/om2" inbound);"
if [ -z "$why" ]; then
	ok connect-outside-the-mesh
	note "A -> C: $(tail -n 1 "$tmp/toc.out") (proxy A only); C -> B: $(tail -n 1 "$tmp/fromc.out") (no sidecar)"
	note "uninjected pod in the mesh's cgroups -> B: $(tail -n 1 "$tmp/bare.out") (into proxy B: $bl)"
else
	sed 's/^/    /' "$tmp/toc.out" "$tmp/fromc.out" "$tmp/bare.out"
	fail connect-outside-the-mesh "$why"
fi

# --- a pod's first connections, the moment it starts -------------------------
# pod D joins (mesh.sh pod start d returns once its sidecars listen and the
# kubelet's probe reached them) and its first connections, IPv4 and IPv6,
# go through D's and B's sidecars; then it leaves and takes everything along
why=
lb0=$(wc -l <"$state/b/haproxy.log")
fb0=$(wc -l <"$state/b/meshfwd.log")
if $M pod start d >"$tmp/podd.log" 2>&1; then
	$M exec d "$check" -n 8 -r 4 -m 1048576 -s 11 -k podD "$B" 6379 >"$tmp/pd.out" 2>&1 || why="pod D's first IPv4 connections failed;"
	$M exec d "$check" -n 8 -r 4 -m 65536 -s 12 -k podD6 "$B6" 6379 >"$tmp/pd6.out" 2>&1 || why="$why pod D's first IPv6 connections failed;"
	nd=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/pd.out")
	nd6=$(sed -n 's/^meshcheck: ok: [0-9]* pairs, \([0-9]*\) connections, .*/\1/p' "$tmp/pd6.out")
	hwait d outbound "${nd:-1}"
	mf_wait d 0 "${nd6:-1}"
	mf_wait b "$fb0" "${nd6:-1}"
	i=0
	while [ "$(lines b haproxy "$lb0" | wc -l)" -lt "${nd:-1}" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	dl=$(lines d haproxy 0 | awk -v d="$D:" -v b="$B:6379" 'index($2, d) == 1 && $4 == b && $9 == "outbound"' | wc -l)
	bl=$(lines b haproxy "$lb0" | awk -v d="$D:" -v b="$B:6379" 'index($2, d) == 1 && $4 == b && $9 == "inbound"' | wc -l)
	dl6=$(mf_lines d 0 | awk -v d="[$D6]:" -v b="[$B6]:6379" 'index($2, d) == 1 && $4 == b && $9 == "outbound"' | wc -l)
	bl6=$(mf_lines b "$fb0" | awk -v d="[$D6]:" -v b="[$B6]:6379" 'index($2, d) == 1 && $4 == b && $9 == "inbound"' | wc -l)
	[ "${nd:-0}" -gt 0 ] && [ "$dl" = "$nd" ] && [ "$bl" = "$nd" ] ||
		why="$why IPv4: ${nd:-?} connections, proxy D logged $dl, proxy B $bl;"
	[ "${nd6:-0}" -gt 0 ] && [ "$dl6" = "$nd6" ] && [ "$bl6" = "$nd6" ] ||
		why="$why IPv6: ${nd6:-?} connections, meshfwd D logged $dl6, meshfwd B $bl6;"
	$M pod stop d >>"$tmp/podd.log" 2>&1 || why="$why pod stop d failed;"
	[ ! -e "/run/netns/smesh-$name-d" ] || why="$why pod D's netns is left;"
else
	sed 's/^/    /' "$tmp/podd.log"
	why="pod start d failed;"
fi
if [ -z "$why" ]; then
	ok connect-first-connections
	note "pod D: $(tail -n 1 "$tmp/pd.out"); IPv6: $(tail -n 1 "$tmp/pd6.out"); every one through D's and B's sidecars"
else
	fail connect-first-connections "$why"
fi

# --- a meshed pod's address given to a pod without a sidecar ---------------
# pod D is gone; a new pod (netns smesh-NAME-x, a cgroup under the mesh's,
# redis on 6379, no sidecar) gets its address. The kubelet probes its app's
# port (a TCP probe from the node): the address is no longer a meshed
# pod's, and pod A's connections to it go through A's sidecar straight to
# its redis, not to a 15006 nobody listens on.
why=
xns=smesh-$name-x
xcg=$(sm_cgroup2_mount)/sockmesh-mesh-$name/mesh/pod-x
mstat "$tmp/x0"
ip netns add $xns &&
	ip -n "smesh-$name-node" link add veth-x type veth peer name eth0 netns $xns &&
	ip -n "smesh-$name-node" link set veth-x master br0 up &&
	ip -n $xns link set lo up && ip -n $xns addr add $D/24 dev eth0 &&
	ip -n $xns link set eth0 up && mkdir -p "$xcg" || why="the new pod's netns or cgroup could not be made;"
if [ -z "$why" ]; then
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$xcg" \
		ip netns exec $xns redis-server --port 6379 --bind "$D" --save '' --appendonly no \
		--daemonize no --protected-mode no --logfile '' >"$tmp/x-redis.log" 2>&1 &
	x_pid=$!
	i=0
	until ip netns exec smesh-$name-node redis-cli -h "$D" ping >/dev/null 2>&1 || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	mstat "$tmp/x1"
	$M exec a "$check" -n 8 -r 4 -s 14 -k reused "$D" 6379 >"$tmp/x.out" 2>&1 || why="pod A -> the new pod at $D failed;"
	[ "$(delta "$tmp/x0" "$tmp/x1" pods_moved)" = 1 ] || why="$why pods_moved +$(delta "$tmp/x0" "$tmp/x1" pods_moved) (want 1);"
	kill "$x_pid" 2>/dev/null
	wait "$x_pid" 2>/dev/null
	x_pid=
fi
if [ -z "$why" ]; then
	ok connect-address-reused
	note "$(tail -n 1 "$tmp/x.out"); meshed pod addresses $(val "$tmp/x0" pods) -> $(val "$tmp/x1" pods)"
else
	sed 's/^/    /' "$tmp/x.out" "$tmp/x-redis.log" 2>/dev/null
	fail connect-address-reused "$why"
fi

# --- a sidecar bound to loopback only ----------------------------------------
# the new pod gets a proxy as Linkerd's is, listening on 127.0.0.1 only
# (uid 1337, appview.py accept: it reads SO_ORIGINAL_DST), and a readiness
# port the node probes (so its pod address is known): its app's connect
# goes to 127.0.0.1, not to the pod's address where nothing listens
why=
if [ -e "/run/netns/$xns" ]; then
	xin() { sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$xcg" ip netns exec $xns "$@"; }
	xin redis-server --port 15021 --bind "$D" --save '' --appendonly no --daemonize no \
		--protected-mode no --logfile '' >"$tmp/x-ready.log" 2>&1 &
	x_pid=$!
	i=0
	until ip netns exec smesh-$name-node redis-cli -h "$D" -p 15021 ping >/dev/null 2>&1 || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	xin setpriv --reuid=1337 --regid=1337 --clear-groups $view accept 127.0.0.1 15001 >"$tmp/lk.out" 2>&1 &
	lk_pid=$!
	i=0
	until grep -q listening "$tmp/lk.out" || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	got=$(xin $view touch "$B" 6379 2>&1)
	wait $lk_pid
	[ "$got" = "peer $B 6379" ] || why="the app saw '$got' (want peer $B 6379);"
	grep -q "^orig $B 6379 local 127.0.0.1 15001$" "$tmp/lk.out" ||
		why="$why the loopback proxy got '$(tail -n 1 "$tmp/lk.out")' (want orig $B 6379 local 127.0.0.1 15001);"
	kill "$x_pid" 2>/dev/null
	wait "$x_pid" 2>/dev/null
	x_pid=
else
	why="no new pod to run it in;"
fi
if [ -z "$why" ]; then
	ok connect-loopback-sidecar
	note "proxy on 127.0.0.1:15001 only: $(tail -n 1 "$tmp/lk.out"); the app: $got"
else
	sed 's/^/    /' "$tmp/lk.out"
	fail connect-loopback-sidecar "$why"
fi
ip netns del $xns 2>/dev/null
rmdir "$xcg" 2>/dev/null

# --- restarted, reloaded, switched off and on under load ---------------------
# A client loop (a new connection every 3 pairs) runs while sockmeshd is
# stopped (on_exit = keep: the capture stays pinned) and started, a reload
# with a bad [mesh] is refused (file and line; mode stays connect), a
# reload to mode = iptables takes the programs out (connections go straight
# to pod B's app: no rule is left to send them to a sidecar) and one back to
# connect puts them in again. No request fails; after each switch a few
# connections show where traffic goes.
$M exec a "$check" -t 60 -r 3 -m 65536 -s 4 -k life -f "$tmp/life.stop" "$B" 6379 >"$tmp/life.out" 2>&1 &
loop_pid=$!
why=
# probe_a N : N connections from pod A to B; prints how many connections
# proxy A took meanwhile (the loop's among them)
probe_a() {
	hstat a "$tmp/pr0"
	$M exec a "$check" -n $((2 * $1)) -r 2 -s 13 -k probe "$B" 6379 >"$tmp/probe.out" 2>&1 || why="$why a probe's connections failed;"
	sleep 0.5 # HAProxy counts a session once both sides closed
	hstat a "$tmp/pr1"
	hdelta "$tmp/pr0" "$tmp/pr1" outbound FRONTEND stot
}
sleep 1
$M accel stop >>"$tmp/life.log" 2>&1 || why="$why accel stop failed;"
[ -d "/sys/fs/bpf/sockmesh-mesh-$name/mesh-v1" ] || why="$why on_exit = keep removed the mesh pins;"
[ "$(probe_a 4)" -ge 4 ] || why="$why daemon stopped: proxy A did not take the 4 probe connections;"
$M accel on >>"$tmp/life.log" 2>&1 || why="$why accel on failed;"
sed 's/^mode = connect$/mode = bogus/' "$conf" >"$tmp/bad.ini"
bad_line=$(grep -n '^mode = bogus$' "$tmp/bad.ini" | cut -d: -f1)
"$build/sockmesh" reload -c "$tmp/bad.ini" >"$tmp/bad.out" 2>&1 && why="$why a bad [mesh] was accepted;"
grep -q "bad.ini:$bad_line: mode must be iptables or connect, not 'bogus'" "$tmp/bad.out" ||
	why="$why the refusal does not name the file and line: $(head -n 1 "$tmp/bad.out");"
mstat "$tmp/lm0"
[ "$(val "$tmp/lm0" mode)" = connect ] || why="$why after the refused reload mode is $(val "$tmp/lm0" mode);"
sed 's/^mode = connect$/mode = iptables/' "$conf" >"$tmp/off.ini"
"$build/sockmesh" reload -c "$tmp/off.ini" >>"$tmp/life.log" 2>&1 || why="$why reload to mode = iptables failed;"
[ ! -e "/sys/fs/bpf/sockmesh-mesh-$name/mesh-v1" ] || why="$why mode = iptables left the mesh pins;"
# (the loop has one connection at a time: at most one of it was captured
# before the switch and accepted after)
n=$(probe_a 4)
[ "$n" -le 1 ] || why="$why mode = iptables: proxy A still took $n connections;"
"$build/sockmesh" reload -c "$conf" >>"$tmp/life.log" 2>&1 || why="$why reload back to mode = connect failed;"
$M probe >>"$tmp/life.log" 2>&1 || why="$why the readiness probes failed;"
[ "$(probe_a 4)" -ge 4 ] || why="$why back to connect: proxy A did not take the 4 probe connections;"
: >"$tmp/life.stop"
wait $loop_pid
lrc=$?
loop_pid=
if [ $lrc = 0 ] && [ -z "$why" ]; then
	ok connect-lifecycle-no-request-fails
	note "loop: $(tail -n 1 "$tmp/life.out")"
else
	sed 's/^/    /' "$tmp/life.out" "$tmp/life.log" "$tmp/bad.out"
	fail connect-lifecycle-no-request-fails "the loop's exit status $lrc;${why:- }"
fi

# --- down leaves nothing -----------------------------------------------------
down_clean connect-down-clean

echo "    tests/mesh/connect.sh took $(($(date +%s) - start)) s"
summary
[ "$failed" -eq 0 ]
