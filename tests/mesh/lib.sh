# tests/mesh/lib.sh - what the mesh suites (run.sh, ambient.sh) share;
# sourced after scripts/lib.sh, with $build, $conf and $tmp set by the suite.

note() { echo "    $*"; }

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
