// Bus 0 of the guest's single PCI segment: 32 device slots of up to 8 functions each. Routes
// configuration accesses (from the 0xCF8/0xCFC ports or the ECAM window) to the function they
// address; an empty slot reads as all-ones, which is how the guest learns it is empty
// (PCI Local Bus 3.0 §6.1: vendor ID 0xFFFF).
#ifndef MINIVMM_DEVICES_PCI_PCI_ROOT_H_
#define MINIVMM_DEVICES_PCI_PCI_ROOT_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/pci/pci_function.h"

namespace minivmm {

inline constexpr int kPciSlotsPerBus = 32;
inline constexpr int kPciFunctionsPerSlot = 8;

class PciRoot {
 public:
  // Places `function` at 00:device.function. Fails if the address is taken or out of range.
  absl::Status AddFunction(uint8_t device, uint8_t function, std::shared_ptr<PciFunction> fn);
  // The lowest slot with no function 0, for devices that need one slot of their own.
  absl::StatusOr<uint8_t> FreeSlot() const;
  // Whether no function at all sits in `device` (0..31).
  bool SlotEmpty(uint8_t device) const;

  // A configuration access to bus `bus`. Only bus 0 exists; accesses that are not 1, 2 or 4
  // bytes, not naturally aligned or past the 4 KiB config space are ignored (reads: all-ones).
  void ReadConfig(uint8_t bus, uint8_t device, uint8_t function, uint32_t offset,
                  std::span<uint8_t> data) const;
  void WriteConfig(uint8_t bus, uint8_t device, uint8_t function, uint32_t offset,
                   std::span<const uint8_t> data) const;

 private:
  std::shared_ptr<PciFunction> Find(uint8_t bus, uint8_t device, uint8_t function, uint32_t offset,
                                    size_t size) const;

  mutable absl::Mutex mutex_;
  std::array<std::shared_ptr<PciFunction>, kPciSlotsPerBus * kPciFunctionsPerSlot> functions_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_PCI_ROOT_H_
