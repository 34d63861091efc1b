// An uncompressed x86-64 Linux kernel (vmlinux) as an ELF64 executable, booted at its entry
// point with the zero page in RSI (as Firecracker boots one).
#ifndef MINIVMM_GUEST_FIRMWARE_ELF_KERNEL_H_
#define MINIVMM_GUEST_FIRMWARE_ELF_KERNEL_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/shared_bytes.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {

struct ElfSegment {
  uint64_t file_offset = 0;
  uint64_t file_size = 0;
  uint64_t memory_size = 0;       // >= file_size; the rest is zero-filled (bss)
  uint64_t physical_address = 0;  // p_paddr: where the segment goes in guest memory
};

struct ElfKernel {
  uint64_t entry = 0;                // physical entry address (vmlinux: ENTRY(phys_startup_64))
  std::vector<ElfSegment> segments;  // PT_LOAD only, in file order
  // Lowest physical address and end of the highest segment.
  uint64_t physical_start = 0;
  uint64_t physical_end = 0;
  // File offset where what the ELF headers describe ends (headers, segments, section headers):
  // a kernel's decompressed payload appends its relocation table there (guest-firmware/kaslr.h).
  uint64_t image_end = 0;
};

// True if bytes start with the ELF magic (whatever the class/machine).
bool LooksLikeElf(std::span<const uint8_t> bytes);

// Validates an ELF64 little-endian x86-64 executable: header and program headers inside the
// file, every PT_LOAD segment's file range inside the file, memsz >= filesz, no address
// overflow, at least one PT_LOAD, the entry inside a loaded segment. 32-bit ELF, other machines
// and truncated files are rejected with the file name and the reason.
absl::StatusOr<ElfKernel> ParseElfKernel(std::span<const uint8_t> bytes, const std::string& name);

// Copies each segment into guest memory at its physical address and zero-fills the bss part.
// Fails (naming the file and the segment) if a segment lies outside guest RAM or overlaps any
// of `reserved` (the zero page, command line, initramfs, boot page tables...).
struct GuestRange {
  uint64_t start = 0;
  uint64_t size = 0;
  std::string what;  // for messages: "initramfs", "command line", ...
};
// physical_shift moves every segment up by that much (KASLR); 0 loads at the link addresses.
absl::Status LoadElfKernel(GuestMemory& memory, const ElfKernel& kernel, const SharedBytes& bytes,
                           std::span<const GuestRange> reserved, const std::string& name,
                           uint64_t physical_shift = 0);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_ELF_KERNEL_H_
