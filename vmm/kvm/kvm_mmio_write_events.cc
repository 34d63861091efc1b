#include "vmm/kvm/kvm_mmio_write_events.h"

#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

class KvmIoeventfdRegistration final : public MmioWriteEvents::Registration {
 public:
  KvmIoeventfdRegistration(KvmVm* vm, uint64_t address, uint32_t length, int event_fd)
      : vm_(vm), address_(address), length_(length), event_fd_(event_fd) {}
  ~KvmIoeventfdRegistration() override {
    // Deassignment must name the same address, length and fd as the assignment.
    if (absl::Status status = vm_->RemoveIoeventfd(address_, length_, event_fd_); !status.ok()) {
      Log(LogLevel::kError, "%s", status.ToString());
    }
  }

 private:
  KvmVm* vm_;
  uint64_t address_;
  uint32_t length_;
  int event_fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MmioWriteEvents::Registration>> KvmMmioWriteEvents::Watch(
    uint64_t address, uint32_t length, int event_fd) {
  MINIVMM_RETURN_IF_ERROR(vm_->AddIoeventfd(address, length, event_fd));
  return std::make_unique<KvmIoeventfdRegistration>(vm_, address, length, event_fd);
}

}  // namespace minivmm
