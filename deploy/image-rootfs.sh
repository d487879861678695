#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Stage the root filesystem of the ephport image: the binary, exactly the shared libraries
# the dynamic loader resolves for it (ldd), the loader itself, and the copyright files of
# the Debian packages they come from. deploy/Containerfile copies the result into an empty
# (FROM scratch) image. Called by 'make image'.
#
# Why not a static binary: Debian 12 ships no static archive of cJSON, and libmicrohttpd
# pulls in GnuTLS and p11-kit, which have none either; a self-contained dynamic binary
# uses the very libraries the tests ran against.
#
# usage: deploy/image-rootfs.sh BINARY ROOTFS   (ROOTFS is emptied first)
set -eu

die() { echo "image-rootfs: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 BINARY ROOTFS"
bin=$1 root=$2
[ -x "$bin" ] || die "$bin is not an executable file: run make first"
[ -n "$root" ] && [ "$root" != / ] || die "refusing to use '$root' as the image root"

rm -rf "$root"
mkdir -p "$root/usr/sbin"
trap 'rm -rf "$root"' EXIT   # a half-staged root never reaches the image

install -m 0755 "$bin" "$root/usr/sbin/ephport"
# debug info is for developers; the image carries the code only
strip --strip-debug "$root/usr/sbin/ephport"

# copy a file to the image under the path it has on this host, with symlinks in the
# directory part resolved (Debian 12 is merged-/usr: /lib is a link to usr/lib), the file
# under the name the loader asks for
copy() {
	dir=$(cd "$(dirname "$1")" && pwd -P)
	mkdir -p "$root$dir"
	cp -L "$1" "$root$dir/$(basename "$1")"
	pkg=$(dpkg-query -S "$1" 2>/dev/null || dpkg-query -S "$dir/$(basename "$1")" 2>/dev/null) ||
		return 0
	pkg=${pkg%%:*}
	if [ -f "/usr/share/doc/$pkg/copyright" ] && [ ! -e "$root/usr/share/doc/$pkg" ]; then
		mkdir -p "$root/usr/share/doc/$pkg"
		cp "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/"
	fi
}

interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] || die "$bin has no program interpreter: nothing to resolve"
libs=$(ldd "$bin") || die "ldd $bin failed"
# "libfoo.so.1 => /path (0x...)" and the loader's own line "/lib64/ld-linux... (0x...)"
missing=$(printf '%s\n' "$libs" | awk '/=> not found/ { print $1 }')
[ -z "$missing" ] || die "$bin needs libraries this host lacks:" $missing
for lib in $(printf '%s\n' "$libs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
	copy "$lib"
done
copy "$interp"
# ephport top draws with ncurses, which needs the terminal's terminfo entry: the usual ones
for term in x/xterm x/xterm-256color s/screen s/screen-256color t/tmux t/tmux-256color \
	v/vt100 l/linux; do
	[ -e "/lib/terminfo/$term" ] || die "/lib/terminfo/$term is missing (ncurses-base)"
	copy "/lib/terminfo/$term"
done
# the loader must be found where the binary asks for it
case $interp in
/lib64/*) [ -e "$root/lib64" ] || ln -s usr/lib64 "$root/lib64" ;;
esac
[ -e "$root/lib" ] || ln -s usr/lib "$root/lib"

# mount points and the agent's run directory; the rest is read-only at run time
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/run/ephport" "$root/tmp"
chmod 1777 "$root/tmp"

trap - EXIT
