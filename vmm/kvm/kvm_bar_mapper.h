// Maps passed-through BAR memory (mmapped VFIO regions) into guest-physical space as KVM
// memory slots, so the guest's accesses to the device's registers reach it with no exit.
#ifndef MINIVMM_VMM_KVM_KVM_BAR_MAPPER_H_
#define MINIVMM_VMM_KVM_KVM_BAR_MAPPER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "passthrough/bar_memory_mapper.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

class KvmBarMapper : public BarMemoryMapper {
 public:
  // Slots [first_slot, first_slot + slot_count) are this mapper's; guest RAM uses lower ones.
  KvmBarMapper(KvmVm* vm, uint32_t first_slot, uint32_t slot_count);

  absl::StatusOr<std::unique_ptr<Mapping>> Map(uint64_t guest_address, uint64_t size,
                                               void* host) override;

 private:
  class SlotMapping;
  void Release(uint32_t slot, uint64_t guest_address);

  KvmVm* const vm_;
  const uint32_t first_slot_;
  absl::Mutex mutex_;
  std::vector<bool> used_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_KVM_BAR_MAPPER_H_
