#!/bin/bash
# shellcheck disable=SC2153 # VERSION, KREL: from the info files
# fetch.sh - download and unpack Debian's own kernel packages for vm-run.sh.
#
# Usage: scripts/kernels/fetch.sh [-u] [-q] ID... | all
#   ID    a kernel of scripts/kernels/kernels.list (see there), or "all"
#   -u    look again for a newer version even when ID is already fetched
#   -q    print only the resolved "ID VERSION KERNELRELEASE" lines
# Environment: SM_KCACHE  cache directory (default /var/cache/sockmesh-kernels)
#
# It keeps a private apt tree in $SM_KCACHE/apt (its own sources.list built
# from the suites in kernels.list, signed-by the system's
# /usr/share/keyrings/debian-archive-keyring.gpg, its own lists and
# archives; the system's /etc/apt is only read for apt's defaults and never
# changed), runs apt-get update on it and apt-get download's the kernel
# packages, then unpacks them with dpkg-deb -x. Result, per ID:
#   $SM_KCACHE/ID/root/            the unpacked packages
#   $SM_KCACHE/ID/root/lib/modules/KREL   modules (depmod run on them)
#   $SM_KCACHE/ID/vmlinuz          symlink to root/boot/vmlinuz-KREL (or to
#                                  root/lib/modules/KREL/vmlinuz for 7.x)
#   $SM_KCACHE/ID/info             ID=, PACKAGE=, VERSION=, KREL= lines
# An ID that is already fetched costs nothing (no network) unless -u.
# Needs: apt, dpkg-deb, depmod (package kmod), flock (util-linux). Root.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
LIST=${SM_KLIST:-$here/kernels.list}
CACHE=${SM_KCACHE:-/var/cache/sockmesh-kernels}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

die() { echo "fetch.sh: $*" >&2; exit 1; }
note() { [ "$quiet" = 1 ] || echo "fetch.sh: $*" >&2; }

refresh=0 quiet=0
while getopts uqh opt; do
	case $opt in
	u) refresh=1 ;;
	q) quiet=1 ;;
	h) sed -n '2,/^set -eu/p' "$0" | sed '$d; /^# shellcheck/d; s/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || die "usage: fetch.sh [-u] [-q] ID... | all (IDs: $(awk '!/^#/ && NF {printf "%s ", $1}' "$LIST"))"
[ -r "$LIST" ] || die "cannot read $LIST"
[ "$(id -u)" = 0 ] || die "run as root (apt-get and the cache in $CACHE)"
for t in apt-get apt-cache dpkg-deb dpkg depmod flock; do
	command -v "$t" >/dev/null || die "$t not found (apt-get install kmod util-linux)"
done
[ -r "$KEYRING" ] || die "$KEYRING missing (apt-get install debian-archive-keyring)"

ids=()
for a in "$@"; do
	if [ "$a" = all ]; then
		while read -r id _; do ids+=("$id"); done < <(awk '!/^#/ && NF' "$LIST")
	else
		awk -v id="$a" '!/^#/ && $1 == id {f=1} END {exit !f}' "$LIST" ||
			die "unknown kernel ID '$a' (not in $LIST)"
		ids+=("$a")
	fi
done

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # one fetch at a time: vm-run.sh may be started in parallel

APTD=$CACHE/apt
APT=(-o Dir::Etc::sourcelist="$APTD/sources.list" -o Dir::Etc::sourceparts=-
	-o Dir::Etc::preferences="$APTD/preferences" -o Dir::Etc::preferencesparts="$APTD/empty.d"
	-o Dir::State="$APTD/state" -o Dir::State::status="$APTD/state/status"
	-o Dir::Cache="$APTD/cache" -o Dir::Etc::Trusted="$KEYRING"
	-o Dir::Etc::TrustedParts="$APTD/empty.d" -o APT::Architecture=amd64
	-o APT::Architectures::=amd64 -o APT::Sandbox::User=root
	-o Acquire::Languages=none -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false)
updated=0

apt_update() {
	[ "$updated" = 1 ] && return 0
	mkdir -p "$APTD/state/lists/partial" "$APTD/cache/archives/partial" "$APTD/empty.d"
	: >"$APTD/preferences"
	[ -e "$APTD/state/status" ] || : >"$APTD/state/status"
	# the sources: every suite named in kernels.list
	awk '!/^#/ && NF {n = split($2, s, ","); for (i = 1; i <= n; i++) print s[i]}' "$LIST" |
		sort -u | while read -r suite; do
		case $suite in
		*-security) uri=http://deb.debian.org/debian-security ;;
		*) uri=http://deb.debian.org/debian ;;
		esac
		echo "deb [signed-by=$KEYRING] $uri $suite main"
	done >"$APTD/sources.list.new"
	mv "$APTD/sources.list.new" "$APTD/sources.list"
	note "apt-get update (private tree $APTD)"
	apt-get "${APT[@]}" -qq update >"$APTD/update.log" 2>&1 ||
		{ cat "$APTD/update.log" >&2; die "apt-get update failed (is deb.debian.org reachable?)"; }
	# apt-get update exits 0 when a suite is missing: say so
	if grep -E '^(W|E):' "$APTD/update.log" >&2; then
		note "warnings above from apt-get update"
	fi
	updated=1
}

# pattern -> extended regex: '*' matches a run without '-'
# shellcheck disable=SC2016 # sed, not shell, expressions
pat2re() { printf '%s' "$1" | sed 's/[].+?^$(){}|[\\]/\\&/g; s/\*/[^-]+/g'; }

