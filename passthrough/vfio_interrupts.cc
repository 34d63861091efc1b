#include "passthrough/vfio_interrupts.h"

#include <linux/vfio.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <span>
#include <utility>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

const char* IndexName(uint32_t index) {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      return "INTx";
    case VFIO_PCI_MSI_IRQ_INDEX:
      return "MSI";
    default:
      return "MSI-X";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<VfioInterrupts>> VfioInterrupts::Create(
    VfioDevice* device, VfioInterruptSink* sink, std::optional<uint32_t> intx_gsi,
    uint16_t msix_vectors) {
  std::unique_ptr<VfioIntx> intx;
  if (intx_gsi) {
    absl::StatusOr<std::unique_ptr<VfioIntx>> allocated = sink->AllocateIntx(*intx_gsi);
    if (!allocated.ok()) {
      return WithContext(allocated.status(),
                         absl::StrFormat("%s: INTx on GSI %d", device->name(), *intx_gsi));
    }
    intx = *std::move(allocated);
  }
  return std::unique_ptr<VfioInterrupts>(
      new VfioInterrupts(device, sink, std::move(intx), msix_vectors));
}

VfioInterrupts::VfioInterrupts(VfioDevice* device, VfioInterruptSink* sink,
                               std::unique_ptr<VfioIntx> intx, uint16_t msix_vectors)
    : device_(device), sink_(sink), intx_(std::move(intx)), msix_vectors_(msix_vectors) {}

absl::Status VfioInterrupts::Update(bool msix_enabled, const VfioMsiState& msi) {
  Mode wanted = Mode::kNone;
  if (msix_enabled && !msix_vectors_.empty()) {
    wanted = Mode::kMsix;
  } else if (msi.enabled) {
    wanted = Mode::kMsi;
  } else if (intx_ != nullptr) {
    wanted = Mode::kIntx;
  }
  if (wanted == mode_) {
    // New messages for enabled MSI vectors need new routes only; a new vector count needs VFIO
    // to start over.
    if (wanted != Mode::kMsi) return absl::OkStatus();
    if (msi.vectors == msi_enabled_vectors_) {
      MINIVMM_RETURN_IF_ERROR(RouteMsi(msi));
      return MaskMsi(msi);
    }
  }
  MINIVMM_RETURN_IF_ERROR(Disable());
  switch (wanted) {
    case Mode::kIntx:
      return EnableIntx();
    case Mode::kMsi:
      return EnableMsi(msi);
    case Mode::kMsix:
      return EnableMsix();
    case Mode::kNone:
      break;
  }
  return absl::OkStatus();
}

absl::Status VfioInterrupts::Disable() {
  uint32_t index;
  switch (mode_) {
    case Mode::kNone:
      return absl::OkStatus();
    case Mode::kIntx:
      index = VFIO_PCI_INTX_IRQ_INDEX;  // also drops the unmask eventfd
      break;
    case Mode::kMsi:
      index = VFIO_PCI_MSI_IRQ_INDEX;
      break;
    case Mode::kMsix:
      index = VFIO_PCI_MSIX_IRQ_INDEX;
      break;
  }
  // Whatever the outcome, the index is no longer ours to rely on.
  mode_ = Mode::kNone;
  msi_enabled_vectors_ = 0;
  return WithContext(device_->SetIrqEventFds(index, 0, {}),
                     absl::StrFormat("%s: disabling %s", device_->name(), IndexName(index)));
}

absl::Status VfioInterrupts::EnableIntx() {
  const int trigger = intx_->trigger_fd();
  MINIVMM_RETURN_IF_ERROR(
      WithContext(device_->SetIrqEventFds(VFIO_PCI_INTX_IRQ_INDEX, 0, std::span(&trigger, 1)),
                  absl::StrFormat("%s: enabling INTx", device_->name())));
  mode_ = Mode::kIntx;
  // VFIO masks the host line when it fires; the guest's EOI (KVM resample) unmasks it. VFIO
  // accepts the unmask eventfd only while INTx is enabled, hence the order.
  return WithContext(device_->SetIrqUnmaskEventFd(VFIO_PCI_INTX_IRQ_INDEX, intx_->resample_fd()),
                     absl::StrFormat("%s: INTx unmask eventfd", device_->name()));
}

absl::Status VfioInterrupts::EnableMsi(const VfioMsiState& msi) {
  while (msi_vectors_.size() < msi.vectors) {
    absl::StatusOr<std::unique_ptr<VfioVector>> vector = sink_->AllocateVector();
    if (!vector.ok()) {
      return WithContext(vector.status(),
                         absl::StrFormat("%s: MSI vector %d of %d", device_->name(),
                                         msi_vectors_.size(), msi.vectors));
    }
    msi_vectors_.push_back(*std::move(vector));
  }
  // Routes and masks before eventfds, so that the first interrupt already goes where the guest
  // wants, or waits if the guest masked its vector before enabling MSI.
  MINIVMM_RETURN_IF_ERROR(RouteMsi(msi));
  MINIVMM_RETURN_IF_ERROR(MaskMsi(msi));
  std::vector<int> fds;
  for (uint32_t i = 0; i < msi.vectors; ++i) fds.push_back(msi_vectors_[i]->event_fd());
  MINIVMM_RETURN_IF_ERROR(
      WithContext(device_->SetIrqEventFds(VFIO_PCI_MSI_IRQ_INDEX, 0, fds),
                  absl::StrFormat("%s: enabling %d MSI vectors", device_->name(), msi.vectors)));
  mode_ = Mode::kMsi;
  msi_enabled_vectors_ = msi.vectors;
  return absl::OkStatus();
}

absl::Status VfioInterrupts::RouteMsi(const VfioMsiState& msi) {
  const uint32_t count =
      std::min<uint32_t>(msi.vectors, static_cast<uint32_t>(msi_vectors_.size()));
  absl::Status result;
  for (uint32_t i = 0; i < count; ++i) {
    // With Multiple Message Enable = log2(count), vector i replaces the low bits of the data
    // (PCI 3.0 §6.8.1.6).
    MsiMessage message = msi.message;
    message.data = (message.data & ~(count - 1)) | i;
    absl::Status status = msi_vectors_[i]->SetMessage(message);
    if (!status.ok() && result.ok()) {
      result =
          WithContext(status, absl::StrFormat("%s: routing MSI vector %d", device_->name(), i));
    }
  }
  return result;
}

absl::Status VfioInterrupts::MaskMsi(const VfioMsiState& msi) {
  // Per-vector masking (PCI 3.0 §6.8.1.7): a masked vector holds what the device raises and
  // delivers it on unmask, as a masked MSI-X entry does. The bits are zero for a device
  // without the capability's mask register.
  const uint32_t count =
      std::min<uint32_t>(msi.vectors, static_cast<uint32_t>(msi_vectors_.size()));
  for (uint32_t i = 0; i < count; ++i) {
    const bool masked = (msi.mask_bits >> i) & 1;
    if (masked == ((msi_masked_ >> i) & 1)) continue;
    MINIVMM_RETURN_IF_ERROR(WithContext(
        msi_vectors_[i]->SetMasked(masked),
        absl::StrFormat("%s: %s MSI vector %d", device_->name(), masked ? "masking" : "unmasking",
                        i)));
    msi_masked_ ^= uint32_t{1} << i;
  }
  return absl::OkStatus();
}

absl::Status VfioInterrupts::EnableMsix() {
  // All table entries at once: before Linux 6.5 VFIO cannot grow the host's MSI-X allocation
  // while enabled. Entries the guest has not routed yet get -1 and their eventfd later.
  std::vector<int> fds(msix_vectors_.size(), -1);
  for (size_t i = 0; i < msix_vectors_.size(); ++i) {
    if (msix_vectors_[i] != nullptr) fds[i] = msix_vectors_[i]->event_fd();
  }
  MINIVMM_RETURN_IF_ERROR(
      WithContext(device_->SetIrqEventFds(VFIO_PCI_MSIX_IRQ_INDEX, 0, fds),
                  absl::StrFormat("%s: enabling %d MSI-X vectors", device_->name(), fds.size())));
  mode_ = Mode::kMsix;
  return absl::OkStatus();
}

absl::Status VfioInterrupts::RouteMsixVector(uint16_t index, const MsiMessage& message) {
  if (index >= msix_vectors_.size()) {
    return absl::OutOfRangeError(
        absl::StrFormat("MSI-X vector %d of %d", index, msix_vectors_.size()));
  }
  std::unique_ptr<VfioVector>& vector = msix_vectors_[index];
  const bool fresh = vector == nullptr;
  if (fresh) {
    absl::StatusOr<std::unique_ptr<VfioVector>> allocated = sink_->AllocateVector();
    if (!allocated.ok()) {
      return WithContext(allocated.status(),
                         absl::StrFormat("%s: MSI-X vector %d", device_->name(), index));
    }
    vector = *std::move(allocated);
  }
  MINIVMM_RETURN_IF_ERROR(vector->SetMessage(message));
  if (!fresh || mode_ != Mode::kMsix) return absl::OkStatus();
  // MSI-X is on and VFIO has -1 for this entry: give it the new eventfd.
  const int fd = vector->event_fd();
  absl::Status status = device_->SetIrqEventFds(VFIO_PCI_MSIX_IRQ_INDEX, index, std::span(&fd, 1));
  if (!status.ok()) {
    vector.reset();  // so that the entry's next routing tries again
    return WithContext(status,
                       absl::StrFormat("%s: MSI-X vector %d eventfd", device_->name(), index));
  }
  return absl::OkStatus();
}

absl::Status VfioInterrupts::MaskMsixVector(uint16_t index, bool masked) {
  // A vector not allocated yet has never been routed, so nothing can arrive on it.
  if (index >= msix_vectors_.size() || msix_vectors_[index] == nullptr) return absl::OkStatus();
  return msix_vectors_[index]->SetMasked(masked);
}

bool VfioInterrupts::MsixVectorHoldsInterrupt(uint16_t index) const {
  if (index >= msix_vectors_.size() || msix_vectors_[index] == nullptr) return false;
  pollfd readable{.fd = msix_vectors_[index]->event_fd(), .events = POLLIN, .revents = 0};
  return ::poll(&readable, 1, 0) == 1 && (readable.revents & POLLIN) != 0;
}

void VfioInterrupts::TriggerMsixVector(uint16_t index) {
  if (index >= msix_vectors_.size() || msix_vectors_[index] == nullptr) return;
  const uint64_t one = 1;
  (void)!::write(msix_vectors_[index]->event_fd(), &one, sizeof(one));
}

}  // namespace minivmm
