#!/bin/sh
# Builds the initramfs of the vnet trace guest: guest/out/initramfs.cpio.gz.
#
# Inputs (Debian packages only): busybox-static (/bin/busybox, a static
# binary), cpio, gzip, and the kernel of linux-image-amd64 in /boot. The Debian
# kernel boots this initramfs with no modules: the 8250 serial console
# (ttyS0), initramfs/gzip, devtmpfs, proc, sysfs and tmpfs are all built in
# (CONFIG_SERIAL_8250_CONSOLE=y, CONFIG_RD_GZIP=y, CONFIG_DEVTMPFS=y,
# CONFIG_TMPFS=y); the guest has no disk. Its one NIC is QEMU's e1000, whose
# driver is a module of that same kernel package with no dependencies
# (/lib/modules/VERSION/.../e1000.ko), copied in as /lib/e1000.ko: guest/init
# loads it and configures eth0 when the kernel command line asks for it
# (vnet.ip=ADDR/PREFIX).
#
# Idempotent: the archive is rebuilt only when an input (guest/init,
# guest/workloads/*, the busybox binary, this script) is newer than it, and is
# reproducible (sorted entries, fixed mtimes, root ownership) so a rebuild of
# the same inputs gives the same bytes. guest/out/vmlinuz is a symlink to the
# newest /boot/vmlinuz-*. Prints the two paths on success.
#
# Usage: scripts/guest-build.sh [--force]
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/guest"
out="$src/out"
archive="$out/initramfs.cpio.gz"
busybox=/bin/busybox

missing=""
[ -x "$busybox" ] || missing="$missing busybox-static"
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
command -v gzip >/dev/null 2>&1 || missing="$missing gzip"
kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$kernel" ] || missing="$missing linux-image-amd64"
e1000="/lib/modules/${kernel#/boot/vmlinuz-}/kernel/drivers/net/ethernet/intel/e1000/e1000.ko"
[ -z "$kernel" ] || [ -r "$e1000" ] || missing="$missing linux-image-amd64(e1000.ko)"
if [ -n "$missing" ]; then
  echo "guest-build: missing Debian packages:$missing (apt-get install$missing)" >&2
  exit 2
fi
# A dynamically linked busybox (package busybox, not busybox-static) cannot run alone in the initramfs.
if [ -r "$busybox" ] && od -An -c -j 0 -N 4096 "$busybox" | tr -d ' \n' | grep -q 'ld-linux'; then
  echo "guest-build: $busybox is dynamically linked; install busybox-static" >&2
  exit 2
fi

mkdir -p "$out"
[ "$(readlink "$out/vmlinuz" 2>/dev/null)" = "$kernel" ] || ln -sfn "$kernel" "$out/vmlinuz"

force=0
[ "${1:-}" = "--force" ] && force=1
if [ "$force" = 0 ] && [ -s "$archive" ]; then
  stale=$(find "$src/init" "$src/workloads" "$busybox" "$e1000" "$0" -newer "$archive" 2>/dev/null | head -n 1)
  if [ -z "$stale" ]; then
    echo "initramfs $archive (up to date)"
    echo "kernel $kernel"
    exit 0
  fi
fi

stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
mkdir -p "$stage/bin" "$stage/lib" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/tmp" "$stage/work" "$stage/workloads"
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$src/init" "$stage/init"
cp "$e1000" "$stage/lib/e1000.ko"
cp "$src"/workloads/*.sh "$stage/workloads/"
chmod 0755 "$stage/init" "$stage/bin/busybox" "$stage"/workloads/*.sh
find "$stage" -exec touch -h -d @0 {} +

tmp="$archive.tmp.$$"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n > "$tmp"
mv -f "$tmp" "$archive"
echo "initramfs $archive (built, $(wc -c < "$archive") bytes)"
echo "kernel $kernel"
