#!/bin/sh
# base-image.sh [IMAGE] - make sure a Debian bookworm base image for
# deploy/Containerfile exists in podman's store as IMAGE (default
# localhost/sockmesh-base:bookworm), and print its name.
#
# 1. IMAGE is there already: nothing to do (it is kept between runs).
# 2. `podman pull docker.io/library/debian:bookworm` works: tag it IMAGE.
# 3. Otherwise (no container registry reachable, only Debian's archive):
#    debootstrap --variant=minbase bookworm into a temporary directory, from
#    the mirror this host's apt uses, and `podman import` it as IMAGE.
#
# Needs root (debootstrap). Exit status 0 with the name on stdout, or 1.
set -eu
image=${1:-localhost/sockmesh-base:bookworm}

if podman image exists "$image"; then
	echo "$image"
	exit 0
fi

if timeout 120 podman pull -q docker.io/library/debian:bookworm >/dev/null 2>&1; then
	podman tag docker.io/library/debian:bookworm "$image"
	echo "base-image.sh: pulled debian:bookworm as $image" >&2
	echo "$image"
	exit 0
fi

# the host's Debian mirror (deb822 or one-line sources), else the default
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p; s/^deb  *\(http[^ ]*debian\) .*/\1/p' \
	/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
	head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || {
	echo "base-image.sh: no registry reachable and debootstrap is missing (scripts/setup.sh --deploy)" >&2
	exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/sockmesh-base.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "base-image.sh: no registry reachable; debootstrap bookworm from $mirror (a few minutes)" >&2
if ! debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" \
	>"$tmp/debootstrap.log" 2>&1; then
	tail -n 20 "$tmp/debootstrap.log" >&2
	echo "base-image.sh: debootstrap failed" >&2
	exit 1
fi
# what a registry image leaves out: apt caches, logs
rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb \
	"$tmp/rootfs/var/lib/apt/lists/"* "$tmp/rootfs/var/log/"*
tar -C "$tmp/rootfs" -c . |
	podman import -q --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "base-image.sh: imported the debootstrap rootfs as $image" >&2
echo "$image"
