// The PCI Express enhanced configuration access mechanism (PCI Express Base 4.0 §7.2.2): each
// function's 4 KiB config space is memory-mapped at base + (bus << 20 | device << 15 |
// function << 12). This is how Linux reaches extended config space (offsets >= 256).
#ifndef MINIVMM_DEVICES_PCI_PCI_ECAM_H_
#define MINIVMM_DEVICES_PCI_PCI_ECAM_H_

#include "devices/pci/pci_root.h"
#include "vmm/core/bus.h"

namespace minivmm {

class PciEcam : public BusDevice {
 public:
  explicit PciEcam(const PciRoot* root) : root_(root) {}

  std::string_view Name() const override { return "pci-ecam"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  const PciRoot* root_;
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_PCI_ECAM_H_
