#!/bin/sh
# mesh.sh - a one-host, Istio-style service mesh for sockmesh's tests, demo
# and benchmark. Needs root, haproxy, redis-server, redis-tools, nginx-light,
# iptables (scripts/setup.sh installs them).
#
#   mesh.sh [-n NAME] up [LAYOUT]   build the mesh (fails cleanly, leaves nothing);
#                                   LAYOUT sidecar (the default: HAProxy
#                                   sidecars, istio-init's iptables), connect
#                                   (the same sidecars, no iptables rule:
#                                   sockmeshd's [mesh] mode = connect captures,
#                                   so traffic is meshed only while it runs) or
#                                   ambient (one node proxy, Istio ambient's
#                                   in-pod redirection: see "the ambient
#                                   layout" below)
#   mesh.sh [-n NAME] down          stop what `up` started, remove all of it
#   mesh.sh [-n NAME] status        what runs where
#   mesh.sh [-n NAME] exec POD CMD...   run CMD in pod a, b or c (netns + cgroup)
#   mesh.sh [-n NAME] accel on      start a private sockmeshd for the mesh
#   mesh.sh [-n NAME] accel stop    SIGTERM it (on_exit = keep: acceleration stays)
#   mesh.sh [-n NAME] accel off     `sockmesh unload` (a running daemon detaches and exits)
#   mesh.sh [-n NAME] rules on|off  connect layout: istio-init's rules in the
#                                   mesh pods, or none (the bench's baseline:
#                                   the same pods captured by iptables)
#   mesh.sh [-n NAME] conf          print the path of the mesh's sockmesh config
#   mesh.sh [-n NAME] probe [POD...]  the kubelet's readiness probe: GET
#                                   /healthz/ready on each mesh pod's 15021, at
#                                   both of its addresses (connect layout: what
#                                   tells sockmesh a pod is in the mesh; `accel
#                                   on` and `pod start` run it)
#   mesh.sh [-n NAME] pod start d   pod D joins the running mesh: its netns,
#                                   cgroup, iptables and sidecars; returns
#                                   when the sidecars listen (as Istio holds
#                                   an app until its proxy is ready)
#   mesh.sh [-n NAME] pod stop d    pod D leaves: sidecars stopped, netns and
#                                   cgroup removed (`down` removes it too)
#
# NAME defaults to $MESH_NAME or "demo". Everything is named after it:
#
#   netns     smesh-NAME-node   a bridge (br0) joining the pods' veths; the
#                               node's 198.18.0.1, 2001:db8::1 on it
#             smesh-NAME-a      pod A 198.18.0.2, 2001:db8::2: app (the clients),
#                               sidecars, a local redis on 127.0.0.1 and ::1
#                               port 6379 (the app's cache)
#             smesh-NAME-b      pod B 198.18.0.3, 2001:db8::3: redis 6379, nginx
#                               8080, sidecars
#             smesh-NAME-c      pod C 198.18.0.4, 2001:db8::4: outside the mesh (no
#                               sidecar, no iptables): redis 6379
#             smesh-NAME-d      pod D 198.18.0.5, 2001:db8::5, only while
#                               started (`pod start d`): in the mesh, sidecars
#                               and no app (its clients come with `exec d`)
#   Every pod is dual-stack and every server listens on both families.
#   cgroups   CG2/sockmesh-mesh-NAME/mesh/pod-a, .../mesh/pod-b  (accelerated: the
#             parent "mesh" is what sockmeshd attaches to, as kubepods.slice)
#             CG2/sockmesh-mesh-NAME/outside/pod-c             (not accelerated)
#   state     /run/sockmesh-mesh-NAME: configs, logs, pids, the static files
#   sockmeshd pin_dir /sys/fs/bpf/sockmesh-mesh-NAME, config made from
#             conf/examples/istio.ini
#
# Sidecars: HAProxy as uid 1337 (setpriv), frontends 15001 (outbound, to the
# original destination) and 15006 (inbound, to 127.0.0.1 on the original
# port), stats on 127.0.0.1:15000, health on 15021; the iptables and
# ip6tables rules of istio-init inside pods A and B. HAProxy (Debian's 2.6)
# does not read IP6T_SO_ORIGINAL_DST, so IPv6 has its own sidecar, the tests'
# meshfwd (tests/mesh/meshfwd.c, also uid 1337) on [::]:15001 and [::]:15006
# (to ::1 on the original port); it logs each connection to $state/POD/meshfwd.log.
# The root namespace's addresses, routes and iptables are never touched.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/scripts/lib.sh"
build=${SOCKMESH_BUILD:-$repo/build}
name=${MESH_NAME:-demo}
if [ "${1:-}" = -n ]; then
	[ $# -ge 2 ] || { echo "mesh.sh: -n needs a NAME" >&2; exit 2; }
	name=$2
	shift 2
fi
case $name in
'' | *[!a-z0-9]* | ?????????*)
	echo "mesh.sh: NAME '$name': 1-8 characters, a-z and 0-9" >&2
	exit 2
	;;