# resolve ID: prints "PACKAGE VERSION" of the newest match in its suites
resolve() {
	local suites=$1 pat=$2 re prefix best_p="" best_v="" p v s
	re="^$(pat2re "$pat")\$"
	prefix=${pat%%\**}
	local names
	names=$(apt-cache "${APT[@]}" pkgnames "$prefix" | grep -E "$re" || true)
	[ -n "$names" ] || return 1
	# madison: "pkg | version | uri suite/component arch Packages"
	# shellcheck disable=SC2086 # names: one a word
	while IFS='|' read -r p v s; do
		read -r p <<<"$p"
		read -r v <<<"$v"
		read -r _ s _ <<<"$s"
		s=${s%%/*}
		case ",$suites," in *",$s,"*) ;; *) continue ;; esac
		if [ -z "$best_v" ] || dpkg --compare-versions "$v" gt "$best_v"; then
			best_p=$p best_v=$v
		fi
	done < <(apt-cache "${APT[@]}" madison $names)
	[ -n "$best_p" ] || return 1
	echo "$best_p $best_v"
}

# the package and its linux-* dependencies of the same kernel release,
# recursively: prints "PACKAGE=VERSION" lines
closure() {
	local krel=${1#linux-image-} todo=("$1=$2") seen=" " pv p v d dn dv
	while [ ${#todo[@]} -gt 0 ]; do
		pv=${todo[0]} todo=("${todo[@]:1}")
		case $seen in *" $pv "*) continue ;; esac
		seen="$seen$pv "
		echo "$pv"
		p=${pv%%=*} v=${pv#*=}
		while read -r d; do
			d=${d%%|*} # first alternative
			dn=$(echo "$d" | awk '{print $1}')
			dn=${dn%%:*}
			case $dn in linux-*"$krel"*) ;; *) continue ;; esac
			dv=$(echo "$d" | sed -n 's/.*(= *\([^)]*\)).*/\1/p')
			todo+=("$dn=${dv:-$v}")
		done < <(apt-cache "${APT[@]}" show "$p=$v" | awk '/^(Pre-)?Depends:/ {sub(/^[^:]*: */, ""); gsub(/, */, "\n"); print}')
	done
}

fetch_one() {
	local id=$1 line suites pat dir pkg ver krel d
	line=$(awk -v id="$id" '!/^#/ && $1 == id {print $2, $3; exit}' "$LIST")
	suites=${line%% *} pat=${line#* }
	dir=$CACHE/$id
	if [ "$refresh" = 0 ] && [ -s "$dir/info" ] && [ -e "$dir/vmlinuz" ]; then
		# shellcheck disable=SC1091 # written below
		. "$dir/info"
		echo "$id $VERSION $KREL"
		return 0
	fi
	apt_update
	read -r pkg ver < <(resolve "$suites" "$pat") ||
		die "$id: no package matching '$pat' in $suites"
	if [ -s "$dir/info" ] && grep -qxF "VERSION=$ver" "$dir/info" &&
		grep -qxF "PACKAGE=$pkg" "$dir/info" && [ -e "$dir/vmlinuz" ]; then
		# shellcheck disable=SC1091
		. "$dir/info"
		note "$id: $pkg $ver is still the newest"
		echo "$id $VERSION $KREL"
		return 0
	fi
	note "$id: $pkg $ver (from $suites)"
	local pkgs
	mapfile -t pkgs < <(closure "$pkg" "$ver")
	note "$id: downloading ${pkgs[*]}"
	rm -rf "$dir.new"
	mkdir -p "$dir.new/debs" "$dir.new/root"
	(cd "$dir.new/debs" && apt-get "${APT[@]}" -qq download "${pkgs[@]}") ||
		die "$id: apt-get download ${pkgs[*]} failed"
	for d in "$dir.new"/debs/*.deb; do
		dpkg-deb -x "$d" "$dir.new/root" || die "$id: dpkg-deb -x $d failed"
	done
	# merged-/usr packages ship usr/lib/modules only
	if [ ! -e "$dir.new/root/lib" ] && [ -d "$dir.new/root/usr/lib/modules" ]; then
		ln -s usr/lib "$dir.new/root/lib"
	fi
	krel=$(find "$dir.new/root/lib/modules/" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | head -n 1)
	if [ -z "$krel" ] || [ ! -d "$dir.new/root/lib/modules/$krel/kernel" ]; then
		die "$id: no lib/modules/KREL/kernel in ${pkgs[*]}"
	fi
	# the kernel: boot/vmlinuz-KREL, or (split packages of 7.x)
	# lib/modules/KREL/vmlinuz
	local vml
	for vml in "boot/vmlinuz-$krel" "lib/modules/$krel/vmlinuz" ""; do
		[ -n "$vml" ] && [ -e "$dir.new/root/$vml" ] && break
	done
	[ -n "$vml" ] || die "$id: no boot/vmlinuz-$krel nor lib/modules/$krel/vmlinuz in ${pkgs[*]}"
	# modules.dep & co are made by the package's postinst: make them here
	depmod -b "$dir.new/root" "$krel" || die "$id: depmod $krel failed"
	ln -s "root/$vml" "$dir.new/vmlinuz"
	printf 'ID=%s\nPACKAGE=%s\nVERSION=%s\nKREL=%s\nSUITES=%s\n' \
		"$id" "$pkg" "$ver" "$krel" "$suites" >"$dir.new/info"
	rm -rf "$dir.new/debs" # the .debs are not needed once unpacked
	rm -rf "$dir.old"
	[ -e "$dir" ] && mv "$dir" "$dir.old"
	mv "$dir.new" "$dir"
	rm -rf "$dir.old"
	echo "$id $ver $krel"
}

for id in "${ids[@]}"; do
	fetch_one "$id"
done
