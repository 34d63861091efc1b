#include "devices/pci/pci_host_bridge.h"

namespace minivmm {
namespace {

// Red Hat's "QEMU PCIe host bridge" ID (1b36:0008, assigned for virtual hardware), which
// guests already know as a plain host bridge with no quirks.
constexpr PciIds kHostBridgeIds = {
    .vendor_id = 0x1b36,
    .device_id = 0x0008,
    .subsystem_vendor_id = 0x1b36,
    .subsystem_id = 0x0008,
    .revision = 0,
    .class_code = 0x060000,  // base class 06 (bridge), subclass 00 (host), PCI Code and ID 1.11
};

}  // namespace

PciHostBridge::PciHostBridge() : config_(kHostBridgeIds) {}

void PciHostBridge::ReadConfig(uint32_t offset, std::span<uint8_t> data) {
  absl::MutexLock lock(&mutex_);
  config_.Read(offset, data);
}

void PciHostBridge::WriteConfig(uint32_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mutex_);
  config_.Write(offset, data);
}

}  // namespace minivmm