esac

PODS="a b c"
MESH_PODS="a b"
SUBNET=198.18.0
SUBNET6=2001:db8:
PROXY_UID=1337
state=/run/sockmesh-mesh-$name
pins=/sys/fs/bpf/sockmesh-mesh-$name
cgmnt=$(sm_cgroup2_mount)
cgtop=sockmesh-mesh-$name

log() { echo "mesh.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

pod_addr() {
	case $1 in
	a) echo $SUBNET.2 ;;
	b) echo $SUBNET.3 ;;
	c) echo $SUBNET.4 ;;
	d) echo $SUBNET.5 ;;
	*) return 1 ;;
	esac
}
pod_addr6() {
	case $1 in
	a | b | c | d) echo "$SUBNET6:$(($(pod_addr "$1" | sed 's/.*\.//')))" ;;
	*) return 1 ;;
	esac
}
# z is the ambient layout's node proxy: the node's namespace, its own
# cgroup under the accelerated parent (Istio runs ztunnel as a pod too)
pod_ns() { [ "$1" = z ] && node_ns || echo "smesh-$name-$1"; }
node_ns() { echo "smesh-$name-node"; }
pod_cg() {
	case $1 in
	c) echo "$cgtop/outside/pod-c" ;;
	z) echo "$cgtop/mesh/ztunnel" ;;
	*) echo "$cgtop/mesh/pod-$1" ;;
	esac
}
# the layout `up` built: sidecar (the default), connect or ambient
layout() { cat "$state/layout" 2>/dev/null || echo sidecar; }
in_mesh() { case " $MESH_PODS d " in *" $1 "*) return 0 ;; esac; return 1; }

# nsx POD CMD... : CMD in the pod's network namespace (not its cgroup)
nsx() {
	ns=$(pod_ns "$1")
	shift
	ip netns exec "$ns" "$@"
}

# --- processes -------------------------------------------------------------
# $state/pids: "POD WHAT PID STARTTIME" per process we started. The start time
# (/proc/PID/stat field 22) makes sure a recycled PID is never signalled.

starttime() {
	# the command name (field 2) may hold spaces: count from its ")"
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'
}

# ours PID STARTTIME : the process is still the one we started
ours() {
	[ -n "$1" ] && [ "$(starttime "$1")" = "$2" ]
}

# spawn POD WHAT LOG CMD... : CMD in the pod's cgroup and netns, in the
# background; `exec` all the way down, so the recorded PID is CMD's.
spawn() {
	pod=$1 what=$2 out=$3
	shift 3
	# shellcheck disable=SC2016
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec ip netns exec "$@"' \
		sh "$cgmnt/$(pod_cg "$pod")" "$(pod_ns "$pod")" "$@" \
		</dev/null >"$out" 2>&1 &
	pid=$!
	st=
	i=0
	while [ -z "$st" ] && [ $i -lt 50 ]; do
		st=$(starttime "$pid")
		[ -n "$st" ] || sleep 0.02
		i=$((i + 1))
	done
	echo "$pod $what $pid $st" >>"$state/pids"
}

# wait_port POD PORT WHAT [-4|-6 [OWNER]] : until something listens on PORT
# in the pod (on that family); WHAT is the process started as pod OWNER's
# (default: POD's), which must not have exited
wait_port() {
	i=0
	own=${5:-$1}
	while ! nsx "$1" ss -Hltn ${4:-} "sport = :$2" | grep -q .; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			log "$3 in pod $1 is not listening on $2 after 10 s; its log:"
			sed 's/^/    /' "$state/$own/$3.log" >&2 2>/dev/null || true
			return 1
		fi
		# a server that exited will never listen
		if ! awk -v p="$own" -v w="$3" '$1 == p && $2 == w { print $3, $4 }' \
			"$state/pids" | { read -r pid st && ours "$pid" "$st"; }; then
			log "$3 ($own) exited; its log:"
			sed 's/^/    /' "$state/$own/$3.log" >&2 2>/dev/null || true
			return 1
		fi
		sleep 0.1
	done
}

# stop_pids [WHAT [POD]] : SIGTERM what we started (only WHAT if given and
# not empty, only POD's if given), wait, SIGKILL what is left.
stop_pids() {
	[ -f "$state/pids" ] || return 0
	left=
	while read -r pod what pid st; do
		[ -z "${1:-}" ] || [ "$what" = "$1" ] || continue
		[ -z "${2:-}" ] || [ "$pod" = "$2" ] || continue
		if ours "$pid" "$st"; then
			kill -TERM "$pid" 2>/dev/null || true
			left="$left $pid:$st"
		fi
	done <"$state/pids"
	i=0
	while [ -n "$left" ] && [ $i -lt 50 ]; do
		still=
		for ps in $left; do
			ours "${ps%%:*}" "${ps#*:}" && still="$still $ps"
		done
		left=$still
		[ -z "$left" ] || sleep 0.1
		i=$((i + 1))
	done
	for ps in $left; do
		ours "${ps%%:*}" "${ps#*:}" && kill -KILL "${ps%%:*}" 2>/dev/null
	done
	if [ -n "${1:-}${2:-}" ]; then
		awk -v w="${1:-}" -v p="${2:-}" '!((w == "" || $2 == w) && (p == "" || $1 == p))' \
			"$state/pids" >"$state/pids.new"
		mv "$state/pids.new" "$state/pids"
	fi
	return 0
}

