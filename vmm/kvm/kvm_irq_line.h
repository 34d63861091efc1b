// IrqLine backed by KVM_IRQ_LINE on the in-kernel irqchip (PIC + IOAPIC pin `gsi`).
#ifndef MINIVMM_VMM_KVM_KVM_IRQ_LINE_H_
#define MINIVMM_VMM_KVM_KVM_IRQ_LINE_H_

#include <cstdint>

#include "vmm/base/log.h"
#include "vmm/core/irq_line.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

// Sets the GSI on every call: callers go through a SharedIrqLine, which passes only changes,
// in order, under its lock.
class KvmIrqLine : public IrqLine {
 public:
  KvmIrqLine(KvmVm* vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}

  void SetLevel(bool asserted) override {
    if (absl::Status status = vm_->SetIrqLine(gsi_, asserted); !status.ok()) {
      Log(LogLevel::kError, "%s", status.ToString());
    }
  }

 private:
  KvmVm* vm_;
  uint32_t gsi_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_KVM_IRQ_LINE_H_
