# real-clients.jq - the report of perf/real-clients.sh, from its runs.
#   jq -n -r --arg fmt json|md|tsv --argjson meta META \
#      --slurpfile runs runs.jsonl --slurpfile wl workloads.jsonl -f real-clients.jq
# runs: {id, transport, round, metrics: {...} or null, error, counters: {name: delta}}
# wl:   {id, group, param, transports, label, metric, unit, better}
# The counters are whatever `sockmesh status --json` lists: iterated, never named,
# except msgs_redirected and msgs_passed, which get their own columns.

def median:
	map(select(. != null)) | sort
	| if length == 0 then null
	  elif length % 2 == 1 then .[(length - 1) / 2]
	  else (.[length / 2 - 1] + .[length / 2]) / 2 end;

# the median of each metric over the runs that completed
def med_metrics($rs):
	($rs | map(.metrics) | map(select(. != null))) as $ms
	| if ($ms | length) == 0 then null
	  else reduce ($ms[0] | keys_unsorted[]) as $k ({}; .[$k] = ($ms | map(.[$k]) | median))
	  end;

def sum_counters($rs):
	reduce ($rs[] | (.counters // {}) | to_entries[]) as $e ({}; .[$e.key] += $e.value);

def moved: to_entries | map(select(.value != 0));

def fmt:
	if . == null then "-"
	elif . >= 100 then (round | tostring)
	elif . >= 10 then ((. * 10 | round) / 10 | tostring)
	else ((. * 100 | round) / 100 | tostring) end;

def fix2: if . == null then "-" else (. * 100 | round) as $n
	| "\($n / 100 | floor).\($n % 100 | tostring | if length < 2 then "0" + . else . end)" end;

# "p50 / p99" of a median, or -
def pct: if . == null or .p99_us == null then "-" else "\(.p50_us | fmt) / \(.p99_us | fmt)" end;

def arrow: if .better == "higher" then "▲" else "▼" end;

def summary:
	$wl | map(select(.id as $i | any($runs[]; .id == $i)))
	| map(. as $w
	| ($runs | map(select(.id == $w.id))) as $r
	| $w + {transports: ($w.transports | map(. as $t
		| ($r | map(select(.transport == $t))) as $rt
		| {key: $t, value: {
			median: med_metrics($rt),
			failed: ($rt | map(select(.metrics == null)) | length),
			counters: sum_counters($rt),
			runs: ($rt | map(del(.id, .transport)))}})
		| from_entries)}
	| .transports.plain.median[$w.metric] as $base
	| .ratio = (.transports | with_entries(select(.key != "plain")
		| .value = (.value.median[$w.metric] as $v
			| if $v == null or $base == null or $base == 0 then null else $v / $base end)))
	| (.transports.accel.counters // {}) as $ac
	| (($ac.msgs_redirected // 0) + ($ac.msgs_passed // 0)) as $all
	| .redirected_share = (if $all > 0 then ($ac.msgs_redirected // 0) / $all else null end)
	| .check = (
		if any(.transports[]; .failed > 0) then "FAILED"
		elif any(.transports.accel.runs[]?; (.counters.msgs_redirected // 0) == 0
			and ((.counters.strict_blocking // 0) + (.counters.strict_rcvlowat // 0)
			     + (.counters.strict_peek_off // 0)) > 0)
		then "TCP (strict)"
		elif any(.transports.accel.runs[]?; (.counters.msgs_redirected // 0) == 0)
		then "NOT REDIRECTED"
		elif any(.transports | to_entries[] | select(.key != "accel") | .value.counters[]; . != 0)
		then "COUNTERS MOVED"
		else "ok" end));

# an under-load PARAM, SIZE@RATE or SIZE@P% (P % of plain's closed-loop rate,
# which the run measured and kept in $meta.ul_rates)
def ul_param: (split("@")) as [$sz, $r]
	| if ($r | endswith("%")) then
		(($meta.ul_rates // []) | map(select(.size == ($sz | tonumber))) | .[0]) as $m
		| if $m then "\($sz) B @ \($m.rate) msg/s (\($r) of plain's closed loop, \($m.closed_loop)/s)"
		  else "\($sz) B @ \($r) of plain's closed loop" end
	  else "\($sz) B @ \($r) msg/s" end;
def md_counters: moved | map("\(.key) \(.value)") | join(", ") | if . == "" then "-" else . end;

def md_figure($w): if . == null then "failed" else .[$w.metric] | fmt end;

def md:
	summary as $s
	| "# Real clients: accelerated vs plain loopback TCP",
	"",
	"- \($meta.when), Linux \($meta.kernel), \($meta.cpus) CPUs; `\($meta.command)`; compat = \($meta.compat // "fast")",
	"- each figure: the median of \($meta.rounds) run\(if $meta.rounds > 1 then "s" else "" end) of \($meta.time_s) s; in every round, each workload ran plain, accel (and uds) one after the other",
	"- plain: client and server in a private network namespace and a private cgroup sockmesh is not attached to; accel: the same namespace, in the cgroup of a private sockmeshd (`sockmesh run`); uds: a UNIX socket (plain cgroup)",
	"- ▲ higher is better, ▼ lower is better: accel/plain above 1 (▲) or below 1 (▼) means sockmesh is faster",
	"- iperf3: one stream, `-l SIZE`, receiver's Gbit/s. sockperf ping-pong: TCP, one-way latency (half the round trip, as sockperf reports it), µs. sockperf under-load: a fixed message rate, `--full-rtt` (the whole round trip), every message echoed, p50 µs. redis-benchmark: GET of a 3-byte value, requests/s, each run as many requests as plain served in \($meta.time_s) s (measured once first). pgbench: select-only (`-S`), one thread, transactions/s, against a private PostgreSQL cluster per transport. Python and JVM: perf/clients/ (redis_get.py, RedisGet.java), GET of the same 3-byte value on one connection in a closed loop, requests/s after a warm-up (0.5 s, the JVM 1 s); Debian's python3 (a plain blocking socket, and asyncio) and default JDK (java.net.Socket, blocking, and a non-blocking NIO Selector). Under `compat = strict` the blocking rows stay on TCP by design: their redirected share says so. HTTP: nginx-light (one process, sendfile and tcp_nopush on, as Debian's nginx.conf; the sendfile off rows: header and body written through nginx's 32 KiB output buffers) and wrk (1 thread, \($meta.http_conns) keep-alive connections unless the row says otherwise), requests/s; the proxy rows put a second nginx (proxy_pass, keep-alive upstream connections, no temporary files) or HAProxy 2.6 (one thread, mode http) in front of that nginx, both in the row's transport",
	"- counters: the sums over the accel runs. msgs_redirected and msgs_passed count the messages of sockets in the socket map; a socket that has left it (a `sockets_left` counter, where the datapath has one) is plain TCP from then on and counted no more, so the redirected share is of the counted messages, not of all the bytes the tool moved",
	"- no UNIX socket for iperf3 (TCP/UDP/SCTP only), sockperf 3.7 (Debian 12: no UNIX socket support) and HTTP (nginx can listen on a UNIX socket, but wrk cannot connect to one)",
	"",
	"| workload | | unit | plain | accel | uds | accel/plain | uds/plain | p50 / p99 µs plain | p50 / p99 µs accel | p50 / p99 µs uds | accel msgs_redirected | accel msgs_passed | redirected (of the counted msgs) | other counters (accel runs) | check |",
	"| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
	($s[] | select(.role == "main") | . as $w | .transports as $t | ($t.accel.counters // {}) as $ac
		| "| \(.label) | \(arrow) | \(.unit) | \($t.plain.median | md_figure($w)) | \($t.accel.median | md_figure($w)) | \(if $t.uds then ($t.uds.median | md_figure($w)) else "-" end) | \(.ratio.accel | fix2) | \(.ratio.uds | fix2) | \($t.plain.median | pct) | \($t.accel.median | pct) | \($t.uds.median | pct) | \($ac.msgs_redirected // "-") | \($ac.msgs_passed // "-") | \(if .redirected_share then "\(.redirected_share * 1000 | round / 10)%" else "-" end) | \($ac | del(.msgs_redirected, .msgs_passed) | md_counters) | \(.check) |"),
	"",
	(($s | map(select((.role | startswith("xcheck:")) and .group == "iperf3"))) as $xs
	| if ($xs | length) == 0 then empty else
	"## Cross-check: sockmesh-bench's plain TCP against iperf3",
	"",
	"Before trusting sockmesh-bench's ratios: its blocking stream (`-m stream-rw`: write() of SIZE bytes, the reader read()s up to SIZE bytes at a time, one connection) at iperf3's write sizes, in the same rounds and namespace; Gbit/s, medians. iperf3's reader calls select() before every read() (one pselect6 per read under strace): `--rw-poll` makes sockmesh-bench's reader poll() before every read() too. Where the reader is the bottleneck (small writes), the plain blocking reader is faster than iperf3's.",
	"",
	"| write size | iperf3 plain | stream-rw plain | stream-rw / iperf3 | stream-rw --rw-poll plain | --rw-poll / iperf3 | iperf3 accel/plain | stream-rw accel/plain | stream-rw accel counters |",
	"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
	($s[] | select(.role == "main" and .group == "iperf3") | . as $i
		| ($xs | map(select(.role == "xcheck:" + $i.id and (.id | startswith("bench-rw-")))) | .[0]) as $rw
		| ($xs | map(select(.role == "xcheck:" + $i.id and (.id | startswith("bench-rwp-")))) | .[0]) as $rwp
		| $i.transports.plain.median.gbit_s as $base
		| def rel: if . and $base then . / $base else null end;
		"| \($i.param) | \($base | fmt) | \($rw.transports.plain.median.gbit_s | fmt) | \($rw.transports.plain.median.gbit_s | rel | fix2) | \($rwp.transports.plain.median.gbit_s | fmt) | \($rwp.transports.plain.median.gbit_s | rel | fix2) | \($i.ratio.accel | fix2) | \($rw.ratio.accel | fix2) | \($rw.transports.accel.counters // {} | md_counters) |"),
	"" end),
	(($s | map(select((.role | startswith("xcheck:")) and .group == "sockperf"))) as $xs
	| if ($xs | length) == 0 then empty else
	"## Cross-check: sockperf under load against sockmesh-bench's open loop",
	"",
	"The same message size and rate, plain and accelerated, in the same rounds and namespace: `sockperf under-load --tcp -m SIZE --mps RATE --full-rtt --reply-every 1` against `sockperf sr --tcp` (sockperf paces its sender at RATE whatever the replies; the server echoes every message; p50 and p99 from its `---> percentile` lines, full round trip: `--full-rtt`, where sockperf's default is half of it) beside `sockmesh-bench -m rr -s SIZE --rate RATE` (one connection, one request in flight, latency from each request's intended send time, full round trip). µs, medians. sockperf measures from the time it actually sent, so a sender it delays (its pacing busy-waits) is not counted; sockmesh-bench counts it.",
	"",
	"| size @ rate | sockperf plain p50 / p99 | bench plain p50 / p99 | sockperf accel p50 / p99 | bench accel p50 / p99 | sockperf accel/plain p99 | bench accel/plain p99 | achieved rate plain (sockperf / bench) | sockperf accel counters | bench accel counters |",
	"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
	($s[] | select(.role == "main" and (.id | startswith("sockperf-ul-"))) | . as $u
		| ($xs | map(select(.role == "xcheck:" + $u.id)) | .[0]) as $b
		| def p99r: if .accel.median.p99_us and .plain.median.p99_us and .plain.median.p99_us > 0
			then .accel.median.p99_us / .plain.median.p99_us else null end;
		"| \($u.param | ul_param) | \($u.transports.plain.median | pct) | \($b.transports.plain.median | pct) | \($u.transports.accel.median | pct) | \($b.transports.accel.median | pct) | \($u.transports | p99r | fix2) | \($b.transports | p99r | fix2) | \($u.transports.plain.median.rate | fmt) / \($b.transports.plain.median.rate | fmt) | \($u.transports.accel.counters // {} | md_counters) | \($b.transports.accel.counters // {} | md_counters) |"),
	"" end),
	"## Every run",
	"",
	"Counters: the growth of the sockmesh counters during the run, every counter `sockmesh status --json` lists that moved (the JSON report has all of them, zeros too). A plain or uds run must move none; an accel run must move msgs_redirected.",
	"",
	"| workload | transport | round | figure | p99 µs | counters | error |",
	"| --- | --- | ---: | ---: | ---: | --- | --- |",
	($s[] | . as $w | .transports | to_entries[] | .key as $tr | .value.runs[]
		| "| \($w.label) | \($tr) | \(.round) | \(.metrics | md_figure($w)) | \(.metrics.p99_us | fmt) | \(.counters | md_counters) | \(.error // (.metrics.retried // "") | gsub("[|\n]"; " ")) |"),
	"";

def tsv:
	summary[] | select(.role == "main") | "\(.label) \(arrow)\t\(.ratio.accel // "-")\t\(.ratio.uds // "-")";

if $fmt == "json" then {meta: $meta, workloads: summary}
elif $fmt == "md" then md
else tsv end