# --- sockmeshd -------------------------------------------------------------

# The mesh's config: conf/examples/istio.ini with this mesh's pin dir, run
# dir and cgroup; ports, uid and exclusions exactly as the example has them.
write_conf() {
	awk -v pins="$pins" -v run="$state/sockmeshd" -v cg="$cgtop/mesh" '
		function key(k) { return $0 ~ "^[ \t]*" k "[ \t]*=" }
		key("pin_dir") { print "pin_dir = " pins; next }
		key("run_dir") { print "run_dir = " run; next }
		key("metrics") { print "metrics = off"; next }
		key("cgroups") { print "cgroups = " cg; next }
		{ print }' "$repo/conf/examples/istio.ini" >"$state/sockmesh.ini.new"
	if [ "$(layout)" = connect ]; then
		# istio.ini's [mesh] says iptables: this layout has no rule
		sed -i 's/^mode[ \t]*=[ \t]*iptables\b.*/mode = connect/' \
			"$state/sockmesh.ini.new"
		grep -q '^mode = connect' "$state/sockmesh.ini.new" ||
			die "no [mesh] mode line in $repo/conf/examples/istio.ini to set to connect"
	fi
	mv "$state/sockmesh.ini.new" "$state/sockmesh.ini"
}

daemon_pid() {
	[ -f "$state/pids" ] || return 1
	awk '$2 == "sockmeshd" { print $3, $4 }' "$state/pids" | {
		read -r pid st || exit 1
		ours "$pid" "$st" && echo "$pid"
	}
}

