// The host bridge at 00:00.0. Linux does not need one to scan bus 0 (ACPI's PCI0 describes the
// root), but tools such as lspci expect it and real machines have it.
#ifndef MINIVMM_DEVICES_PCI_PCI_HOST_BRIDGE_H_
#define MINIVMM_DEVICES_PCI_PCI_HOST_BRIDGE_H_

#include "absl/synchronization/mutex.h"
#include "devices/pci/pci_config_space.h"
#include "devices/pci/pci_function.h"

namespace minivmm {

class PciHostBridge : public PciFunction {
 public:
  PciHostBridge();
  std::string_view Name() const override { return "pci-host-bridge"; }
  void ReadConfig(uint32_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint32_t offset, std::span<const uint8_t> data) override;

 private:
  absl::Mutex mutex_;
  PciConfigSpace config_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_PCI_HOST_BRIDGE_H_
