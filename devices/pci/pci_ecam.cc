#include "devices/pci/pci_ecam.h"

#include <algorithm>

namespace minivmm {
namespace {

struct EcamAddress {
  uint8_t bus, device, function;
  uint32_t offset;
};

EcamAddress Split(uint64_t offset) {
  return {static_cast<uint8_t>((offset >> 20) & 0xff), static_cast<uint8_t>((offset >> 15) & 0x1f),
          static_cast<uint8_t>((offset >> 12) & 0x7), static_cast<uint32_t>(offset & 0xfff)};
}

}  // namespace

void PciEcam::Read(uint64_t offset, std::span<uint8_t> data) {
  const EcamAddress a = Split(offset);
  root_->ReadConfig(a.bus, a.device, a.function, a.offset, data);
}

void PciEcam::Write(uint64_t offset, std::span<const uint8_t> data) {
  const EcamAddress a = Split(offset);
  root_->WriteConfig(a.bus, a.device, a.function, a.offset, data);
}

}  // namespace minivmm