accel_on() {
	[ -x "$build/sockmeshd" ] || die "$build/sockmeshd is missing: run make"
	mkdir -p "$state/sockmeshd"
	if pid=$(daemon_pid); then
		log "sockmeshd already running (pid $pid)"
		return 0
	fi
	write_conf
	"$build/sockmeshd" -c "$state/sockmesh.ini" --check >/dev/null
	rm -f "$state/sockmeshd/sockmeshd.pid"
	"$build/sockmeshd" -c "$state/sockmesh.ini" </dev/null \
		>>"$state/sockmeshd.log" 2>&1 &
	pid=$!
	awk '$2 != "sockmeshd"' "$state/pids" >"$state/pids.new" 2>/dev/null || true
	mv "$state/pids.new" "$state/pids"
	echo "- sockmeshd $pid $(starttime "$pid")" >>"$state/pids"
	i=0
	while [ "$(cat "$state/sockmeshd/sockmeshd.pid" 2>/dev/null)" != "$pid" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$state/sockmeshd.log" | sed 's/^/    /' >&2
			die "sockmeshd exited"
		fi
		i=$((i + 1))
		[ $i -lt 200 ] || die "sockmeshd not ready after 20 s"
		sleep 0.1
	done
	log "sockmeshd running (pid $pid), config $state/sockmesh.ini"
	[ "$(layout)" != connect ] || probe
}

# probe [POD...] : what a kubelet's readiness probe does, from the node, at
# each address of each pod (default: the mesh pods that are up); fails if
# a sidecar does not answer 200
probe() {
	[ $# -gt 0 ] || set -- $MESH_PODS $([ -e "/run/netns/$(pod_ns d)" ] && echo d)
	for pod in "$@"; do
		for addr in "$(pod_addr "$pod")" "$(pod_addr6 "$pod")"; do
			r=$(ip netns exec "$(node_ns)" timeout 10 bash -c '
				exec 3<>"/dev/tcp/$1/15021" || exit 1
				printf "GET /healthz/ready HTTP/1.0\r\n\r\n" >&3
				head -n 1 <&3' probe "$addr" 2>/dev/null | tr -d '\r') || r=
			case $r in
			*" 200"*) ;;
			*) die "pod $pod: readiness probe of $addr port 15021 got '${r:-no answer}'" ;;
			esac
		done
	done
}

accel_stop() {
	stop_pids sockmeshd
}

accel_off() {
	if [ -d "$pins" ] && [ -f "$state/sockmesh.ini" ]; then
		# a running daemon is asked (control socket) to detach and exit
		"$build/sockmesh" unload -c "$state/sockmesh.ini" >/dev/null ||
			log "sockmesh unload failed"
	fi
	stop_pids sockmeshd # gone already after the unload, or stopped here
	[ ! -d "$pins" ] || rm -rf "$pins"
}

# --- building the mesh -----------------------------------------------------

# What each proxy logs per connection: client, original destination (as the
# app asked), source of the proxy's own connection, server it connected to,
# frontend, bytes up and down (the tests and the bench read these fields)
logfmt="conn %ci:%cp orig %[dst]:%[dst_port] via %bi:%bp srv %si:%sp %ft up %U down %B %ts"
# haproxy_admin : the stats frontend every proxy of ours has (Istio: 15000)
haproxy_admin() {
	printf '%s\n' "frontend admin" "	mode http" "	no log" \
		"	bind 127.0.0.1:15000" "	stats enable" "	stats uri /stats"
}

haproxy_cfg() { # POD
	cat <<EOF
# HAProxy as pod $1's sidecar (generated by mesh.sh)
global
	maxconn 4000
	log stdout format raw local0 info

defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s

# outbound: the app's connections, REDIRECTed by the OUTPUT rules
frontend outbound
	bind 0.0.0.0:15001
	log global
	log-format "$logfmt"
	default_backend original_dst
backend original_dst
	# 0.0.0.0 and no port: the original destination (SO_ORIGINAL_DST)
	server orig 0.0.0.0

# inbound: connections to this pod, REDIRECTed by the PREROUTING rules
frontend inbound
	bind 0.0.0.0:15006
	log global
	log-format "$logfmt"
	default_backend local_app
backend local_app
	# no port: the port the client asked for
	server app 127.0.0.1

# admin (Istio: 15000) and readiness (Istio: 15021), never intercepted
$(haproxy_admin)
frontend health
	mode http
	no log
	bind 0.0.0.0:15021
	bind :::15021 v6only
	monitor-uri /healthz/ready
EOF
}

# The nat rules istio-init writes (one chain per purpose, same order), for
# IPv4 (iptables) or IPv6 (ip6tables: ::1 and ::6 for 127.0.0.1 and 127.0.0.6).
iptables_rules() { # POD iptables|ip6tables
	if [ "$2" = ip6tables ]; then
		lo1=::1/128 lo6=::6/128
	else
		lo1=127.0.0.1/32 lo6=127.0.0.6/32
	fi
	set -- "$2" -w -t nat
	nsx "$pod" "$@" -N ISTIO_INBOUND
	nsx "$pod" "$@" -N ISTIO_REDIRECT
	nsx "$pod" "$@" -N ISTIO_IN_REDIRECT
	nsx "$pod" "$@" -N ISTIO_OUTPUT
	nsx "$pod" "$@" -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
	nsx "$pod" "$@" -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
	nsx "$pod" "$@" -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
	nsx "$pod" "$@" -A PREROUTING -p tcp -j ISTIO_INBOUND
	for p in 15090 15021 15020; do
		nsx "$pod" "$@" -A ISTIO_INBOUND -p tcp --dport $p -j RETURN
	done
	nsx "$pod" "$@" -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
	nsx "$pod" "$@" -A OUTPUT -p tcp -j ISTIO_OUTPUT
	nsx "$pod" "$@" -A ISTIO_OUTPUT -o lo -s $lo6 -j RETURN
	for m in uid gid; do
		nsx "$pod" "$@" -A ISTIO_OUTPUT ! -d $lo1 -o lo -p tcp \
			-m owner --$m-owner $PROXY_UID -j ISTIO_IN_REDIRECT
		nsx "$pod" "$@" -A ISTIO_OUTPUT -o lo -m owner ! --$m-owner $PROXY_UID -j RETURN
		nsx "$pod" "$@" -A ISTIO_OUTPUT -m owner --$m-owner $PROXY_UID -j RETURN
	done
	nsx "$pod" "$@" -A ISTIO_OUTPUT -d $lo1 -j RETURN
	nsx "$pod" "$@" -A ISTIO_OUTPUT -j ISTIO_REDIRECT
}

make_files() {
	www=$state/b/www
	mkdir -p "$www"
	head -c 100 /dev/urandom >"$www/100b"
	head -c 65536 /dev/urandom >"$www/64k"
	head -c 262144 /dev/urandom >"$www/256k"
	head -c 1048576 /dev/urandom >"$www/1m"
	cat >"$state/b/nginx.conf" <<EOF
# pod B's HTTP app (generated by mesh.sh): one process, no master
daemon off;
master_process off;
pid $state/b/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $state/b/tmp;
	proxy_temp_path $state/b/tmp;
	fastcgi_temp_path $state/b/tmp;
	keepalive_requests 10000000;
	keepalive_timeout 120s;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:8080;
		listen $(pod_addr b):8080;
		listen [::1]:8080;
		listen [$(pod_addr6 b)]:8080;
		root $www;
	}
}
EOF
	mkdir -p "$state/b/tmp"
}

redis() { # POD BIND...
	pod=$1
	shift
	mkdir -p "$state/$pod/redis"
	spawn "$pod" redis "$state/$pod/redis.log" redis-server --port 6379 \
		--bind "$@" --save '' --appendonly no --dir "$state/$pod/redis" \
		--daemonize no --protected-mode no --logfile '' --databases 1
}

