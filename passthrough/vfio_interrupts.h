// Interrupts of a passed-through PCI function. The device signals eventfds that KVM injects
// directly (irqfd), so no interrupt passes through the VMM: INTx uses a resampling irqfd on the
// guest GSI, each MSI/MSI-X vector an irqfd routed to the message the guest programmed.
// VfioInterrupts keeps VFIO_DEVICE_SET_IRQS in step with the guest's choice of INTx, MSI or
// MSI-X; VFIO allows one index at a time, so switching disables the old one first.
#ifndef MINIVMM_PASSTHROUGH_VFIO_INTERRUPTS_H_
#define MINIVMM_PASSTHROUGH_VFIO_INTERRUPTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "passthrough/vfio_config_virtualizer.h"
#include "passthrough/vfio_device.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm {

// An MSI or MSI-X vector for a passed-through device: an eventfd that VFIO signals when the
// device raises the vector, injected by KVM (irqfd) as the message last set. The VMM adapts
// KvmMsiInterrupt (vmm/kvm/kvm_msi.h), whose event_fd() is exactly this.
class VfioVector {
 public:
  virtual ~VfioVector() = default;
  virtual int event_fd() const = 0;
  virtual absl::Status SetMessage(const MsiMessage& message) = 0;
  // Masked: hold what the device signals until unmasked, then deliver it (PCI 3.0 §6.8.2.9).
  virtual absl::Status SetMasked(bool masked) = 0;
};

// The INTx line of a passed-through device: a KVM irqfd with resampling on the guest GSI
// (KVM_IRQFD_FLAG_RESAMPLE). VFIO signals trigger_fd when the device asserts INTx (and masks
// the host line); KVM signals resample_fd when the guest EOIs, which VFIO takes as "unmask".
class VfioIntx {
 public:
  virtual ~VfioIntx() = default;
  virtual int trigger_fd() const = 0;
  virtual int resample_fd() const = 0;
};

class VfioInterruptSink {
 public:
  virtual ~VfioInterruptSink() = default;
  // A vector with no message yet; its eventfd injects nothing until SetMessage.
  virtual absl::StatusOr<std::unique_ptr<VfioVector>> AllocateVector() = 0;
  virtual absl::StatusOr<std::unique_ptr<VfioIntx>> AllocateIntx(uint32_t gsi) = 0;
};

// Not thread-safe: the owning function serializes calls with its lock.
class VfioInterrupts {
 public:
  // Which VFIO interrupt index is enabled.
  enum class Mode { kNone, kIntx, kMsi, kMsix };

  // intx_gsi: the guest GSI of the function's pin, or nullopt if it has no INTx. msix_vectors:
  // the MSI-X table size (0: no MSI-X). Nothing is enabled until Update.
  static absl::StatusOr<std::unique_ptr<VfioInterrupts>> Create(VfioDevice* device,
                                                                VfioInterruptSink* sink,
                                                                std::optional<uint32_t> intx_gsi,
                                                                uint16_t msix_vectors);

  // Enables what the guest asks for: MSI-X if enabled (it wins if a guest enables both, PCI
  // 3.0 §6.8.2.3), else MSI, else INTx if the function has it. With MSI staying on, only the
  // routes of its vectors are updated.
  absl::Status Update(bool msix_enabled, const VfioMsiState& msi);
  // Disables whatever index is on (DATA_NONE, count 0).
  absl::Status Disable();

  // MSI-X table entry `index` was pointed at `message`: allocates the entry's vector on first
  // use, routes it and, while MSI-X is on, hands its eventfd to VFIO.
  absl::Status RouteMsixVector(uint16_t index, const MsiMessage& message);
  // The guest masked or unmasked table entry `index` (or the whole function).
  absl::Status MaskMsixVector(uint16_t index, bool masked);
  // Signals entry `index`'s eventfd, if it has one (the emulated table delivering a pending
  // vector; the device signals it directly otherwise).
  void TriggerMsixVector(uint16_t index);
  // Whether entry `index`'s eventfd holds an interrupt the device raised: it does while the
  // entry is masked (its irqfd unbound, so nothing consumes the count).
  bool MsixVectorHoldsInterrupt(uint16_t index) const;

  Mode mode() const { return mode_; }

 private:
  VfioInterrupts(VfioDevice* device, VfioInterruptSink* sink, std::unique_ptr<VfioIntx> intx,
                 uint16_t msix_vectors);
  absl::Status EnableIntx();
  absl::Status EnableMsi(const VfioMsiState& msi);
  absl::Status RouteMsi(const VfioMsiState& msi);
  // Brings the vectors' masks in line with the guest's per-vector mask bits.
  absl::Status MaskMsi(const VfioMsiState& msi);
  absl::Status EnableMsix();

  VfioDevice* const device_;
  VfioInterruptSink* const sink_;
  const std::unique_ptr<VfioIntx> intx_;  // null: no INTx
  Mode mode_ = Mode::kNone;
  uint32_t msi_enabled_vectors_ = 0;
  // Allocated on first use and kept: a GSI each, reused across disable/enable.
  std::vector<std::unique_ptr<VfioVector>> msi_vectors_;
  // Which of msi_vectors_ are masked (bit i: vector i). They keep it across disable/enable.
  uint32_t msi_masked_ = 0;
  std::vector<std::unique_ptr<VfioVector>> msix_vectors_;  // by table entry
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_INTERRUPTS_H_
