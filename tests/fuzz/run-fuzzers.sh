#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ (ASan + UBSan) and runs each one.
#
# Usage: run-fuzzers.sh OUT_DIR [SECONDS_PER_TARGET]   (default: $MINIVMM_FUZZ_SECONDS or 20)
# A crash, leak or sanitizer report fails the run; libFuzzer leaves the input as OUT_DIR/crash-*.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: run-fuzzers.sh OUT_DIR [SECONDS]}
seconds=${2:-${MINIVMM_FUZZ_SECONDS:-20}}
mkdir -p "$out"

cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "run-fuzzers: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
absl="absl_status absl_statusor absl_strings absl_str_format absl_synchronization"

# Device headers include the generated headers of their saved-state messages (*.pb.h): generate
# them here, beside the binaries, as meson does for the g++ build.
protoc=$(command -v protoc || true)
[ -n "$protoc" ] || { echo "run-fuzzers: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
gen=$out/gen
mkdir -p "$gen"
(cd "$root" && "$protoc" --proto_path=. --cpp_out="$gen" devices/pci/pci_state.proto \
  devices/virtio/virtio_state.proto)
pci_state="$gen/devices/pci/pci_state.pb.cc"
virtio_state="$gen/devices/virtio/virtio_state.pb.cc"

# target name -> sources besides the fuzzer itself
declare -A sources=(
  [virtqueue_fuzzer]="devices/virtio/virtqueue.cc devices/virtio/descriptor_chain.cc"
  [virtio_blk_fuzzer]="devices/virtio/virtio_blk_request.cc devices/virtio/descriptor_chain.cc"
  [kernel_image_fuzzer]="guest-firmware/bzimage.cc guest-firmware/kernel_payload.cc
    guest-firmware/elf_kernel.cc guest-firmware/kernel_image.cc guest-firmware/kaslr.cc
    guest-firmware/linux_loader.cc guest-firmware/e820.cc guest-firmware/zero_page.cc
    guest-firmware/long_mode.cc vmm/core/memory_layout.cc vmm/base/shared_bytes.cc"
  [http_request_fuzzer]="vmm/api/http_request.cc"
  [msix_table_fuzzer]="devices/pci/msix.cc $pci_state"
  [virtio_pci_fuzzer]="devices/virtio/virtio_pci_function.cc
    devices/virtio/virtio_pci_common_config.cc devices/virtio/virtqueue.cc
    devices/virtio/descriptor_chain.cc devices/pci/pci_config_space.cc devices/pci/msix.cc
    vmm/core/bus.cc vmm/base/event_fd.cc $pci_state $virtio_state"
  [vfio_config_fuzzer]="passthrough/vfio_config_virtualizer.cc devices/pci/pci_config_space.cc
    $pci_state"
  [vm_config_fuzzer]="vmm/config/config.cc vmm/config/config_values.cc
    vmm/core/memory_layout.cc vmm/base/pci_address.cc"
)
# target name -> pkg-config packages besides Abseil
declare -A packages=(
  [kernel_image_fuzzer]="liblzma zlib libzstd liblz4"
  [msix_table_fuzzer]="protobuf"
  [virtio_pci_fuzzer]="protobuf"
  [vfio_config_fuzzer]="protobuf"
  [vm_config_fuzzer]="tomlplusplus"
)
targets="virtqueue_fuzzer virtio_blk_fuzzer kernel_image_fuzzer http_request_fuzzer
  msix_table_fuzzer virtio_pci_fuzzer vfio_config_fuzzer vm_config_fuzzer"
common="vmm/core/guest_memory.cc vmm/base/errno_status.cc vmm/base/log.cc"

build() {
  local target=$1 libs="$absl ${packages[$1]:-}"
  rm -f "$out/$target"  # a binary from an earlier run must not stand in for a failed build
  # shellcheck disable=SC2086  # word lists on purpose
  (cd "$root" && "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I. -I"$gen" $(pkg-config --cflags $libs) \
    "tests/fuzz/$target.cc" ${sources[$target]} $common -o "$out/$target" \
    $(pkg-config --libs $libs) -lpthread) >"$out/$target.build.log" 2>&1
}

# Build on every core first (most of the smoke's time is compiling), then run one at a time.
jobs_max=$(nproc)
for target in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  build "$target" &
done
wait

status=0
for target in $targets; do
  binary=$out/$target
  if [ ! -x "$binary" ]; then
    echo "run-fuzzers: $target does not build:"
    tail -n 40 "$out/$target.build.log"
    status=1
    continue
  fi
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