# pod_net POD : its netns, a veth on the node's bridge, both addresses
pod_net() {
	ns=$(pod_ns "$1")
	ip netns add "$ns"
	ip -n "$(node_ns)" link add "veth-$1" type veth peer name eth0 netns "$ns"
	ip -n "$(node_ns)" link set "veth-$1" master br0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$(pod_addr "$1")/24" dev eth0
	# nodad: usable at once, not "tentative" for a second or two
	ip -n "$ns" -6 addr add "$(pod_addr6 "$1")/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
}

# sidecars POD : HAProxy (IPv4) and meshfwd (IPv6), as uid 1337
sidecars() {
	haproxy_cfg "$1" >"$state/$1/haproxy.cfg"
	haproxy -c -q -f "$state/$1/haproxy.cfg" ||
		die "pod $1: haproxy rejects $state/$1/haproxy.cfg"
	spawn "$1" haproxy "$state/$1/haproxy.log" setpriv \
		--reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
		haproxy -db -f "$state/$1/haproxy.cfg"
	spawn "$1" meshfwd "$state/$1/meshfwd.log" setpriv \
		--reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
		"$build/tests/meshfwd" -6
}
wait_sidecars() { # POD
	for p in 15001 15006 15000 15021; do wait_port "$1" $p haproxy -4; done
	for p in 15001 15006; do wait_port "$1" $p meshfwd -6; done
}

# --- the ambient layout ----------------------------------------------------
# Istio ambient's in-pod redirection, one node proxy for every pod (ztunnel;
# here HAProxy, pod "z": its own cgroup under the accelerated parent, the
# node's namespace, uid 1337). Its listening sockets are inside each mesh
# pod's namespace (HAProxy's `namespace`, as ztunnel's are opened there by
# istio-cni's hand-off): 15001 takes the pod's outbound connections
# (REDIRECTed in the pod, nat OUTPUT), 15006 its plaintext inbound ones
# (nat PREROUTING), 15008 the tunnel from other node proxies. A request from
# pod A to pod B:
#   hop 1  app A -> ztunnel 15001 (pod A, REDIRECT: SO_ORIGINAL_DST)
#   hop 2  ztunnel, from pod A's address -> ztunnel, B:15008: mutual TLS,
#          the original destination in a PROXY v2 header ahead of the TLS
#          session (Istio's HBONE carries it inside: HTTP/2 CONNECT)
#   hop 3  ztunnel, inside pod B, with A's address as source
#          (IP_TRANSPARENT: `usesrc clientip`) -> app B on the port asked for
# A destination that is not in the mesh (mesh-pods.lst, what ztunnel learns
# from istiod) gets a plain connection from inside the source pod. IPv4
# only: Debian's HAProxy does not read IP6T_SO_ORIGINAL_DST, so IPv6 is not
# captured in this layout. Logs: $state/z/ztunnel.log, a line per
# connection and frontend.

ztunnel_cfg() {
	pem=$state/z/ztunnel.pem
	cat <<EOC
# HAProxy as the ambient layout's node proxy (generated by mesh.sh)
global
	maxconn 8000
	log stdout format raw local0 info

defaults
	mode tcp
	log global
	log-format "$logfmt"
	timeout connect 5s
	timeout client 60s
	timeout server 60s

$(haproxy_admin)
EOC
	for p in $MESH_PODS; do
		ns=$(pod_ns "$p")
		cat <<EOC

# pod $p ($(pod_addr "$p")): outbound, REDIRECTed to 15001 in the pod
frontend out_$p
	bind 0.0.0.0:15001 namespace $ns
	use_backend hbone_$p if { dst -f $state/z/mesh-pods.lst }
	default_backend direct_$p
backend hbone_$p
	# the destination pod's 15008, from inside pod $p (its address as
	# source), mutual TLS, the original destination in a PROXY v2 header
	server hbone 0.0.0.0:15008 namespace $ns send-proxy-v2 ssl verify required ca-file $pem crt $pem
backend direct_$p
	# not in the mesh: plain TCP to the original destination
	server orig 0.0.0.0 namespace $ns
# pod $p: the tunnel from other node proxies
frontend hbone_in_$p
	bind $(pod_addr "$p"):15008 namespace $ns accept-proxy ssl crt $pem ca-file $pem verify required
	default_backend app_$p
# pod $p: plaintext inbound, REDIRECTed to 15006 in the pod
frontend in_$p
	bind 0.0.0.0:15006 namespace $ns
	default_backend app_$p
backend app_$p
	# the original destination (PROXY header, or SO_ORIGINAL_DST), from
	# inside pod $p, with the client's address as source
	source 0.0.0.0 usesrc clientip
	server app 0.0.0.0 namespace $ns
EOC
	done
}

