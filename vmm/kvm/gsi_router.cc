#include "vmm/kvm/gsi_router.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

kvm_irq_routing_entry IrqchipRoute(uint32_t gsi, uint32_t irqchip, uint32_t pin) {
  kvm_irq_routing_entry entry{};
  entry.gsi = gsi;
  entry.type = KVM_IRQ_ROUTING_IRQCHIP;
  entry.u.irqchip.irqchip = irqchip;
  entry.u.irqchip.pin = pin;
  return entry;
}

kvm_irq_routing_entry MsiRoute(uint32_t gsi, const MsiMessage& message) {
  kvm_irq_routing_entry entry{};
  entry.gsi = gsi;
  entry.type = KVM_IRQ_ROUTING_MSI;
  // flags stays 0: KVM_MSI_VALID_DEVID is for ARM's GICv3 ITS only (api.rst 4.52).
  entry.u.msi.address_lo = static_cast<uint32_t>(message.address);
  entry.u.msi.address_hi = static_cast<uint32_t>(message.address >> 32);
  entry.u.msi.data = message.data;
  return entry;
}

// The PIC has 8 pins per chip, the IOAPIC 24 (KVM_IOAPIC_NUM_PINS).
constexpr uint32_t kPicPins = 8;
constexpr uint32_t kLegacyPicGsis = 16;

}  // namespace

GsiRouter::GsiRouter(CommitFn commit)
    : commit_(std::move(commit)), allocated_(kGsiLimit - kFirstMsiGsi, false) {}

std::vector<kvm_irq_routing_entry> GsiRouter::DefaultRoutes() {
  std::vector<kvm_irq_routing_entry> routes;
  for (uint32_t gsi = 0; gsi < kFirstMsiGsi; ++gsi) {
    // Same order as the kernel's ROUTING_ENTRY2: IOAPIC first, then the PIC.
    routes.push_back(IrqchipRoute(gsi, KVM_IRQCHIP_IOAPIC, gsi));
    if (gsi < kLegacyPicGsis) {
      const uint32_t chip = gsi < kPicPins ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      routes.push_back(IrqchipRoute(gsi, chip, gsi % kPicPins));
    }
  }
  return routes;
}

absl::StatusOr<uint32_t> GsiRouter::AllocateGsi() {
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < allocated_.size(); ++i) {
    if (!allocated_[i]) {
      allocated_[i] = true;
      return static_cast<uint32_t>(kFirstMsiGsi + i);
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrFormat("no free MSI GSI: all %d GSIs in [%d, %d) are in use (GsiRouter::kGsiLimit)",
                      kGsiLimit - kFirstMsiGsi, kFirstMsiGsi, kGsiLimit));
}

absl::Status GsiRouter::SetMsiRoute(uint32_t gsi, const MsiMessage& message) {
  absl::MutexLock lock(&mutex_);
  MINIVMM_RETURN_IF_ERROR(CheckAllocated(gsi));
  if (auto it = routes_.find(gsi); it != routes_.end() && it->second == message) {
    return absl::OkStatus();
  }
  std::map<uint32_t, MsiMessage> routes = routes_;
  routes[gsi] = message;
  return WithContext(CommitLocked(std::move(routes)),
                     absl::StrFormat("routing GSI %d to MSI address %#x data %#x", gsi,
                                     message.address, message.data));
}

absl::Status GsiRouter::RemoveRoute(uint32_t gsi) {
  absl::MutexLock lock(&mutex_);
  MINIVMM_RETURN_IF_ERROR(CheckAllocated(gsi));
  if (!routes_.contains(gsi)) return absl::OkStatus();
  std::map<uint32_t, MsiMessage> routes = routes_;
  routes.erase(gsi);
  return WithContext(CommitLocked(std::move(routes)),
                     absl::StrFormat("removing the route of GSI %d", gsi));
}

absl::Status GsiRouter::FreeGsi(uint32_t gsi) {
  absl::MutexLock lock(&mutex_);
  MINIVMM_RETURN_IF_ERROR(CheckAllocated(gsi));
  if (routes_.contains(gsi)) {
    std::map<uint32_t, MsiMessage> routes = routes_;
    routes.erase(gsi);
    MINIVMM_RETURN_IF_ERROR(
        WithContext(CommitLocked(std::move(routes)), absl::StrFormat("freeing GSI %d", gsi)));
  }
  allocated_[gsi - kFirstMsiGsi] = false;
  return absl::OkStatus();
}

absl::Status GsiRouter::CheckAllocated(uint32_t gsi) const {
  if (gsi < kFirstMsiGsi || gsi >= kGsiLimit || !allocated_[gsi - kFirstMsiGsi]) {
    return absl::FailedPreconditionError(
        absl::StrFormat("GSI %d is not an allocated MSI GSI", gsi));
  }
  return absl::OkStatus();
}

absl::Status GsiRouter::CommitLocked(std::map<uint32_t, MsiMessage> routes) {
  std::vector<kvm_irq_routing_entry> table = DefaultRoutes();
  table.reserve(table.size() + routes.size());
  for (const auto& [gsi, message] : routes) table.push_back(MsiRoute(gsi, message));
  MINIVMM_RETURN_IF_ERROR(commit_(table));
  routes_ = std::move(routes);
  return absl::OkStatus();
}

}  // namespace minivmm
