#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ (ASan + UBSan) and runs each one.
#
# Usage: run-fuzzers.sh OUT_DIR [SECONDS_PER_TARGET]   (default: $MINIVMM_FUZZ_SECONDS or 30)
# A crash, leak or sanitizer report fails the run; libFuzzer leaves the input as OUT_DIR/crash-*.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: run-fuzzers.sh OUT_DIR [SECONDS]}
seconds=${2:-${MINIVMM_FUZZ_SECONDS:-30}}
mkdir -p "$out"

cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "run-fuzzers: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
absl="absl_status absl_statusor absl_strings absl_str_format absl_synchronization"

# target name -> sources besides the fuzzer itself
declare -A sources=(
  [virtqueue_fuzzer]="devices/virtio/virtqueue.cc devices/virtio/descriptor_chain.cc"
  [virtio_blk_fuzzer]="devices/virtio/virtio_blk_request.cc devices/virtio/descriptor_chain.cc"
  [kernel_image_fuzzer]="guest-firmware/bzimage.cc guest-firmware/kernel_payload.cc
    guest-firmware/elf_kernel.cc guest-firmware/kernel_image.cc guest-firmware/kaslr.cc
    guest-firmware/linux_loader.cc guest-firmware/e820.cc guest-firmware/zero_page.cc
    guest-firmware/long_mode.cc vmm/core/memory_layout.cc vmm/base/shared_bytes.cc"
  [http_request_fuzzer]="vmm/api/http_request.cc"
)
# target name -> pkg-config packages besides Abseil
declare -A packages=(
  [kernel_image_fuzzer]="liblzma zlib libzstd liblz4"
)
common="vmm/core/guest_memory.cc vmm/base/errno_status.cc vmm/base/log.cc"

status=0
for target in virtqueue_fuzzer virtio_blk_fuzzer kernel_image_fuzzer http_request_fuzzer; do
  libs="$absl ${packages[$target]:-}"
  binary=$out/$target
  # shellcheck disable=SC2086  # word lists on purpose
  (cd "$root" && "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I. $(pkg-config --cflags $libs) \
    "tests/fuzz/$target.cc" ${sources[$target]} $common -o "$binary" \
    $(pkg-config --libs $libs) -lpthread)
  corpus=$out/$target.corpus
  mkdir -p "$corpus"
  seeder=$here/${target%_fuzzer}_seeds.py  # well-formed inputs random bytes would not find
  [ ! -f "$seeder" ] || python3 "$seeder" "$corpus"
  echo "run-fuzzers: $target for ${seconds}s"
  if (cd "$out" && "$binary" -max_total_time="$seconds" -print_final_stats=1 "$corpus" \
      >"$out/$target.log" 2>&1); then
    runs=$(grep -m1 'stat::number_of_executed_units' "$out/$target.log" | awk '{print $2}')
    echo "run-fuzzers: $target: ${runs:-?} inputs, no crash"
  else
    echo "run-fuzzers: $target FAILED; last lines of its log:"
    tail -n 40 "$out/$target.log"
    status=1
  fi
done
exit $status
