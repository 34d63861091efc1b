#include "devices/pci/pci_config_io.h"

#include <algorithm>
#include <cstring>

namespace minivmm {
namespace {

// CONFIG_ADDRESS fields (PCI Local Bus 3.0 §3.2.2.3.2, Figure 3-2).
constexpr uint32_t kEnableBit = 1u << 31;
constexpr uint64_t kDataOffset = 4;  // CONFIG_DATA at 0xCFC

}  // namespace

bool PciConfigIo::Decode(uint64_t data_offset, uint8_t* bus, uint8_t* device, uint8_t* function,
                         uint32_t* offset) const {
  const uint32_t address = address_.load(std::memory_order_relaxed);
  if ((address & kEnableBit) == 0) return false;
  *bus = (address >> 16) & 0xff;
  *device = (address >> 11) & 0x1f;
  *function = (address >> 8) & 0x7;
  // Bits 7:2 pick the dword; the byte within it comes from which CONFIG_DATA port was used.
  *offset = (address & 0xfc) + static_cast<uint32_t>(data_offset - kDataOffset);
  return true;
}

void PciConfigIo::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  if (offset == 0 && data.size() == 4) {
    const uint32_t address = address_.load(std::memory_order_relaxed);
    std::memcpy(data.data(), &address, 4);
    return;
  }
  uint8_t bus, device, function;
  uint32_t reg;
  if (offset < kDataOffset || !Decode(offset, &bus, &device, &function, &reg)) return;
  root_->ReadConfig(bus, device, function, reg, data);
}

void PciConfigIo::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == 0 && data.size() == 4) {
    uint32_t address;
    std::memcpy(&address, data.data(), 4);
    // Bits 1:0 are reserved and read as zero (type 0/1 encoding is the bridge's business).
    address_.store(address & ~3u, std::memory_order_relaxed);
    return;
  }
  uint8_t bus, device, function;
  uint32_t reg;
  if (offset < kDataOffset || !Decode(offset, &bus, &device, &function, &reg)) return;
  root_->WriteConfig(bus, device, function, reg, data);
}

}  // namespace minivmm
