// KASLR for a kernel booted from its decompressed payload, following the rules of the kernel's
// own decompressor (arch/x86/boot/compressed/kaslr.c and misc.c), so a cached boot keeps the
// address randomization a guest-decompressed boot gets.
//
// With CONFIG_RANDOMIZE_BASE the payload is vmlinux.bin followed by the table that
// arch/x86/tools/relocs emits: 32-bit little-endian words
//   0, 64-bit relocations..., 0, inverse 32-bit relocations..., 0, 32-bit relocations...
// Each entry is the low 32 bits of the kernel virtual address of a location to patch
// (sign-extended to 64 bits). Moving the kernel's virtual base by `delta` adds delta to every
// 64-bit and 32-bit location and subtracts it from every inverse one. The physical base needs
// no relocation: startup_64 runs wherever it is loaded (2 MiB aligned).
#ifndef MINIVMM_GUEST_FIRMWARE_KASLR_H_
#define MINIVMM_GUEST_FIRMWARE_KASLR_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "guest-firmware/elf_kernel.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {

// The kernel's virtual text mapping starts here (__START_KERNEL_map) ...
inline constexpr uint64_t kStartKernelMap = 0xffffffff80000000ull;
// ... and spans KERNEL_IMAGE_SIZE, 1 GiB when CONFIG_RANDOMIZE_BASE is set.
inline constexpr uint64_t kKernelImageSize = 1ull << 30;

struct KernelRelocations {
  std::vector<uint32_t> reloc64;
  std::vector<uint32_t> inverse32;
  std::vector<uint32_t> reloc32;
};

// Parses the relocation table that fills `table` exactly (the bytes after the ELF image).
// Errors say what is malformed: a missing terminator, a length not a multiple of 4.
absl::StatusOr<KernelRelocations> ParseKernelRelocations(std::span<const uint8_t> table);

// Where a randomized kernel goes: its physical base (the address of its lowest segment) and
// how far its virtual addresses move. Both are multiples of the kernel's alignment.
struct KaslrPlacement {
  uint64_t physical_base = 0;
  uint64_t virtual_delta = 0;
};

// Returns a uniformly random integer in [0, bound), bound > 0.
using RandomBelow = std::function<uint64_t(uint64_t bound)>;

// Picks a placement as the decompressor does: the physical base among the aligned slots in
// [kernel.physical_start, physical_limit - image span], the virtual one among the aligned slots
// that keep the image inside KERNEL_IMAGE_SIZE. When none can be chosen (an unaligned link
// address, no room) the error says why, for the log line of a boot at the link address.
absl::StatusOr<KaslrPlacement> ChooseKaslrPlacement(const ElfKernel& kernel, uint64_t alignment,
                                                    uint64_t physical_limit,
                                                    const RandomBelow& random);

// Patches the kernel, already loaded at placement.physical_base, for its new virtual base.
// Every location must lie inside a segment's file bytes; otherwise nothing is reported loaded
// and the error names the kernel and the address.
absl::Status ApplyKernelRelocations(GuestMemory& memory, const ElfKernel& kernel,
                                    const KernelRelocations& relocations,
                                    const KaslrPlacement& placement, const std::string& name);

// getrandom(2)-backed RandomBelow.
uint64_t SystemRandomBelow(uint64_t bound);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_KASLR_H_
