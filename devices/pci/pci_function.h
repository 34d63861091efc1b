// A PCI function as the host bridge sees it: its configuration space. How a function handles
// its BARs (MMIO bus handlers, KVM memory slots for passthrough) is its own business; it learns
// about BAR moves from config writes.
#ifndef MINIVMM_DEVICES_PCI_PCI_FUNCTION_H_
#define MINIVMM_DEVICES_PCI_PCI_FUNCTION_H_

#include <cstdint>
#include <span>
#include <string_view>

namespace minivmm {

// PCI Express extended configuration space size (PCI Express Base 4.0 §7.2.2).
inline constexpr uint32_t kPciConfigSpaceSize = 4096;

class PciFunction {
 public:
  virtual ~PciFunction() = default;
  virtual std::string_view Name() const = 0;
  // Config space accesses. The host bridge guarantees data.size() is 1, 2 or 4, offset is
  // aligned to it and offset + size <= kPciConfigSpaceSize. Called from vCPU threads.
  virtual void ReadConfig(uint32_t offset, std::span<uint8_t> data) = 0;
  virtual void WriteConfig(uint32_t offset, std::span<const uint8_t> data) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_PCI_FUNCTION_H_
