// Host PCI function addresses ("0000:00:03.0"), as sysfs, lspci -D and the config name them.
// Shared by the config parser and the passthrough host checks.
#ifndef MINIVMM_VMM_BASE_PCI_ADDRESS_H_
#define MINIVMM_VMM_BASE_PCI_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace minivmm {

// A PCI function address as sysfs names it: segment (domain), bus, device, function.
struct PciAddress {
  uint32_t domain = 0;  // Linux prints it %04x; VMD domains (0x10000+) take 5 digits
  uint8_t bus = 0;
  uint8_t device = 0;    // 0..31 (PCI Local Bus 3.0 §3.2.2.3.1: 5-bit device number)
  uint8_t function = 0;  // 0..7 (3-bit function number)

  // "0000:00:03.0": the form of /sys/bus/pci/devices entries and of lspci -D.
  std::string ToString() const;
  friend bool operator==(const PciAddress&, const PciAddress&) = default;
};

// Accepts "DDDD:BB:DD.F" (4 to 8 hex digits of domain) and "BB:DD.F" (domain 0000), in either
// case; rejects anything else, so a parsed address is also safe to put in a sysfs path.
absl::StatusOr<PciAddress> ParsePciAddress(std::string_view text);
// ParsePciAddress(text)->ToString(): the canonical, lower-case, domain-qualified form.
absl::StatusOr<std::string> CanonicalPciAddress(std::string_view text);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_PCI_ADDRESS_H_
