#include "guest-firmware/e820.h"

#include <algorithm>

#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

// Removes [start, end) from every entry of `map`, splitting an entry that straddles it.
void CutOut(std::vector<boot_e820_entry>& map, uint64_t start, uint64_t end) {
  std::vector<boot_e820_entry> kept;
  for (const boot_e820_entry& e : map) {
    const uint64_t e_end = e.addr + e.size;
    if (e_end <= start || e.addr >= end) {
      kept.push_back(e);
      continue;
    }
    if (e.addr < start) kept.push_back({e.addr, start - e.addr, e.type});
    if (e_end > end) kept.push_back({end, e_end - end, e.type});
  }
  map = std::move(kept);
}

}  // namespace

std::vector<boot_e820_entry> BuildE820Map(std::span<const GuestRegionSpec> ram,
                                          std::span<const GuestRegionSpec> reserved) {
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
  // Linux would resolve overlaps itself (e820__update_table), but a map that needs no fixing up
  // is easier to check and to read in the guest's boot log.
  for (const GuestRegionSpec& range : reserved) {
    if (range.size == 0) continue;
    CutOut(map, range.guest_address, range.guest_address + range.size);
    map.push_back({range.guest_address, range.size, kE820Reserved});
  }
  std::sort(map.begin(), map.end(),
            [](const boot_e820_entry& a, const boot_e820_entry& b) { return a.addr < b.addr; });
  return map;
}

}  // namespace minivmm