# ambient_rules POD : what istio-cni writes inside an ambient pod (IPv4):
# nat, the pod's own traffic to the node proxy except its own and 15008;
# mangle and a routing rule, so that the app's answers to a connection the
# node proxy made with another pod's address as source come back to it
# (the node proxy's connections are marked in their conntrack entry)
ambient_rules() {
	pod=$1
	set -- iptables -w
	nsx "$pod" "$@" -t nat -N ZT_PRERT
	nsx "$pod" "$@" -t nat -N ZT_OUTPUT
	nsx "$pod" "$@" -t nat -A PREROUTING -p tcp -j ZT_PRERT
	nsx "$pod" "$@" -t nat -A ZT_PRERT -p tcp --dport 15008 -j RETURN
	nsx "$pod" "$@" -t nat -A ZT_PRERT -i lo -j RETURN
	nsx "$pod" "$@" -t nat -A ZT_PRERT -p tcp -j REDIRECT --to-ports 15006
	nsx "$pod" "$@" -t nat -A OUTPUT -p tcp -j ZT_OUTPUT
	nsx "$pod" "$@" -t nat -A ZT_OUTPUT -m owner --uid-owner $PROXY_UID -j RETURN
	nsx "$pod" "$@" -t nat -A ZT_OUTPUT -o lo -j RETURN
	nsx "$pod" "$@" -t nat -A ZT_OUTPUT -p tcp -j REDIRECT --to-ports 15001
	nsx "$pod" "$@" -t mangle -A OUTPUT -m owner --uid-owner $PROXY_UID \
		-m addrtype ! --src-type LOCAL -j CONNMARK --set-xmark 0x111/0xfff
	nsx "$pod" "$@" -t mangle -A OUTPUT -m connmark --mark 0x111/0xfff \
		-j MARK --set-xmark 0x111/0xfff
	nsx "$pod" "$@" -t mangle -A PREROUTING -m connmark --mark 0x111/0xfff \
		-j MARK --set-xmark 0x111/0xfff
	ip -n "$(pod_ns "$pod")" rule add fwmark 0x111/0xfff pref 32764 lookup 100
	ip -n "$(pod_ns "$pod")" route add local 0.0.0.0/0 dev lo table 100
}

# ztunnel : the node proxy, its certificate (made now, one for every node
# proxy: it is its own CA) and its list of mesh pods
ztunnel() {
	mkdir -p "$cgmnt/$(pod_cg z)" "$state/z"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -days 7 -subj "/CN=ztunnel.$name.smesh" \
		-keyout "$state/z/key.pem" -out "$state/z/crt.pem" >"$state/z/openssl.log" 2>&1 ||
		die "openssl could not make the node proxy's certificate: $(cat "$state/z/openssl.log")"
	cat "$state/z/crt.pem" "$state/z/key.pem" >"$state/z/ztunnel.pem"
	rm -f "$state/z/key.pem"
	chown $PROXY_UID "$state/z/ztunnel.pem"
	chmod 600 "$state/z/ztunnel.pem"
	for p in $MESH_PODS; do pod_addr "$p"; done >"$state/z/mesh-pods.lst"
	ztunnel_cfg >"$state/z/ztunnel.cfg"
	haproxy -c -q -f "$state/z/ztunnel.cfg" ||
		die "haproxy rejects $state/z/ztunnel.cfg"
	# uid 1337 with the two capabilities ztunnel has: its sockets in other
	# namespaces (setns: CAP_SYS_ADMIN), another pod's source address
	# (IP_TRANSPARENT: CAP_NET_ADMIN)
	spawn z ztunnel "$state/z/ztunnel.log" setpriv \
		--reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
		--inh-caps=+sys_admin,+net_admin --ambient-caps=+sys_admin,+net_admin \
		haproxy -db -f "$state/z/ztunnel.cfg"
}
wait_ztunnel() {
	for p in $MESH_PODS; do
		for port in 15001 15006 15008; do wait_port "$p" $port ztunnel -4 z; done
	done
}

# pod D, in the mesh, joins and leaves a running mesh
pod_start() {
	[ "$1" = d ] || die "pod start: only pod d comes and goes (a, b and c are the mesh's own)"
	[ -f "$state/up" ] || die "mesh '$name' is not up"
	[ "$(layout)" != ambient ] || die "pod start: the sidecar and connect layouts only (the ambient node proxy does not take new pods while it runs)"
	[ ! -e "/run/netns/$(pod_ns d)" ] || die "pod d is already started (mesh.sh -n $name pod stop d)"
	trap 'ps_rc=$?; trap - EXIT; if [ $ps_rc != 0 ]; then log "pod start d failed: removing it"; pod_stop d; fi; exit $ps_rc' EXIT
	trap 'exit 130' INT TERM HUP
	pod_net d
	mkdir -p "$cgmnt/$(pod_cg d)" "$state/d"
	pod=d
	if [ "$(layout)" = sidecar ]; then
		iptables_rules d iptables
		iptables_rules d ip6tables
	fi
	sidecars d
	wait_sidecars d
	# connect: the kubelet probes it before it is any Service's endpoint
	if [ "$(layout)" = connect ] && daemon_pid >/dev/null; then probe d; fi
	trap - EXIT INT TERM HUP
	log "pod d is up: $(pod_addr d), $(pod_addr6 d), cgroup /$(pod_cg d), in the mesh"
}
pod_stop() {
	[ "$1" = d ] || die "pod stop: only pod d comes and goes (a, b and c are the mesh's own)"
	stop_pids "" d
	[ ! -e "/run/netns/$(pod_ns d)" ] || ip netns del "$(pod_ns d)"
	rm_cgroup "$(pod_cg d)"
	rm -rf "${state:?}/d"
}

