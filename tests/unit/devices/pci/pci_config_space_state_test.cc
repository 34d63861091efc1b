// PciConfigSpace::SaveState/RestoreState: a restored config space reads the same to the guest,
// and a saved state from a function of another shape is refused.
#include <linux/pci_regs.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "devices/pci/pci_config_space.h"
#include "devices/pci/pci_state.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

constexpr PciIds kIds = {.vendor_id = 0x1af4,
                         .device_id = 0x1041,
                         .subsystem_vendor_id = 0x1af4,
                         .subsystem_id = 0x0001,
                         .revision = 0x01,
                         .class_code = 0x020000};
constexpr uint8_t kVendorCapBody[] = {0x05, 0x00, 0x00, 0x00};  // read-only body

// The same construction a VM description repeats on restore: an I/O BAR 0, a 64-bit memory
// BAR 2, a vendor capability, INTA#. `bar2` lets a test change the description.
PciConfigSpace Build(const PciIds& ids, PciBarKind bar2 = PciBarKind::kMemory64) {
  PciConfigSpace config(ids);
  EXPECT_TRUE(config.AddBar(0, PciBarKind::kIo, 0x40).ok());
  EXPECT_TRUE(config.AddBar(2, bar2, 0x4000).ok());
  EXPECT_TRUE(config.AddCapability(PCI_CAP_ID_VNDR, kVendorCapBody, {}).ok());
  config.SetInterruptPin(1);
  return config;
}

uint32_t Read32(const PciConfigSpace& config, uint32_t offset) {
  std::array<uint8_t, 4> bytes{};
  config.Read(offset, bytes);
  return bytes[0] | bytes[1] << 8 | bytes[2] << 16 | uint32_t{bytes[3]} << 24;
}

void Write32(PciConfigSpace& config, uint32_t offset, uint32_t value) {
  std::array<uint8_t, 4> bytes = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                                  static_cast<uint8_t>(value >> 16),
                                  static_cast<uint8_t>(value >> 24)};
  config.Write(offset, bytes);
}

// What a guest's enumeration leaves: BARs placed, decoding and bus mastering on, an IRQ line.
void Enumerate(PciConfigSpace& config) {
  Write32(config, PCI_BASE_ADDRESS_0, 0xc040);
  Write32(config, PCI_BASE_ADDRESS_2, 0xfe004000);
  Write32(config, PCI_BASE_ADDRESS_3, 0x1);
  Write32(config, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  Write32(config, PCI_INTERRUPT_LINE, 11);
}

TEST(PciConfigSpaceStateTest, RestoredSpaceReadsTheSameAndDecodesTheSameBars) {
  PciConfigSpace config = Build(kIds);
  Enumerate(config);
  const state::PciConfigSpaceState saved = config.SaveState();
  ASSERT_EQ(saved.bytes().size(), kPciConfigSpaceSize);

  PciConfigSpace restored = Build(kIds);
  ASSERT_TRUE(restored.RestoreState(saved).ok());
  for (uint32_t offset = 0; offset < kPciConfigSpaceSize; offset += 4) {
    ASSERT_EQ(Read32(restored, offset), Read32(config, offset)) << "offset " << offset;
  }
  EXPECT_EQ(restored.command(), PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  EXPECT_EQ(restored.BarAddress(0), 0xc040u);
  EXPECT_EQ(restored.BarAddress(2), 0x1fe004000u);
  EXPECT_TRUE(restored.BarDecoding(0));
  EXPECT_TRUE(restored.BarDecoding(2));
  EXPECT_EQ(Read32(restored, PCI_INTERRUPT_LINE) & 0xff, 11u);
  // The masks came from the construction: BAR sizing still works after the restore.
  Write32(restored, PCI_BASE_ADDRESS_2, 0xffffffff);
  EXPECT_EQ(Read32(restored, PCI_BASE_ADDRESS_2), 0xffffc000u | PCI_BASE_ADDRESS_MEM_TYPE_64);
}

TEST(PciConfigSpaceStateTest, RefusesWrongSizeAndChangedIdentityChangingNothing) {
  PciConfigSpace config = Build(kIds);
  Enumerate(config);
  const std::string before = config.SaveState().bytes();

  PciConfigSpace other = Build(kIds);
  state::PciConfigSpaceState saved = other.SaveState();  // all guest fields differ from config's

  state::PciConfigSpaceState truncated = saved;
  truncated.mutable_bytes()->resize(256);
  absl::Status status = config.RestoreState(truncated);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("bytes"));
  EXPECT_THAT(status.message(), HasSubstr("1af4:1041"));

  PciIds blk = kIds;
  blk.device_id = 0x1042;
  status = config.RestoreState(Build(blk).SaveState());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("1af4:1041"));
  EXPECT_THAT(status.message(), HasSubstr("1af4:1042"));

  PciIds storage = kIds;
  storage.class_code = 0x010000;
  EXPECT_THAT(config.RestoreState(Build(storage).SaveState()).message(), HasSubstr("class code"));

  // Same IDs, but BAR 2 was a 32-bit BAR when saved: its read-only type bits differ.
  EXPECT_THAT(config.RestoreState(Build(kIds, PciBarKind::kMemory32).SaveState()).message(),
              HasSubstr("BAR 2"));

  PciConfigSpace multi = Build(kIds);
  multi.SetMultiFunction(true);
  EXPECT_THAT(config.RestoreState(multi.SaveState()).message(), HasSubstr("header type"));

  EXPECT_EQ(config.SaveState().bytes(), before);
}

}  // namespace
}  // namespace minivmm
