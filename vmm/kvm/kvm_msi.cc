#include "vmm/kvm/kvm_msi.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {

KvmMsiInterrupt::~KvmMsiInterrupt() {
  // Unbind before freeing: a GSI handed out again must not still be fed by this eventfd.
  if (absl::Status status = bound_ ? irqfds_->Unbind(event_fd_.fd(), gsi_) : absl::OkStatus();
      !status.ok()) {
    Log(LogLevel::kError, "MSI vector on GSI %d: %s; leaking the GSI", gsi_, status.ToString());
    return;
  }
  if (absl::Status status = router_->FreeGsi(gsi_); !status.ok()) {
    Log(LogLevel::kError, "MSI vector on GSI %d: %s", gsi_, status.ToString());
  }
}

absl::Status KvmMsiInterrupt::SetDeliveryEnabled(bool enabled) {
  if (enabled == bound_) return absl::OkStatus();
  MINIVMM_RETURN_IF_ERROR(enabled ? irqfds_->Bind(event_fd_.fd(), gsi_)
                                  : irqfds_->Unbind(event_fd_.fd(), gsi_));
  bound_ = enabled;
  return absl::OkStatus();
}

absl::Status KvmMsiInterrupt::SetMessage(const MsiMessage& message) {
  if (message.address == 0) return router_->RemoveRoute(gsi_);
  return router_->SetMsiRoute(gsi_, message);
}

void KvmMsiInterrupt::Trigger() {
  if (absl::Status status = event_fd_.Signal(); !status.ok()) {
    // Only a broken fd gets here; bound the log since devices trigger at interrupt rate.
    static LogBudget budget(20);
    if (budget.Take()) {
      Log(LogLevel::kError, "MSI vector on GSI %d: %s", gsi_, status.ToString());
    }
  }
}

KvmMsiAllocator::KvmMsiAllocator(KvmVm* vm, GsiRouter* router)
    : KvmMsiAllocator(std::make_shared<KvmIrqfdBinder>(vm), router) {}

absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> KvmMsiAllocator::AllocateKvmMsi() {
  MINIVMM_ASSIGN_OR_RETURN(EventFd event_fd, EventFd::Create());
  MINIVMM_ASSIGN_OR_RETURN(const uint32_t gsi, router_->AllocateGsi());
  if (absl::Status status = irqfds_->Bind(event_fd.fd(), gsi); !status.ok()) {
    // The GSI has no route yet, so freeing it commits nothing and cannot fail.
    router_->FreeGsi(gsi).IgnoreError();
    return WithContext(status, "allocating an MSI vector");
  }
  return std::unique_ptr<KvmMsiInterrupt>(
      new KvmMsiInterrupt(irqfds_, router_, gsi, std::move(event_fd)));
}

absl::StatusOr<std::unique_ptr<MsiInterrupt>> KvmMsiAllocator::AllocateMsi() {
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<KvmMsiInterrupt> msi, AllocateKvmMsi());
  return msi;
}

}  // namespace minivmm
