#include "vmm/memory_layout.h"

#include <algorithm>

namespace minivmm::layout {

std::vector<GuestRegionSpec> RamRegions(uint64_t memory_bytes) {
  std::vector<GuestRegionSpec> regions;
  const uint64_t low = std::min(memory_bytes, kMmioHoleStart);
  regions.push_back({0, low});
  if (memory_bytes > low) regions.push_back({kMmioHoleEnd, memory_bytes - low});
  return regions;
}

}  // namespace minivmm::layout
