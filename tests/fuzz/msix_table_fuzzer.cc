// libFuzzer target for the MSI-X table and PBA (devices/pci/msix.h) as a guest drives them:
// reads and writes of any offset and width, Message Control changes, and the device raising
// vectors in between. Checks that every read fills exactly its bytes and that a vector is
// delivered only while MSI-X is on and neither it nor the function is masked.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "devices/pci/msix.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/unit/testing/fake_msi.h"

namespace minivmm {
namespace {

using fuzzing::Access;
using fuzzing::FuzzInput;
using fuzzing::Trap;

constexpr int kMaxOps = 256;

void Run(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  const std::optional<uint16_t> requested = input.Take<uint16_t>();
  if (!requested) return;
  const uint16_t table_size = static_cast<uint16_t>(*requested % MsixTable::kMaxVectors + 1);
  FakeMsiAllocator allocator;
  absl::StatusOr<std::unique_ptr<MsixTable>> table = MsixTable::Create(allocator, table_size);
  Trap(table.ok());
  bool enabled = false;
  bool function_masked = false;
  for (int i = 0; i < kMaxOps; ++i) {
    const std::optional<Access> access = fuzzing::TakeAccess(input);
    if (!access) break;
    // Offsets reach a little past each structure, where accesses must be refused.
    std::vector<uint8_t> bytes(access->size, 0xa5);
    switch (access->op % 6) {
      case 0:
        (*table)->ReadTable(access->offset % ((*table)->table_bytes() + 16), bytes);
        break;
      case 1:
        for (size_t b = 0; b < bytes.size(); ++b) bytes[b] = access->value >> (8 * b);
        (*table)->WriteTable(access->offset % ((*table)->table_bytes() + 16), bytes);
        break;
      case 2:
        (*table)->ReadPba(access->offset % ((*table)->pba_bytes() + 16), bytes);
        break;
      case 3:
        enabled = access->value & 1;
        function_masked = access->value & 2;
        (*table)->SetControl(enabled, function_masked);
        break;
      default: {
        const uint16_t vector = static_cast<uint16_t>(access->offset % (table_size + 2));
        FakeMsiInterrupt* backing = vector < table_size ? allocator.allocated()[vector] : nullptr;
        const int before = backing != nullptr ? backing->triggers() : 0;
        (*table)->Notify(vector);
        // Masked or disabled: latched, never delivered.
        if (backing != nullptr && (!enabled || function_masked)) {
          Trap(backing->triggers() == before);
        }
        break;
      }
    }
    Trap((*table)->enabled() == enabled);
  }
}

}  // namespace
}  // namespace minivmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  minivmm::Run(data, size);
  return 0;
}
