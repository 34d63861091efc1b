#!/usr/bin/env bash
# Installs everything minivmm needs to build, test and boot its example guest, from Debian
# packages only. Safe to run again; uses sudo when not root.
set -euo pipefail

packages=(
  # build
  meson ninja-build g++ pkg-config
  # libraries (headers): KVM/VFIO uapi, Abseil, toml++, libfdt, protobuf, GoogleTest
  linux-libc-dev libabsl-dev libtomlplusplus-dev libfdt-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev
  # host-side kernel decompression and the kernel cache (SHA-256 keys, XXH3 checksums)
  liblzma-dev zlib1g-dev libzstd-dev liblz4-dev libssl-dev libxxhash-dev
  # guests and the nested-KVM harness: a Debian kernel, busybox, QEMU (outer level, TCG)
  linux-image-amd64 busybox-static cpio kmod xz-utils qemu-system-x86
  # the hostile-guest test's static L2 program (gcc and the static C library)
  gcc libc6-dev
  # libFuzzer targets for the guest-facing parsers (clang's fuzzer and sanitizer runtimes)
  clang-14 libclang-rt-14-dev
  # script helpers: the test summary and the harness's vmlinux extraction (python3), the boot
  # benchmark's timestamping (perl); neither is in a minimal Debian install
  python3 perl
)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
