// MSI vectors backed by KVM: each vector is an eventfd bound with KVM_IRQFD to a GSI of its own,
// and that GSI is routed (vmm/kvm/gsi_router.h) to the message the guest programmed. Triggering is
// one eventfd write; KVM injects the interrupt without the vCPU exiting to userspace.
#ifndef MINIVMM_VMM_KVM_KVM_MSI_H_
#define MINIVMM_VMM_KVM_KVM_MSI_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/event_fd.h"
#include "vmm/core/msi_interrupt.h"
#include "vmm/kvm/gsi_router.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

// The KVM_IRQFD operations an MSI vector needs, so that tests can run without /dev/kvm.
class IrqfdBinder {
 public:
  virtual ~IrqfdBinder() = default;
  // From now on a write to event_fd injects gsi (KVM_IRQFD, api.rst 4.75).
  virtual absl::Status Bind(int event_fd, uint32_t gsi) = 0;
  virtual absl::Status Unbind(int event_fd, uint32_t gsi) = 0;
};

// IrqfdBinder on a real VM. The VM must have its in-kernel irqchip (KvmVm::CreateIrqchip).
class KvmIrqfdBinder final : public IrqfdBinder {
 public:
  explicit KvmIrqfdBinder(KvmVm* vm) : vm_(vm) {}
  absl::Status Bind(int event_fd, uint32_t gsi) override { return vm_->AddIrqfd(event_fd, gsi); }
  absl::Status Unbind(int event_fd, uint32_t gsi) override {
    return vm_->RemoveIrqfd(event_fd, gsi);
  }

 private:
  KvmVm* vm_;
};

class KvmMsiInterrupt final : public MsiInterrupt {
 public:
  // Unbinds the irqfd, then frees the GSI (dropping its route). Failures are logged: a GSI
  // whose irqfd could not be unbound is leaked rather than reused.
  ~KvmMsiInterrupt() override;

  // Routes the GSI to message. A message with address 0 (an MSI-X entry the guest has not
  // programmed; never a valid x86 MSI address, which lies in 0xfeexxxxx: Intel SDM Vol. 3A,
  // "Message Address Register Format") removes the route instead, so the vector delivers
  // nothing rather than an interrupt to APIC ID 0.
  absl::Status SetMessage(const MsiMessage& message) override;
  // One eventfd write; thread-safe. Before the first SetMessage KVM finds no route for the GSI
  // and drops the event (virt/kvm/eventfd.c, irqfd_update/irqfd_inject).
  void Trigger() override;

  // Unbinds the irqfd while delivery is off, so the eventfd's count holds what arrives; binding
  // it again injects a pending event at once ("an event already pending on the eventfd",
  // virt/kvm/eventfd.c, kvm_irqfd_assign). That is MSI-X masking with pending bits.
  absl::Status SetDeliveryEnabled(bool enabled);

  uint32_t gsi() const { return gsi_; }
  // The irqfd's eventfd. Anything may signal it, e.g. VFIO_DEVICE_SET_IRQS for a passed-through
  // device's vector, so that a host interrupt reaches the guest without passing through us.
  int event_fd() const { return event_fd_.fd(); }

 private:
  friend class KvmMsiAllocator;
  KvmMsiInterrupt(std::shared_ptr<IrqfdBinder> irqfds, GsiRouter* router, uint32_t gsi,
                  EventFd event_fd)
      : irqfds_(std::move(irqfds)), router_(router), gsi_(gsi), event_fd_(std::move(event_fd)) {}

  std::shared_ptr<IrqfdBinder> irqfds_;
  GsiRouter* router_;
  uint32_t gsi_;
  EventFd event_fd_;
  bool bound_ = true;  // the allocator binds the irqfd
};

class KvmMsiAllocator final : public MsiAllocator {
 public:
  // The VM (with its irqchip created) and the router must outlive every vector handed out;
  // the allocator itself need not.
  KvmMsiAllocator(KvmVm* vm, GsiRouter* router);
  // For tests: irqfd binding through a fake.
  KvmMsiAllocator(std::shared_ptr<IrqfdBinder> irqfds, GsiRouter* router)
      : irqfds_(std::move(irqfds)), router_(router) {}

  // An eventfd, a GSI, and the irqfd binding them; the GSI has no route until SetMessage.
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> AllocateKvmMsi();
  absl::StatusOr<std::unique_ptr<MsiInterrupt>> AllocateMsi() override;

 private:
  std::shared_ptr<IrqfdBinder> irqfds_;
  GsiRouter* router_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_KVM_MSI_H_
