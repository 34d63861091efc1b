// What the ACPI table tests share: a small machine description and AcpiView, which reads the
// tables' blob as the guest does, by guest-physical address.
#ifndef MINIVMM_TESTS_UNIT_GUEST_FIRMWARE_ACPI_VIEW_H_
#define MINIVMM_TESTS_UNIT_GUEST_FIRMWARE_ACPI_VIEW_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "guest-firmware/acpi_tables.h"
#include "vmm/core/memory_layout.h"

namespace minivmm::acpi_testing {

inline constexpr uint64_t kBase = 0xe0000;
inline constexpr uint16_t kSleepPort = 0x600;
inline constexpr uint64_t kIoapic = 0xfec00000;
inline constexpr uint64_t kLapic = 0xfee00000;

inline AcpiMachine Machine(uint32_t cpus, uint64_t base = kBase) {
  AcpiMachine m;
  m.num_cpus = cpus;
  m.base_address = base;
  m.sleep_control_port = kSleepPort;
  m.lapic_address = kLapic;
  m.ioapic_address = kIoapic;
  return m;
}

// Reads the blob as the guest would, by guest-physical address.
class AcpiView {
 public:
  AcpiView(const AcpiTables& tables, uint64_t base) : blob_(tables.blob), base_(base) {}

  // Offset of guest address `address` in the blob; fails the test when `length` bytes there
  // are not all inside the blob.
  size_t Offset(uint64_t address, size_t length) const {
    EXPECT_GE(address, base_);
    EXPECT_LE(address - base_ + length, blob_.size()) << "address " << address;
    return std::min<size_t>(address - base_, blob_.size() - std::min(length, blob_.size()));
  }
  uint8_t U8(size_t offset) const { return blob_.at(offset); }
  uint64_t Le(size_t offset, int width) const {
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | blob_.at(offset + i);
    return v;
  }
  uint16_t U16(size_t offset) const { return static_cast<uint16_t>(Le(offset, 2)); }
  uint32_t U32(size_t offset) const { return static_cast<uint32_t>(Le(offset, 4)); }
  uint64_t U64(size_t offset) const { return Le(offset, 8); }
  std::string Text(size_t offset, size_t length) const {
    return std::string(blob_.begin() + offset, blob_.begin() + offset + length);
  }
  std::vector<uint8_t> Bytes(size_t offset, size_t length) const {
    return std::vector<uint8_t>(blob_.begin() + offset, blob_.begin() + offset + length);
  }
  uint8_t Checksum(size_t offset, size_t length) const {
    return AcpiChecksum(blob_.data() + offset, length);
  }
  const std::vector<uint8_t>& blob() const { return blob_; }

  // Offset of the table at guest address `address`, checking its signature and that all of it
  // (as its length field says) lies inside the blob.
  size_t Table(uint64_t address, const std::string& signature) const {
    const size_t offset = Offset(address, 36);
    EXPECT_EQ(Text(offset, 4), signature);
    Offset(address, U32(offset + 4));
    return offset;
  }
  uint32_t Length(size_t table) const { return U32(table + 4); }

  size_t Xsdt() const { return Table(U64(24), "XSDT"); }
  size_t Fadt() const { return Table(U64(Xsdt() + 36), "FACP"); }
  size_t Madt() const { return Table(U64(Xsdt() + 44), "APIC"); }
  size_t Dsdt() const { return Table(U64(Fadt() + 140), "DSDT"); }

 private:
  const std::vector<uint8_t> blob_;
  const uint64_t base_;
};

class AcpiTablesTest : public ::testing::Test {
 protected:
  AcpiTables tables_ = BuildAcpiTables(Machine(1));
  AcpiView view_{tables_, kBase};
};

}  // namespace minivmm::acpi_testing

#endif  // MINIVMM_TESTS_UNIT_GUEST_FIRMWARE_ACPI_VIEW_H_
