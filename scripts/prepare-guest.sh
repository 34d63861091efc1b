#!/usr/bin/env bash
# Puts the example guest in build/guest/: the Debian kernel (bzImage) and a busybox initramfs
# whose init prints a banner and drops to a shell (configs/example.toml boots them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/guest
mkdir -p "$out"
kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
if [ -z "$kernel" ]; then
  echo "prepare-guest: no /boot/vmlinuz-*: install linux-image-amd64 (scripts/install-deps.sh)" >&2
  exit 1
fi
[ -r "$kernel" ] || { echo "prepare-guest: cannot read $kernel (run as root)" >&2; exit 1; }
cp -u "$kernel" "$out/vmlinuz"
"$root/tests/integration/lib/build-l2-initramfs.sh" "$out/initramfs.cpio.gz"
echo "prepare-guest: $out/vmlinuz ($(basename "$kernel")), $out/initramfs.cpio.gz"
