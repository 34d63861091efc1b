// The BIOS e820 memory map handed to Linux in the zero page.
#ifndef MINIVMM_GUEST_FIRMWARE_E820_H_
#define MINIVMM_GUEST_FIRMWARE_E820_H_

#include <asm/bootparam.h>

#include <span>
#include <vector>

#include "vmm/core/guest_memory.h"

namespace minivmm {

// E820 types (ACPI 6.4 §15.1, Table 15.312).
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

// Builds the map for the given RAM regions: conventional memory below the EBDA, the legacy
// BIOS area (where the ACPI tables live) reserved, then RAM from 1 MiB up. Each of `reserved`
// (address ranges the guest must leave alone, such as the PCI ECAM area) becomes a reserved
// entry too; where one overlaps RAM or another entry, it wins and the other entry is cut around
// it. Entries are sorted and never overlap; empty ranges are left out.
std::vector<boot_e820_entry> BuildE820Map(std::span<const GuestRegionSpec> ram,
                                          std::span<const GuestRegionSpec> reserved = {});

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_E820_H_
