// The VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table (api.rst 4.52), so
// one owner must keep all of it: the PIC/IOAPIC routes KVM_CREATE_IRQCHIP installed plus one MSI
// route per vector that the guest has programmed. MSI vectors (vmm/kvm/kvm_msi.h) get their GSIs
// here and point them at messages; each change commits the full table.
#ifndef MINIVMM_VMM_KVM_GSI_ROUTER_H_
#define MINIVMM_VMM_KVM_GSI_ROUTER_H_

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm {

class GsiRouter {
 public:
  // Installs a complete table in KVM (KvmVm::SetGsiRouting); tests pass a fake.
  using CommitFn = std::function<absl::Status(std::span<const kvm_irq_routing_entry>)>;

  // GSIs 0-23 are the IOAPIC's 24 pins (and 0-15 also the PICs'); MSI GSIs follow them.
  static constexpr uint32_t kFirstMsiGsi = 24;
  // One past the last MSI GSI. KVM allows KVM_MAX_IRQ_ROUTES (4096 on x86, the value of
  // KVM_CHECK_EXTENSION(KVM_CAP_IRQ_ROUTING)); 1000 vectors is plenty for our devices and
  // bounds the table that every change copies into the kernel.
  static constexpr uint32_t kGsiLimit = 1024;

  // commit is called with the router's lock held, so commits reach KVM in order; it must not
  // call back into the router.
  explicit GsiRouter(CommitFn commit);
  GsiRouter(const GsiRouter&) = delete;
  GsiRouter& operator=(const GsiRouter&) = delete;

  // The table KVM_CREATE_IRQCHIP installs on x86 (Linux arch/x86/kvm/irq_comm.c: default_routing,
  // set by kvm_setup_default_irq_routing; recent kernels moved the same table to
  // arch/x86/kvm/irq.c, kvm_setup_default_ioapic_and_pic_routing): GSIs 0-15 go to IOAPIC
  // pin gsi and to PIC pin gsi % 8 (master for 0-7, slave for 8-15); GSIs 16-23 go to the IOAPIC
  // only. GSI 2 is included like the others: the kernel's table has it. Every commit starts
  // with these, so legacy devices (KVM_IRQ_LINE) keep working after the first MSI route.
  static std::vector<kvm_irq_routing_entry> DefaultRoutes();

  // Reserves the lowest free GSI in [kFirstMsiGsi, kGsiLimit). It has no route until
  // SetMsiRoute, so an irqfd bound to it injects nothing (virt/kvm/eventfd.c: irqfd_update
  // finds no entry). Commits nothing. ResourceExhausted when all are taken.
  absl::StatusOr<uint32_t> AllocateGsi();

  // Routes an allocated GSI to an MSI message (KVM_IRQ_ROUTING_MSI) and commits the table.
  // Setting the message a GSI already has commits nothing.
  absl::Status SetMsiRoute(uint32_t gsi, const MsiMessage& message);

  // Drops an allocated GSI's route, if any, and commits the table; the GSI stays allocated.
  absl::Status RemoveRoute(uint32_t gsi);

  // Drops the GSI's route (committing if it had one) and makes the GSI available again.
  absl::Status FreeGsi(uint32_t gsi);

  // On a commit failure every method above returns the error and changes nothing: KVM keeps
  // the previous table and so does the router. A FreeGsi whose commit fails therefore leaves
  // the GSI allocated and routed, so that it is never handed out again with a stale route.

 private:
  absl::Status CheckAllocated(uint32_t gsi) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Commits the default routes plus `routes`; on success they become routes_.
  absl::Status CommitLocked(std::map<uint32_t, MsiMessage> routes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const CommitFn commit_;
  mutable absl::Mutex mutex_;
  // allocated_[gsi - kFirstMsiGsi].
  std::vector<bool> allocated_ ABSL_GUARDED_BY(mutex_);
  // The MSI routes KVM has now, by GSI.
  std::map<uint32_t, MsiMessage> routes_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_GSI_ROUTER_H_
