// Message-signalled interrupts as devices see them: a vector that can be pointed at an MSI
// message and triggered. The VMM backs each with a KVM irqfd on a GSI routed to the message
// (vmm/kvm/kvm_msi.h); tests use a fake that records triggers.
#ifndef MINIVMM_VMM_CORE_MSI_INTERRUPT_H_
#define MINIVMM_VMM_CORE_MSI_INTERRUPT_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace minivmm {

// The address/data pair a PCI function writes to signal an interrupt (PCI Local Bus 3.0 §6.8).
struct MsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  bool operator==(const MsiMessage&) const = default;
};

class MsiInterrupt {
 public:
  virtual ~MsiInterrupt() = default;
  // Points the vector at message. Called when the guest programs a vector (not per trigger).
  virtual absl::Status SetMessage(const MsiMessage& message) = 0;
  // Delivers the interrupt once, to the last message set. Thread-safe: device worker threads
  // call it. A vector whose message was never set delivers nothing.
  virtual void Trigger() = 0;
  // The vector's effective mask changed (MSI-X entry or function mask, enable; PCI 3.0
  // §6.8.2.9). Vectors the VMM triggers itself need nothing here (the table holds their
  // interrupts as pending); a passed-through device signals its vector without us, so such a
  // vector must stop delivering while masked and deliver what arrived once unmasked.
  virtual void SetMasked(bool /*masked*/) {}
  // While masked: whether the vector holds an interrupt its device raised, to be delivered on
  // unmask. The MSI-X PBA shows it (§6.8.2.10). Vectors the VMM triggers keep nothing (the
  // table latches their pending bits itself).
  virtual bool HoldsInterrupt() const { return false; }
};

// Hands out MSI vectors (GSIs) for a VM.
class MsiAllocator {
 public:
  virtual ~MsiAllocator() = default;
  virtual absl::StatusOr<std::unique_ptr<MsiInterrupt>> AllocateMsi() = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_MSI_INTERRUPT_H_