up() { # [sidecar|connect|ambient]
	lay=${1:-sidecar}
	case $lay in
	sidecar | connect | ambient) ;;
	*) die "up: no layout '$lay' (sidecar, connect or ambient)" ;;
	esac
	[ "$(id -u)" = 0 ] || die "needs root"
	[ -n "$cgmnt" ] || die "no cgroup2 mount in /proc/mounts"
	[ -x "$build/tests/meshfwd" ] || die "$build/tests/meshfwd is missing: make $build/tests/meshfwd"
	tools="ip iptables ip6tables haproxy redis-server nginx setpriv ss"
	[ "$lay" != ambient ] || tools="$tools openssl"
	for c in $tools; do
		command -v $c >/dev/null || die "$c is missing: scripts/setup.sh installs it"
	done
	if [ -d "$state" ] && [ -f "$state/up" ]; then
		die "mesh '$name' is already up (mesh.sh -n $name down first)"
	fi
	for pod in $PODS node; do
		[ "$pod" = node ] && ns=$(node_ns) || ns=$(pod_ns "$pod")
		[ ! -e "/run/netns/$ns" ] || die "netns $ns exists: mesh.sh -n $name down"
	done
	trap 'up_rc=$?; trap - EXIT; if [ $up_rc != 0 ]; then log "up failed: tearing down"; down_all; fi; exit $up_rc' EXIT
	trap 'exit 130' INT TERM HUP
	mkdir -p "$state"
	: >>"$state/pids"
	echo "$lay" >"$state/layout"

	# network: a bridge in the node namespace, one veth per pod
	nn=$(node_ns)
	ip netns add "$nn"
	ip -n "$nn" link set lo up
	ip -n "$nn" link add br0 type bridge
	ip -n "$nn" link set br0 up
	# the node's own addresses on the bridge (a CNI's gateway): where the
	# kubelet's probes come from
	ip -n "$nn" addr add "$SUBNET.1/24" dev br0
	ip -n "$nn" -6 addr add "${SUBNET6}:1/64" dev br0 nodad
	for pod in $PODS; do pod_net "$pod"; done

	# cgroups: the parent first, as kubepods.slice; pods appear under it
	for pod in $PODS; do
		mkdir -p "$cgmnt/$(pod_cg "$pod")"
	done

	# the mesh's own rules, inside the mesh pods only
	for pod in $MESH_PODS; do
		case $lay in
		ambient) ambient_rules "$pod" ;;
		sidecar)
			iptables_rules "$pod" iptables
			iptables_rules "$pod" ip6tables
			;;
		esac # connect: none, sockmeshd's programs capture
	done

	# apps
	for pod in $PODS; do mkdir -p "$state/$pod"; done
	redis a 127.0.0.1 ::1
	redis b 127.0.0.1 ::1 "$(pod_addr b)" "$(pod_addr6 b)"
	redis c 127.0.0.1 ::1 "$(pod_addr c)" "$(pod_addr6 c)"
	make_files
	spawn b nginx "$state/b/nginx.log" nginx -p "$state/b" -e stderr \
		-c "$state/b/nginx.conf"

	if [ "$lay" = ambient ]; then
		ztunnel
	else
		for pod in $MESH_PODS; do sidecars "$pod"; done
	fi

	for pod in $PODS; do wait_port "$pod" 6379 redis; done
	wait_port b 8080 nginx
	if [ "$lay" = ambient ]; then
		wait_ztunnel
	else
		for pod in $MESH_PODS; do wait_sidecars "$pod"; done
	fi
	: >"$state/up"
	trap - EXIT INT TERM HUP
	log "mesh '$name' ($lay) is up: pods a ($(pod_addr a), $(pod_addr6 a)), b ($(pod_addr b), $(pod_addr6 b)), c ($(pod_addr c), $(pod_addr6 c), outside)"
}

rm_cgroup() { # PATH (relative to the mount): it and every cgroup below it
	[ -d "$cgmnt/$1" ] || return 0
	find "$cgmnt/$1" -depth -type d | while read -r d; do
		i=0
		while ! rmdir "$d" 2>/dev/null; do
			i=$((i + 1))
			if [ $i -eq 10 ] && [ -e "$d/cgroup.kill" ]; then
				# processes of ours left in it (children of `mesh.sh exec`)
				echo 1 >"$d/cgroup.kill" 2>/dev/null || true
			fi
			if [ $i -gt 50 ]; then
				log "cannot remove cgroup $d: pids $(tr '\n' ' ' <"$d/cgroup.procs")"
				exit 1
			fi
			sleep 0.1
		done
	done
}

