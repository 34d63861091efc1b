#include "vmm/core/memory_layout.h"

#include <algorithm>

namespace minivmm::layout {

std::vector<GuestRegionSpec> RamRegions(uint64_t memory_bytes) {
  std::vector<GuestRegionSpec> regions;
  const uint64_t low = std::min(memory_bytes, kMmioHoleStart);
  regions.push_back({0, low});
  if (memory_bytes > low) regions.push_back({kMmioHoleEnd, memory_bytes - low});
  return regions;
}

uint64_t PciMmio64Start(uint64_t memory_bytes) {
  const std::vector<GuestRegionSpec> ram = RamRegions(memory_bytes);
  const uint64_t ram_end = ram.back().guest_address + ram.back().size;
  constexpr uint64_t kAlign = 1ull << 30;
  return std::max(kMmioHoleEnd, (ram_end + kAlign - 1) & ~(kAlign - 1));
}

}  // namespace minivmm::layout
