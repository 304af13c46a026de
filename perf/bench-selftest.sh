#!/bin/sh
# bench-selftest.sh [BUILD] - sockmesh-bench works: one short run (1 KiB,
# 0.2 s) per mode and transport against a private sockmeshd. Each must
# complete with ops > 0 and its data verified; each accel run must have grown
# bytes_redirected, each tcp and uds run must have left the counters alone.
# The same for stream-rw with --rw-poll (64 KiB) and rr at 256 KiB. Also: a
# bad option exits 2, stream-rw -n 2 exits 2, accel without sockmesh exits 3
# ("not loaded").
# Open loop (tcp, no daemon): --rate 2000 achieves 2000/s within 3%; a 200 ms
# server stall shows in the open-loop p99.9 (>= the stall: no coordinated
# omission) and not in a closed-loop run's p50 or p99; an impossible rate is
# INVALID, exit 1; --rate 0, --rate abc, --arrivals foo, --rate with stream
# exit 2. Those are the only timing assertions, with wide margins (about 10 s).
# --target, against a redis and an nginx of its own: --proto redis reads every
# reply (11 bytes for "hello"), --rate 1000 keeps its rate (within 3%), an
# error reply fails the run naming it; --proto http reads responses of
# exactly curl's length, a 404 fails the run naming it; their usage errors
# exit 2; under compat = strict, the client and redis in the accelerated
# cgroup are redirected (non-blocking sockets: strict_blocking stays 0).
# Needs root. Last line: "bench: N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
# first: its own ok() below replaces scripts/lib.sh's
. scripts/private-daemon.sh
build=${1:-build}
bench=$build/sockmesh-bench
pass=0
fail=0

