#include "vmm/kvm/kvm_vfio_interrupt_sink.h"

#include "vmm/base/errno_status.h"
#include "vmm/base/event_fd.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

class KvmVfioVector : public VfioVector {
 public:
  explicit KvmVfioVector(std::unique_ptr<KvmMsiInterrupt> msi) : msi_(std::move(msi)) {}
  int event_fd() const override { return msi_->event_fd(); }
  absl::Status SetMessage(const MsiMessage& message) override { return msi_->SetMessage(message); }
  absl::Status SetMasked(bool masked) override { return msi_->SetDeliveryEnabled(!masked); }

 private:
  std::unique_ptr<KvmMsiInterrupt> msi_;
};

// KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE (api.rst 4.75): a trigger asserts the GSI; when the
// guest EOIs it, KVM deasserts it and signals the resample eventfd, which VFIO takes as
// "unmask INTx" — the level interrupt's whole cycle stays in the kernel.
class KvmVfioIntx : public VfioIntx {
 public:
  KvmVfioIntx(KvmVm* vm, uint32_t gsi, EventFd trigger, EventFd resample)
      : vm_(vm), gsi_(gsi), trigger_(std::move(trigger)), resample_(std::move(resample)) {}
  ~KvmVfioIntx() override {
    if (absl::Status status = vm_->RemoveIrqfd(trigger_.fd(), gsi_); !status.ok()) {
      Log(LogLevel::kError, "%s", status.ToString());
    }
  }
  int trigger_fd() const override { return trigger_.fd(); }
  int resample_fd() const override { return resample_.fd(); }

 private:
  KvmVm* vm_;
  uint32_t gsi_;
  EventFd trigger_;
  EventFd resample_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<VfioVector>> KvmVfioInterruptSink::AllocateVector() {
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<KvmMsiInterrupt> msi, msi_->AllocateKvmMsi());
  return std::make_unique<KvmVfioVector>(std::move(msi));
}

absl::StatusOr<std::unique_ptr<VfioIntx>> KvmVfioInterruptSink::AllocateIntx(uint32_t gsi) {
  MINIVMM_ASSIGN_OR_RETURN(EventFd trigger, EventFd::Create());
  MINIVMM_ASSIGN_OR_RETURN(EventFd resample, EventFd::Create());
  MINIVMM_RETURN_IF_ERROR(vm_->AddIrqfd(trigger.fd(), gsi, resample.fd()));
  return std::make_unique<KvmVfioIntx>(vm_, gsi, std::move(trigger), std::move(resample));
}

}  // namespace minivmm
