// The BIOS e820 memory map handed to Linux in the zero page.
#ifndef MINIVMM_GUEST_FIRMWARE_E820_H_
#define MINIVMM_GUEST_FIRMWARE_E820_H_

#include <asm/bootparam.h>

#include <span>
#include <vector>

#include "vmm/guest_memory.h"

namespace minivmm {

// E820 types (ACPI 6.4 §15.1, Table 15.312).
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

// Builds the map for the given RAM regions: conventional memory below the EBDA, the legacy
// BIOS area (where the ACPI tables live) reserved, then RAM from 1 MiB up. Entries are sorted
// and never overlap.
std::vector<boot_e820_entry> BuildE820Map(std::span<const GuestRegionSpec> ram);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_E820_H_
