#include "vmm/kvm/kvm_bar_mapper.h"

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {

// Removing a slot is KVM_SET_USER_MEMORY_REGION with size 0 (api.rst 4.35).
class KvmBarMapper::SlotMapping : public BarMemoryMapper::Mapping {
 public:
  SlotMapping(KvmBarMapper* mapper, uint32_t slot, uint64_t guest_address)
      : mapper_(mapper), slot_(slot), guest_address_(guest_address) {}
  ~SlotMapping() override { mapper_->Release(slot_, guest_address_); }

 private:
  KvmBarMapper* mapper_;
  uint32_t slot_;
  uint64_t guest_address_;
};

KvmBarMapper::KvmBarMapper(KvmVm* vm, uint32_t first_slot, uint32_t slot_count)
    : vm_(vm), first_slot_(first_slot), used_(slot_count, false) {}

absl::StatusOr<std::unique_ptr<BarMemoryMapper::Mapping>> KvmBarMapper::Map(uint64_t guest_address,
                                                                            uint64_t size,
                                                                            void* host) {
  absl::MutexLock lock(&mutex_);
  size_t index = 0;
  while (index < used_.size() && used_[index]) ++index;
  if (index == used_.size()) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("no free KVM memory slot for a BAR mapping at %#x (all %d in use)",
                        guest_address, used_.size()));
  }
  const uint32_t slot = first_slot_ + static_cast<uint32_t>(index);
  MINIVMM_RETURN_IF_ERROR(vm_->SetUserMemoryRegion(slot, guest_address, size, host));
  used_[index] = true;
  return std::make_unique<SlotMapping>(this, slot, guest_address);
}

void KvmBarMapper::Release(uint32_t slot, uint64_t guest_address) {
  absl::MutexLock lock(&mutex_);
  if (absl::Status status = vm_->SetUserMemoryRegion(slot, guest_address, 0, nullptr);
      !status.ok()) {
    Log(LogLevel::kError, "%s", status.ToString());
    return;  // keep the slot marked used: KVM still has it
  }
  used_[slot - first_slot_] = false;
}

}  // namespace minivmm
