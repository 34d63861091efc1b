// PCI configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2): the guest writes a function's
// address to CONFIG_ADDRESS (port 0xCF8) and then accesses its register through CONFIG_DATA
// (ports 0xCFC-0xCFF). Linux uses it for the first 256 bytes when ECAM is unavailable, and
// probes it early in boot.
#ifndef MINIVMM_DEVICES_PCI_PCI_CONFIG_IO_H_
#define MINIVMM_DEVICES_PCI_PCI_CONFIG_IO_H_

#include <atomic>
#include <cstdint>

#include "devices/pci/pci_root.h"
#include "vmm/core/bus.h"

namespace minivmm {

class PciConfigIo : public BusDevice {
 public:
  static constexpr uint16_t kBasePort = 0xcf8;
  static constexpr uint64_t kPortSpan = 8;

  explicit PciConfigIo(const PciRoot* root) : root_(root) {}

  std::string_view Name() const override { return "pci-config-io"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  // Splits CONFIG_ADDRESS; returns false when its enable bit (31) is clear.
  bool Decode(uint64_t data_offset, uint8_t* bus, uint8_t* device, uint8_t* function,
              uint32_t* offset) const;

  const PciRoot* root_;
  // CONFIG_ADDRESS is one register shared by all vCPUs, as on hardware: Linux serializes
  // address+data pairs with its pci_config_lock.
  std::atomic<uint32_t> address_{0};
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_PCI_CONFIG_IO_H_
