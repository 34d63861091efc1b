// Single-byte port accesses to a BusDevice, as a guest's inb/outb would make them.
#ifndef MINIVMM_TESTS_UNIT_DEVICES_LEGACY_PORT_IO_HELPERS_H_
#define MINIVMM_TESTS_UNIT_DEVICES_LEGACY_PORT_IO_HELPERS_H_

#include <cstdint>
#include <span>

#include "vmm/core/bus.h"

namespace minivmm {

// The bus pre-fills reads with 0xff (open bus); so does this helper.
inline uint8_t InByte(BusDevice& device, uint64_t offset) {
  uint8_t value = 0xff;
  device.Read(offset, std::span(&value, 1));
  return value;
}

inline void OutByte(BusDevice& device, uint64_t offset, uint8_t value) {
  device.Write(offset, std::span(&value, 1));
}

}  // namespace minivmm

#endif  // MINIVMM_TESTS_UNIT_DEVICES_LEGACY_PORT_IO_HELPERS_H_