ok() {
	pass=$((pass + 1))
	echo "  ok   $*"
}
not_ok() {
	fail=$((fail + 1))
	echo "  FAIL $*"
}
summary() {
	echo "bench: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

sm_daemon_traps

if [ ! -x "$bench" ]; then
	not_ok "$bench is missing: run make"
	summary
	exit
fi

# usage errors: exit 2 and a clear message
out=$("$bench" --size 0 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && echo "$out" | grep -q "size"; then
	ok "bad option: exit 2: $(echo "$out" | head -1)"
else
	not_ok "bad option: exit $rc, expected 2: $out"
fi

# stream-rw is one blocking connection: -n 2 is a usage error
out=$("$bench" -m stream-rw -n 2 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && echo "$out" | grep -q "one connection only"; then
	ok "stream-rw -n 2: exit 2: $(echo "$out" | head -1)"
else
	not_ok "stream-rw -n 2: exit $rc, expected 2: $out"
fi

# accel without a daemon on that pin_dir: not loaded, exit 3
mkdir -p "/tmp/sockmesh-bench-st-$$"
cat >"/tmp/sockmesh-bench-st-$$/none.ini" <<EOC
[daemon]
pin_dir = /sys/fs/bpf/sockmesh-bench-none-$$
run_dir = /tmp/sockmesh-bench-st-$$
[accelerate]
cgroups = sockmesh-bench-none-$$
EOC
out=$("$bench" -T accel -t 0.1 -c "/tmp/sockmesh-bench-st-$$/none.ini" 2>&1)
rc=$?
rm -rf "/tmp/sockmesh-bench-st-$$"
if [ "$rc" -eq 3 ] && echo "$out" | grep -q "sockmesh is not loaded"; then
	ok "accel without sockmesh: exit 3, not loaded"
else
	not_ok "accel without sockmesh: exit $rc, expected 3: $out"
fi

# ---- open loop (--rate), plain TCP: no daemon needed ----------------------

# usage errors of the open loop: exit 2, a message naming the option
usage_err() { # WHAT GREP ARGS...
	what=$1 pat=$2
	shift 2
	out=$("$bench" "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq 2 ] && echo "$out" | grep -q -- "$pat"; then
		ok "$what: exit 2: $(echo "$out" | head -1)"
	else
		not_ok "$what: exit $rc, expected 2 and '$pat': $out"
	fi
}
usage_err "--rate 0" "--rate" -m rr --rate 0
usage_err "--rate abc" "--rate" -m rr --rate abc
usage_err "--arrivals foo" "--arrivals" -m rr --rate 1000 --arrivals foo
usage_err "--rate with stream" "rr only" -m stream --rate 1000

# jfield JSON KEY: the first numeric or boolean "KEY": value in it
jfield() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\": \([0-9.a-z]*\).*/\1/p" | head -1
}
# ns_ge A B: A >= B (integers of ns, or decimals)
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# a low rate is kept: achieved within 3% of asked, valid, exit 0
out=$("$bench" -m rr -T tcp --rate 2000 -t 0.5 -w 0.05 --json 2>&1)
rc=$?
got=$(jfield "$out" rate_achieved)
valid=$(jfield "$out" valid)
if [ "$rc" -eq 0 ] && [ "$valid" = true ] && ge "$got" 1940 && ge 2060 "$got"; then
	ok "--rate 2000 tcp: achieved $got/s, valid"
else
	not_ok "--rate 2000 tcp: exit $rc, achieved '${got}'/s (1940..2060), valid '$valid': $out"
fi

# a 200 ms server stall: the open loop counts it in every request it delays
# (from intended send time: p99.9 >= the stall, less the histogram's 1%);
# the closed loop sends nothing while it waits, so one request of thousands
# sees it, not p50 nor p99 (coordinated omission)
out=$("$bench" -m rr -T tcp --rate 2000 -t 1 -w 0.05 --test-server-stall 200 --json 2>&1)
rc=$?
p999=$(jfield "$out" p999)
if [ "$rc" -eq 0 ] && [ -n "$p999" ] && ge "$p999" 198000000; then
	ok "--rate 2000 --test-server-stall 200: open-loop p99.9 $((p999 / 1000)) us >= 198 ms"
else
	not_ok "--rate 2000 --test-server-stall 200: exit $rc, p99.9 '${p999}' ns, expected >= 198 ms: $out"
fi
out=$("$bench" -m rr -T tcp -t 1 -w 0.05 --test-server-stall 200 --json 2>&1)
rc=$?
p50=$(jfield "$out" p50)
p99=$(jfield "$out" p99)
max=$(jfield "$out" max)
if [ "$rc" -eq 0 ] && [ -n "$p50" ] && ge 20000000 "$p50" && ge 150000000 "$p99" &&
	ge "$max" 198000000; then
	ok "closed loop, the same stall: p50 $((p50 / 1000)) us, p99 $((p99 / 1000)) us, max $((max / 1000)) us (the stall in one request only)"
else
	not_ok "closed loop --test-server-stall 200: exit $rc, p50 '$p50' (<= 20 ms), p99 '$p99' (<= 150 ms), max '$max' ns (>= 198 ms): $out"
fi

# a rate no transport can keep up with: INVALID, exit 1
out=$("$bench" -m rr -T tcp --rate 10000000 -t 0.3 -w 0.05 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && echo "$out" | grep -q INVALID; then
	ok "--rate 10000000: INVALID, exit 1"
else
	not_ok "--rate 10000000: exit $rc, expected 1 and INVALID: $out"
fi

# ---- --target: the client alone, against real servers -------------------

# a redis and an nginx of this test's own, on loopback ports from the
# kernel's range; each started through exec, so the PID held is the server's
tgt=/tmp/sockmesh-bench-tgt-$$
mkdir -p "$tgt/www" "$tgt/tmp"
redis_pid="" nginx_pid=""
sm_on_exit() {
	for p in $redis_pid $nginx_pid; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	redis_pid="" nginx_pid=""
	rm -rf "$tgt"
}
# free_port: a TCP port nothing listens on
free_port() {
	p=$(($$ % 20000 + 20000))
	while ss -Hltn "sport = :$p" | grep -q .; do p=$((p + 1)); done
	echo "$p"
}
# start_in CGROUP-DIR CMD...: CMD in that cgroup (or this one: "")
start_in() {
	cg=$1
	shift
	sh -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs" || exit 1; shift; exec "$@"' \
		sh "$cg" "$@" </dev/null >>"$tgt/servers.log" 2>&1 &
}
wait_listen() { # PORT PID
	i=0
	until ss -Hltn "sport = :$1" | grep -q .; do
		kill -0 "$2" 2>/dev/null || return 1
		i=$((i + 1))
		[ "$i" -lt 100 ] || return 1
		sleep 0.1
	done
}
# redis_up [CGROUP-DIR]: a redis on $rport, its PID in redis_pid
redis_up() {
	rport=$(free_port)
	start_in "${1:-}" redis-server --port "$rport" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$tgt"
	redis_pid=$!
	wait_listen "$rport" "$redis_pid"
}
redis_down() {
	kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	redis_pid=""
}

if ! command -v redis-server >/dev/null || ! command -v nginx >/dev/null; then
	not_ok "--target: redis-server and nginx are needed (scripts/setup.sh installs them)"
elif ! redis_up; then
	not_ok "--target: redis-server did not start: $(cat "$tgt/servers.log")"
else
	# the value's reply is exactly $5 CRLF hello CRLF: 11 bytes
	redis-cli -p "$rport" set sockmesh-bench hello >/dev/null
	redis-cli -p "$rport" rpush alist x >/dev/null
	out=$("$bench" --target "127.0.0.1:$rport" --proto redis -n 2 -t 0.3 -w 0.05 --json 2>&1)
	rc=$?
	resp=$(jfield "$out" response_bytes_mean)
	if [ "$rc" -eq 0 ] && [ "$(jfield "$out" verified)" = true ] &&
		[ "$resp" = 11.0 ] && ge "$(jfield "$out" ops)" 1; then
		ok "--target --proto redis: $(jfield "$out" ops) GETs, every reply 11 bytes (\$5 hello)"
	else
		not_ok "--target --proto redis: exit $rc, response_bytes_mean '$resp' (11.0): $out"
	fi
	# open loop against a real server: the rate kept
	out=$("$bench" --target "127.0.0.1:$rport" --proto redis --rate 1000 -n 2 -t 0.5 -w 0.05 --json 2>&1)
	rc=$?
	got=$(jfield "$out" rate_achieved)
	if [ "$rc" -eq 0 ] && [ "$(jfield "$out" valid)" = true ] && ge "$got" 970 && ge 1030 "$got"; then
		ok "--target --proto redis --rate 1000: achieved $got/s, valid"
	else
		not_ok "--target --proto redis --rate 1000: exit $rc, achieved '$got'/s (970..1030): $out"
	fi
	# a key that holds a list: redis answers WRONGTYPE, the run fails
	out=$("$bench" --target "127.0.0.1:$rport" --proto redis:alist -t 0.2 -w 0 2>&1)
	rc=$?
	if [ "$rc" -eq 1 ] && echo "$out" | grep -q "redis answered an error.*WRONGTYPE"; then
		ok "--proto redis, an error reply: exit 1: $(echo "$out" | grep -o 'redis answered.*' | head -1)"
	else
		not_ok "--proto redis, an error reply: exit $rc, expected 1 and WRONGTYPE: $out"
	fi
	redis_down
fi

# nginx, keep-alive: each response is the header and Content-Length bytes,
# the same bytes curl sees
nport=$(free_port)
head -c 65536 /dev/urandom >"$tgt/www/64k"
cat >"$tgt/nginx.conf" <<EOC
daemon off;
master_process off;
pid $tgt/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path $tgt/tmp;
	proxy_temp_path $tgt/tmp;
	fastcgi_temp_path $tgt/tmp;
	keepalive_requests 10000000;
	default_type application/octet-stream;
	server { listen 127.0.0.1:$nport; root $tgt/www; }
}
EOC
if command -v nginx >/dev/null; then
	start_in "" nginx -p "$tgt" -e stderr -c "$tgt/nginx.conf"
	nginx_pid=$!
	if ! wait_listen "$nport" "$nginx_pid"; then
		not_ok "--target: nginx did not start: $(cat "$tgt/servers.log")"
	else
		want=$(curl -s -i "http://127.0.0.1:$nport/64k" | wc -c)
		out=$("$bench" --target "127.0.0.1:$nport" --proto http:/64k -n 2 -t 0.3 -w 0.05 --json 2>&1)
		rc=$?
		resp=$(jfield "$out" response_bytes_mean)
		if [ "$rc" -eq 0 ] && [ "$(jfield "$out" verified)" = true ] && [ "$resp" = "$want.0" ]; then
			ok "--target --proto http:/64k: $(jfield "$out" ops) responses of $want bytes each, as curl's"
		else
			not_ok "--target --proto http:/64k: exit $rc, response_bytes_mean '$resp' (curl: $want): $out"
		fi
		out=$("$bench" --target "127.0.0.1:$nport" --proto http:/missing -t 0.2 -w 0 2>&1)
		rc=$?
		if [ "$rc" -eq 1 ] && echo "$out" | grep -q "not a 2xx response.*404"; then
			ok "--proto http, a 404: exit 1: $(echo "$out" | grep -o 'http: not a 2xx.*' | head -1)"
		else
			not_ok "--proto http, a 404: exit $rc, expected 1 and the 404 named: $out"
		fi
	fi
	kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	nginx_pid=""
fi
usage_err "--proto http without --target" "needs --target" --proto http
usage_err "--target with -T accel" "-T tcp only" --target 127.0.0.1:1 -T accel
usage_err "--target without a port" "HOST:PORT" --target 127.0.0.1
usage_err "--target IPv6 without brackets" "\[ADDR\]:PORT" --target ::1:80
usage_err "--proto redis with --size" "sends its own request" --target 127.0.0.1:1 --proto redis -s 100
usage_err "--proto foo" "not echo, redis" --target 127.0.0.1:1 --proto foo

# under compat = strict (the default), a redis and the client in the
# accelerated cgroup: the client's non-blocking sockets are redirected (no
# strict rule keeps them on TCP), every reply still 11 bytes
if ! sm_daemon_start "$build" "sockmesh-bench-st-$$"; then
	not_ok "cannot start a private sockmeshd (strict)"
elif ! redis_up "$sm_cgmnt/$sm_tag"; then
	not_ok "--target, strict: redis-server did not start in the cgroup: $(cat "$tgt/servers.log")"
else
	redis-cli -p "$rport" set sockmesh-bench hello >/dev/null
	out=$(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$sm_cgmnt/$sm_tag" \
		"$bench" -c "$sm_conf" --target "127.0.0.1:$rport" --proto redis -n 2 -t 0.3 -w 0.05 --json 2>&1)
	rc=$?
	ops=$(jfield "$out" ops)
	red=$(jfield "$out" bytes_redirected)
	blk=$(jfield "$out" strict_blocking)
	if [ "$rc" -eq 0 ] && [ "$(jfield "$out" response_bytes_mean)" = 11.0 ] &&
		[ -n "$red" ] && ge "$red" $((ops * 11)) && [ "$blk" = 0 ] &&
		echo "$out" | grep -q '"check": "redirected"'; then
		ok "--target, strict, in the accelerated cgroup: $ops GETs, bytes_redirected +$red (>= the replies' $((ops * 11))), strict_blocking 0, check: redirected"
	else
		not_ok "--target, strict: exit $rc, ops '$ops', bytes_redirected '$red' (>= $((${ops:-0} * 11))), strict_blocking '$blk' (0), check redirected: $out"
	fi
	redis_down
fi
sm_daemon_cleanup

# the bench's blocking io_uring sockets: compat = fast (run-bench.sh)
if ! SM_COMPAT=fast sm_daemon_start "$build" "sockmesh-bench-st-$$"; then
	not_ok "cannot start a private sockmeshd"
	summary
	exit
fi

json=$sm_run/runs.json
"$bench" -c "$sm_conf" -m rr,crr,stream,stream-rw -T tcp,accel,uds -s 1K -t 0.2 \
	-w 0.05 --json >"$json" 2>"$sm_run/bench.err"
rc=$?
[ "$rc" -eq 0 ] || not_ok "sockmesh-bench exit $rc: $(cat "$sm_run/bench.err")"
# stream-rw with the reader poll()ing first (--rw-poll), and a 256 KiB rr
"$bench" -c "$sm_conf" -m stream-rw -T tcp,accel -s 64K -t 0.2 -w 0.05 \
	--rw-poll --json >"$sm_run/poll.json" 2>"$sm_run/bench.err"
rc=$?
[ "$rc" -eq 0 ] || not_ok "sockmesh-bench --rw-poll exit $rc: $(cat "$sm_run/bench.err")"
"$bench" -c "$sm_conf" -m rr -T tcp,accel,uds -s 256K -t 0.2 -w 0.05 \
	--json >"$sm_run/rr256.json" 2>"$sm_run/bench.err"
rc=$?
[ "$rc" -eq 0 ] || not_ok "sockmesh-bench rr 256K exit $rc: $(cat "$sm_run/bench.err")"

# the value of "KEY": in one run object (one line of the JSON array)
field() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\": \"\{0,1\}\([^\",}]*\).*/\1/p"
}

# check FILE MODE SIZE NAME TRANSPORTS...: each run there completed and was
# verified; accel redirected, tcp and uds left the counters alone
check() {
	f=$1 mode=$2 size=$3 label=$4
	shift 4
	for tr in "$@"; do
		run=$(grep "\"mode\": \"$mode\", \"transport\": \"$tr\", \"size\": $size," "$f")
		name="$mode $tr $label"
		if [ -z "$run" ]; then
			not_ok "$name: no result"
			continue
		fi
		ops=$(field "$run" ops)
		verified=$(field "$run" verified)
		red=$(field "$run" bytes_redirected)
		err=$(field "$run" error)
		if [ "$err" != null ] || [ "$verified" != true ]; then
			not_ok "$name: $(printf '%s\n' "$run" | sed -n 's/.*"error": //p')"
		elif [ "${ops:-0}" -le 0 ]; then
			not_ok "$name: no operation completed"
		elif [ -z "$red" ]; then
			not_ok "$name: no counters"
		elif [ "$tr" = accel ] && [ "$red" -le 0 ]; then
			not_ok "$name: $ops ops, verified, but bytes_redirected did not grow"
		elif [ "$tr" != accel ] && [ "$red" -ne 0 ]; then
			not_ok "$name: bytes_redirected grew by $red in a plain run"
		else
			ok "$name: $ops ops, verified, bytes_redirected +$red"
		fi
	done
}

for mode in rr crr stream stream-rw; do
	check "$json" "$mode" 1024 "1 KiB" tcp accel uds
done
check "$sm_run/poll.json" stream-rw 65536 "64 KiB --rw-poll" tcp accel
if [ "$(grep -c '"rw_poll": true' "$sm_run/poll.json")" -ne 2 ]; then
	not_ok "stream-rw --rw-poll: the runs do not say rw_poll: true"
fi
check "$sm_run/rr256.json" rr 262144 "256 KiB" tcp accel uds

summary
