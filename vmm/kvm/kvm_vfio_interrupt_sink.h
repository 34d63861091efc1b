// The KVM side of passthrough interrupts: MSI/MSI-X vectors are KVM irqfds on routed GSIs
// (the device's VFIO eventfd goes straight to KVM), and INTx is an irqfd with a resample
// eventfd, so a level-triggered interrupt is injected and re-armed without userspace.
#ifndef MINIVMM_VMM_KVM_KVM_VFIO_INTERRUPT_SINK_H_
#define MINIVMM_VMM_KVM_KVM_VFIO_INTERRUPT_SINK_H_

#include "passthrough/vfio_interrupts.h"
#include "vmm/kvm/kvm.h"
#include "vmm/kvm/kvm_msi.h"

namespace minivmm {

class KvmVfioInterruptSink : public VfioInterruptSink {
 public:
  // vm and msi must outlive every vector and INTx line handed out.
  KvmVfioInterruptSink(KvmVm* vm, KvmMsiAllocator* msi) : vm_(vm), msi_(msi) {}

  absl::StatusOr<std::unique_ptr<VfioVector>> AllocateVector() override;
  absl::StatusOr<std::unique_ptr<VfioIntx>> AllocateIntx(uint32_t gsi) override;

 private:
  KvmVm* const vm_;
  KvmMsiAllocator* const msi_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_KVM_VFIO_INTERRUPT_SINK_H_
