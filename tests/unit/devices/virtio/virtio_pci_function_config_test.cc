// VirtioPciFunction as the guest first sees it: its config space (IDs, the virtio and MSI-X
// capabilities) and the sizing, mapping and moving of BAR 0.
#include <linux/pci_regs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "devices/virtio/virtio_pci_function.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_pci_function_fixture.h"

namespace minivmm::virtio {
namespace {

// --- Config space ---

TEST_F(VirtioPciFunctionTest, ConfigSpaceIdentifiesModernVirtioRng) {
  EXPECT_EQ(Config16(PCI_VENDOR_ID), 0x1af4);
  EXPECT_EQ(Config16(PCI_DEVICE_ID), 0x1040 + VIRTIO_ID_RNG);
  EXPECT_EQ(Config16(PCI_DEVICE_ID), 0x1044);
  EXPECT_EQ(Config8(PCI_REVISION_ID), 1);
  EXPECT_EQ(Config16(PCI_SUBSYSTEM_VENDOR_ID), 0x1af4);
  EXPECT_GE(Config16(PCI_SUBSYSTEM_ID), 0x40);  // §4.1.2.1
  EXPECT_EQ(Config32(PCI_CLASS_REVISION) >> 8, 0xff0000u);
  EXPECT_EQ(Config8(PCI_HEADER_TYPE), PCI_HEADER_TYPE_NORMAL);
  EXPECT_NE(Config16(PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);
  EXPECT_EQ(Config8(PCI_INTERRUPT_PIN), 1);
  EXPECT_EQ(Config8(PCI_INTERRUPT_LINE), kIntxLine);
  EXPECT_EQ(Config16(PCI_COMMAND), 0);
}

TEST_F(VirtioPciFunctionTest, VendorCapabilitiesDescribeBarZeroLayout) {
  struct Area {
    uint64_t offset;
    uint32_t min_length;
  };
  const std::map<uint8_t, Area> expected = {
      {VIRTIO_PCI_CAP_COMMON_CFG, {Layout::kCommonConfig, sizeof(virtio_pci_common_cfg)}},
      {VIRTIO_PCI_CAP_NOTIFY_CFG, {Layout::kNotify, 2}},
      {VIRTIO_PCI_CAP_ISR_CFG, {Layout::kIsr, 1}},
      {VIRTIO_PCI_CAP_DEVICE_CFG, {Layout::kDeviceConfig, 0}},
  };
  std::map<uint8_t, uint8_t> found;  // cfg_type -> capability offset
  for (uint8_t cap : Capabilities()) {
    EXPECT_GE(cap, PCI_STD_HEADER_SIZEOF);
    EXPECT_EQ(cap % 4, 0);
    if (Config8(cap + PCI_CAP_LIST_ID) != PCI_CAP_ID_VNDR) continue;
    const uint8_t type = Config8(cap + offsetof(virtio_pci_cap, cfg_type));
    EXPECT_FALSE(found.contains(type)) << "cfg_type " << int{type} << " twice";
    found[type] = cap;
  }
  ASSERT_EQ(found.size(), expected.size());
  for (const auto& [type, area] : expected) {
    ASSERT_TRUE(found.contains(type)) << "no capability with cfg_type " << int{type};
    const uint8_t cap = found[type];
    SCOPED_TRACE(testing::Message() << "cfg_type " << int{type});
    EXPECT_EQ(Config8(cap + offsetof(virtio_pci_cap, bar)), 0);
    EXPECT_EQ(Config32(cap + offsetof(virtio_pci_cap, offset)), area.offset);
    const uint32_t length = Config32(cap + offsetof(virtio_pci_cap, length));
    EXPECT_GE(length, area.min_length);
    EXPECT_LE(area.offset + length, area.offset + Layout::kAreaSize);
    EXPECT_EQ(Config8(cap + offsetof(virtio_pci_cap, cap_len)), type == VIRTIO_PCI_CAP_NOTIFY_CFG
                                                                    ? sizeof(virtio_pci_notify_cap)
                                                                    : sizeof(virtio_pci_cap));
  }
  const uint8_t notify = found[VIRTIO_PCI_CAP_NOTIFY_CFG];
  EXPECT_EQ(Config32(notify + offsetof(virtio_pci_notify_cap, notify_off_multiplier)), 4u);
  // Queue 0's doorbell (queue_notify_off 0) lies inside the advertised area (§4.1.4.4).
  EXPECT_GE(Config32(notify + offsetof(virtio_pci_cap, length)), 2u);
}

TEST_F(VirtioPciFunctionTest, MsixCapabilityHasOneVectorPerQueuePlusConfig) {
  const uint8_t cap = FindCapability(PCI_CAP_ID_MSIX);
  ASSERT_NE(cap, 0);
  const uint16_t control = Config16(cap + PCI_MSIX_FLAGS);
  EXPECT_EQ((control & PCI_MSIX_FLAGS_QSIZE) + 1, kTableSize);
  EXPECT_EQ(control & (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL), 0);
  EXPECT_EQ(Config32(cap + PCI_MSIX_TABLE), Layout::kMsixTable | 0);  // BIR 0
  EXPECT_EQ(Config32(cap + PCI_MSIX_PBA), Layout::kMsixPba | 0);
}

TEST_F(VirtioPciFunctionTest, CapabilitiesAreReadOnlyToTheGuest) {
  std::vector<uint32_t> before;
  for (uint32_t offset = PCI_STD_HEADER_SIZEOF; offset < 0x100; offset += 4) {
    before.push_back(Config32(offset));
  }
  for (uint32_t offset = PCI_STD_HEADER_SIZEOF; offset < 0x100; offset += 4) {
    ConfigWrite32(offset, 0x3fff3fff);  // leaves the MSI-X Enable / Function Mask bits clear
  }
  for (uint32_t offset = PCI_STD_HEADER_SIZEOF, i = 0; offset < 0x100; offset += 4, ++i) {
    EXPECT_EQ(Config32(offset), before[i]) << "offset " << std::hex << offset;
  }
}

// --- BAR 0 ---

TEST_F(VirtioPciFunctionTest, BarSizingReports32KiB64BitMemoryBar) {
  EXPECT_EQ(Config32(PCI_BASE_ADDRESS_0),
            static_cast<uint32_t>(kBarAddress) | PCI_BASE_ADDRESS_MEM_TYPE_64);
  EXPECT_EQ(Config32(PCI_BASE_ADDRESS_1), kBarAddress >> 32);

  // PCI 3.0 §6.2.5.1: write all-ones to both dwords, read back, restore.
  ConfigWrite32(PCI_BASE_ADDRESS_0, 0xffffffff);
  ConfigWrite32(PCI_BASE_ADDRESS_1, 0xffffffff);
  const uint32_t low = Config32(PCI_BASE_ADDRESS_0);
  const uint32_t high = Config32(PCI_BASE_ADDRESS_1);
  EXPECT_EQ(low & ~PCI_BASE_ADDRESS_MEM_MASK,
            PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_64);
  const uint64_t mask = uint64_t{high} << 32 | (low & PCI_BASE_ADDRESS_MEM_MASK);
  EXPECT_EQ(~mask + 1, Layout::kBarSize);
  EXPECT_EQ(~mask + 1, 0x8000u);

  ProgramBar(kBarAddress);
  EXPECT_EQ(Config32(PCI_BASE_ADDRESS_0),
            static_cast<uint32_t>(kBarAddress) | PCI_BASE_ADDRESS_MEM_TYPE_64);
  EXPECT_EQ(Config32(PCI_BASE_ADDRESS_1), kBarAddress >> 32);
}

TEST_F(VirtioPciFunctionTest, BarIsOnTheBusOnlyWhileMemoryDecodingIsOn) {
  std::array<uint8_t, 4> bytes{};
  EXPECT_FALSE(bus_.Read(kBarAddress, bytes));
  EXPECT_FALSE(BarMappedAt(kBarAddress));

  EnableMemory(true);
  EXPECT_TRUE(BarMappedAt(kBarAddress));
  EXPECT_TRUE(bus_.Read(kBarAddress + Layout::kBarSize - 4, bytes));
  EXPECT_FALSE(bus_.Read(kBarAddress + Layout::kBarSize, bytes));

  EnableMemory(false);
  EXPECT_FALSE(BarMappedAt(kBarAddress));
}

TEST_F(VirtioPciFunctionTest, MovingTheBarRemapsIt) {
  EnableMemory(true);
  ASSERT_TRUE(BarMappedAt(kBarAddress));

  EnableMemory(false);
  ProgramBar(kMovedBarAddress);
  EXPECT_FALSE(BarMappedAt(kMovedBarAddress));
  EnableMemory(true);
  EXPECT_TRUE(BarMappedAt(kMovedBarAddress));
  EXPECT_FALSE(BarMappedAt(kBarAddress));

  // And back below 4 GiB.
  EnableMemory(false);
  ProgramBar(kBarAddress);
  EnableMemory(true);
  EXPECT_TRUE(BarMappedAt(kBarAddress));
  EXPECT_FALSE(BarMappedAt(kMovedBarAddress));
}

TEST_F(VirtioPciFunctionTest, SizingWithDecodingOnUnmapsTheBarUntilRestored) {
  EnableMemory(true);
  ConfigWrite32(PCI_BASE_ADDRESS_0, 0xffffffff);
  EXPECT_FALSE(BarMappedAt(kBarAddress));
  EXPECT_FALSE(BarMappedAt(0xffff8000));
  ConfigWrite32(PCI_BASE_ADDRESS_0, static_cast<uint32_t>(kBarAddress));
  EXPECT_TRUE(BarMappedAt(kBarAddress));
}

}  // namespace
}  // namespace minivmm::virtio
