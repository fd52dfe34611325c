#!/bin/sh
# Make a minimal Debian base image with debootstrap and import it.
#
#   contrib/mkimage-debootstrap.sh [-s SUITE] [-a ARCH] [-m MIRROR] [-t TAG] [-c CACHEDIR] [-n]
#
#   -s SUITE     Debian suite (default: this machine's, from /etc/os-release)
#   -a ARCH      architecture (default: dpkg --print-architecture)
#   -m MIRROR    package mirror (default: the first Debian mirror in this
#                machine's apt sources, deb822 or one-line format)
#   -t TAG       image to import as (default: debian-debootstrap:SUITE)
#   -c CACHEDIR  where the root file system tar is kept between runs
#                (default: /var/cache/dockerpy-test); the tar is named
#                debootstrap-SUITE-ARCH.tar and reused when present
#   -n           make (or find) the tar, print its path, import nothing
#   -p           print the suite, architecture, mirror and tar path it would
#                use (one per line) and exit
#
# The variant is minbase (essential packages plus apt: bash, coreutils, dpkg).
# The image is imported with `$DOCKER import` (DOCKER defaults to `docker`;
# DOCKER_HOST chooses the daemon).  Needs root and debootstrap
# (contrib/install.sh installs it).  Everything made in a temporary
# directory is unmounted and removed on exit, success or not.
set -eu

suite=""
arch=""
mirror=""
tag=""
cache=/var/cache/dockerpy-test
tar_only=0
print_only=0
while getopts s:a:m:t:c:np opt; do
    case $opt in
    s) suite=$OPTARG ;;
    a) arch=$OPTARG ;;
    m) mirror=$OPTARG ;;
    t) tag=$OPTARG ;;
    c) cache=$OPTARG ;;
    n) tar_only=1 ;;
    p) print_only=1 ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
    esac
done

if [ -z "$suite" ]; then
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$suite" ] || { echo "cannot tell the suite; pass -s SUITE" >&2; exit 2; }
fi
[ -n "$arch" ] || arch=$(dpkg --print-architecture)
[ -n "$tag" ] || tag="debian-debootstrap:$suite"

# The first Debian archive URI of the configured apt sources (the security
# archive has no dists/SUITE of its own).
find_mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
    done
}
if [ -z "$mirror" ]; then
    mirror=$(find_mirror | grep -v -- '-security' | grep -v '^cdrom:' | head -n 1 || true)
    [ -n "$mirror" ] || { echo "no Debian mirror in the apt sources; pass -m MIRROR" >&2; exit 2; }
fi

out="$cache/debootstrap-$suite-$arch.tar"
if [ "$print_only" = 1 ]; then
    printf '%s\n' "$suite" "$arch" "$mirror" "$out"
    exit 0
fi
if [ ! -s "$out" ]; then
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || {
        echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 3; }
    mkdir -p "$cache"
    work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-debootstrap.XXXXXX")
    cleanup() {
        # debootstrap mounts /proc and /sys inside the target; never remove
        # through a mount.
        grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
        rm -rf --one-file-system "$work"
        rm -f "$out.tmp.$$"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    echo "debootstrap $suite ($arch) from $mirror ..." >&2
    PATH=$PATH:/usr/sbin:/sbin debootstrap --variant=minbase --arch="$arch" \
        "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        echo "debootstrap failed:" >&2; tail -n 20 "$work/debootstrap.log" >&2
        [ -f "$work/rootfs/debootstrap/debootstrap.log" ] &&
            tail -n 20 "$work/rootfs/debootstrap/debootstrap.log" >&2
        exit 1
    }
    # What a base image should not carry: package lists and caches, the
    # host's resolver and name.
    rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin \
        "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/log/"*.log
    : > "$work/rootfs/etc/resolv.conf"
    echo localhost > "$work/rootfs/etc/hostname"
    tar --numeric-owner --xattrs -C "$work/rootfs" -cf "$out.tmp.$$" .
    mv "$out.tmp.$$" "$out"
fi

if [ "$tar_only" = 1 ]; then
    echo "$out"
    exit 0
fi
${DOCKER:-docker} import - "$tag" <"$out" >/dev/null
echo "$tag"
