// MmioWriteEvents backed by KVM_IOEVENTFD (api.rst 4.59): KVM completes the guest's write in the
// kernel and signals the eventfd, so a virtqueue notification costs no exit to userspace.
#ifndef MINIVMM_VMM_KVM_KVM_MMIO_WRITE_EVENTS_H_
#define MINIVMM_VMM_KVM_KVM_MMIO_WRITE_EVENTS_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "vmm/core/mmio_write_events.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

class KvmMmioWriteEvents final : public MmioWriteEvents {
 public:
  // vm must outlive every registration.
  explicit KvmMmioWriteEvents(KvmVm* vm) : vm_(vm) {}

  // length is 1, 2, 4 or 8, or 0 for a write of any length (KVM_CAP_IOEVENTFD_ANY_LENGTH).
  // The registration's destructor deassigns it (KVM_IOEVENTFD_FLAG_DEASSIGN).
  absl::StatusOr<std::unique_ptr<Registration>> Watch(uint64_t address, uint32_t length,
                                                      int event_fd) override;

 private:
  KvmVm* vm_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_KVM_MMIO_WRITE_EVENTS_H_
