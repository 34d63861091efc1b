#include "guest-firmware/e820.h"

#include "vmm/memory_layout.h"

namespace minivmm {

std::vector<boot_e820_entry> BuildE820Map(std::span<const GuestRegionSpec> ram) {
  std::vector<boot_e820_entry> map;
  for (const GuestRegionSpec& region : ram) {
    const uint64_t end = region.guest_address + region.size;
    if (region.guest_address < layout::kHighMemoryStart) {
      // The region starting at 0 is split around the legacy hole [640 KiB, 1 MiB): the guest's
      // real-mode trampoline for AP bring-up needs RAM below 640 KiB.
      map.push_back({region.guest_address, layout::kLowMemoryEnd - region.guest_address, kE820Ram});
      map.push_back({layout::kAcpiTablesAddress,
                     layout::kHighMemoryStart - layout::kAcpiTablesAddress, kE820Reserved});
      if (end > layout::kHighMemoryStart) {
        map.push_back({layout::kHighMemoryStart, end - layout::kHighMemoryStart, kE820Ram});
      }
    } else {
      map.push_back({region.guest_address, region.size, kE820Ram});
    }
  }
  return map;
}

}  // namespace minivmm
