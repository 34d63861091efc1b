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
)
common="vmm/guest_memory.cc vmm/errno_status.cc vmm/log.cc"

status=0
for target in virtqueue_fuzzer virtio_blk_fuzzer; do
  binary=$out/$target
  # shellcheck disable=SC2086  # word lists on purpose
  (cd "$root" && "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I. $(pkg-config --cflags $absl) \
    "tests/fuzz/$target.cc" ${sources[$target]} $common -o "$binary" \
    $(pkg-config --libs $absl) -lpthread)
  corpus=$out/$target.corpus
  mkdir -p "$corpus"
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
