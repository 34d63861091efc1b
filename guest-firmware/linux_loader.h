// Places a Linux kernel, its initramfs, command line and zero page in guest memory and says
// where the boot vCPU starts (64-bit boot protocol).
#ifndef MINIVMM_GUEST_FIRMWARE_LINUX_LOADER_H_
#define MINIVMM_GUEST_FIRMWARE_LINUX_LOADER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "guest-firmware/kernel_image.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {

struct LinuxBootInputs {
  const KernelImage* kernel = nullptr;
  std::span<const uint8_t> initramfs;  // empty: none
  std::string_view cmdline;
  uint64_t rsdp_address = 0;
  // Address ranges the e820 map marks reserved besides the legacy BIOS area, e.g. the PCI ECAM
  // area (see BuildE820Map).
  std::vector<GuestRegionSpec> reserved_ranges;
  // Where a vmlinux with a relocation table gets its random placement (tests pass their own).
  RandomBelow random = SystemRandomBelow;
};

struct LinuxEntry {
  uint64_t entry_point = 0;  // RIP: the bzImage's 64-bit entry, or the vmlinux's ELF entry
  uint64_t zero_page = 0;    // RSI
  bool randomized = false;   // the loader placed the kernel at random (KASLR)
  // Why a kernel that carries a relocation table was not randomized although the command line
  // did not say nokaslr; empty otherwise. The caller logs it, as the decompressor would.
  std::string kaslr_skipped;
};

// Loads everything into memory (which must already hold the RAM layout in layout::RamRegions).
// Errors name what does not fit and how to fix it (more memory_mib, a shorter cmdline).
absl::StatusOr<LinuxEntry> LoadLinux(GuestMemory& memory, const LinuxBootInputs& inputs);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_LINUX_LOADER_H_
