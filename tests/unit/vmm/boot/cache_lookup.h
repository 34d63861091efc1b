// KernelCache::Lookup for tests that compare what a cache entry holds.
#ifndef MINIVMM_TESTS_UNIT_VMM_BOOT_CACHE_LOOKUP_H_
#define MINIVMM_TESTS_UNIT_VMM_BOOT_CACHE_LOOKUP_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/base/shared_bytes.h"
#include "vmm/boot/kernel_cache.h"

namespace minivmm::testing_images {

// KernelCache::Lookup with the (mapped) content copied out, for comparisons in tests.
inline absl::StatusOr<std::optional<std::vector<uint8_t>>> LookupCopy(const KernelCache& cache,
                                                                      const std::string& key) {
  absl::StatusOr<std::optional<SharedBytes>> result = cache.Lookup(key);
  if (!result.ok()) return result.status();
  if (!result->has_value()) return std::nullopt;
  const std::span<const uint8_t> bytes = (*result)->span();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

}  // namespace minivmm::testing_images

#endif  // MINIVMM_TESTS_UNIT_VMM_BOOT_CACHE_LOOKUP_H_
