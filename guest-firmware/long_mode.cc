#include "guest-firmware/long_mode.h"

#include "vmm/base/errno_status.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {
// Page-table entry bits (Intel SDM Vol. 3A §4.5, Table 4-15..4-19).
constexpr uint64_t kPresent = 1u << 0;
constexpr uint64_t kWritable = 1u << 1;
constexpr uint64_t kPageSize2M = 1u << 7;
constexpr uint64_t k2MiB = 2ull << 20;
constexpr uint64_t k1GiB = 1ull << 30;
constexpr int kEntriesPerTable = 512;
}  // namespace

absl::Status WriteLongModeTables(GuestMemory& memory) {
  for (size_t i = 0; i < kBootGdt.size(); ++i) {
    MINIVMM_RETURN_IF_ERROR(memory.WriteObject(layout::kGdtAddress + i * 8, kBootGdt[i]));
  }
  MINIVMM_RETURN_IF_ERROR(
      memory.WriteObject(layout::kPml4Address, layout::kPdptAddress | kPresent | kWritable));
  constexpr uint64_t kPageDirectories = kIdentityMappedBytes / k1GiB;
  for (uint64_t pd = 0; pd < kPageDirectories; ++pd) {
    const uint64_t pd_address = layout::kPdAddress + pd * 4096;
    MINIVMM_RETURN_IF_ERROR(
        memory.WriteObject(layout::kPdptAddress + pd * 8, pd_address | kPresent | kWritable));
    for (int i = 0; i < kEntriesPerTable; ++i) {
      const uint64_t physical = pd * k1GiB + i * k2MiB;
      MINIVMM_RETURN_IF_ERROR(
          memory.WriteObject(pd_address + i * 8, physical | kPresent | kWritable | kPageSize2M));
    }
  }
  return absl::OkStatus();
}

}  // namespace minivmm