down_all() {
	rc=0
	if [ -d "$state" ]; then
		accel_off
		stop_pids
	elif [ -d "$pins" ]; then
		rm -rf "$pins"
	fi
	for pod in $PODS d; do
		ns=$(pod_ns "$pod")
		[ ! -e "/run/netns/$ns" ] || ip netns del "$ns" || rc=1
	done
	nn=$(node_ns)
	[ ! -e "/run/netns/$nn" ] || ip netns del "$nn" || rc=1
	rm_cgroup "$cgtop" || rc=1
	rm -rf "$state"
	return $rc
}

status() {
	if [ ! -f "$state/up" ]; then
		echo "mesh '$name': down"
		[ -d "$state" ] && echo "  (partly built: mesh.sh -n $name down removes it)"
		return 3
	fi
	echo "mesh '$name': up, $(layout) layout ($state)"
	pods=$PODS
	[ ! -e "/run/netns/$(pod_ns d)" ] || pods="$pods d"
	for pod in $pods; do
		in_mesh "$pod" && what="in the mesh" || what="outside the mesh"
		echo "  pod $pod  $(pod_addr "$pod") $(pod_addr6 "$pod")  netns $(pod_ns "$pod")  cgroup /$(pod_cg "$pod")  ($what)"
		while read -r p what pid st; do
			[ "$p" = "$pod" ] || continue
			ours "$pid" "$st" && s="running" || s="EXITED"
			echo "    $what pid $pid $s"
		done <"$state/pids"
	done
	if [ "$(layout)" = ambient ]; then
		while read -r p what pid st; do
			[ "$p" = z ] || continue
			ours "$pid" "$st" && s="running" || s="EXITED"
			echo "  node proxy (ztunnel) pid $pid $s, netns $(node_ns), cgroup /$(pod_cg z)"
		done <"$state/pids"
	fi
	if pid=$(daemon_pid); then
		echo "  sockmeshd pid $pid, config $state/sockmesh.ini"
	elif [ -d "$pins" ]; then
		echo "  sockmeshd stopped, acceleration kept ($pins)"
	else
		echo "  sockmeshd off"
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
up)
	[ $# -le 1 ] || die "usage: mesh.sh up [sidecar|connect|ambient]"
	up "$@"
	;;
down) down_all ;;
status) status ;;
exec)
	[ $# -ge 2 ] || die "usage: mesh.sh exec POD CMD..."
	pod=$1
	shift
	pod_addr "$pod" >/dev/null || die "no pod '$pod' (a, b, c, or d once started)"
	[ "$pod" != d ] || [ -e "/run/netns/$(pod_ns d)" ] || die "pod d is not started (mesh.sh -n $name pod start d)"
	[ -f "$state/up" ] || die "mesh '$name' is not up"
	echo $$ >"$cgmnt/$(pod_cg "$pod")/cgroup.procs"
	exec ip netns exec "$(pod_ns "$pod")" "$@"
	;;
accel)
	if [ "${1:-}" = off ] && [ ! -d "$state" ]; then
		accel_off
		exit 0
	fi
	mkdir -p "$state"
	: >>"$state/pids"
	case ${1:-} in
	on) accel_on ;;
	stop) accel_stop ;;
	off) accel_off ;;
	*) die "usage: mesh.sh accel on|stop|off" ;;
	esac
	;;
pod)
	[ $# -eq 2 ] || die "usage: mesh.sh pod start|stop d"
	[ "$(id -u)" = 0 ] || die "needs root"
	case $1 in
	start) pod_start "$2" ;;
	stop) pod_stop "$2" ;;
	*) die "usage: mesh.sh pod start|stop d" ;;
	esac
	;;
rules)
	[ -f "$state/up" ] || die "mesh '$name' is not up"
	[ "$(layout)" = connect ] || die "rules: the connect layout only (the sidecar layout always has them)"
	case ${1:-} in
	on)
		for pod in $MESH_PODS; do
			nsx "$pod" iptables -w -t nat -S ISTIO_OUTPUT >/dev/null 2>&1 && continue
			iptables_rules "$pod" iptables
			iptables_rules "$pod" ip6tables
		done
		;;
	off)
		for pod in $MESH_PODS; do
			for t in iptables ip6tables; do
				nsx "$pod" $t -w -t nat -F
				nsx "$pod" $t -w -t nat -X
			done
		done
		;;
	*) die "usage: mesh.sh rules on|off" ;;
	esac
	;;
probe)
	[ -f "$state/up" ] || die "mesh '$name' is not up"
	for pod in "$@"; do in_mesh "$pod" || die "probe: pod '$pod' has no sidecar (a, b, or d once started)"; done
	probe "$@"
	;;
conf)
	[ -d "$state" ] || die "mesh '$name' is not up"
	[ -f "$state/sockmesh.ini" ] || write_conf
	echo "$state/sockmesh.ini"
	;;
*)
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
	[ "$cmd" = help ] || [ "$cmd" = -h ] || exit 2
	;;
esac
