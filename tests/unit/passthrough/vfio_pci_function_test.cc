// VfioPciFunction: identity, BARs (sizing, mapping, trapping, moving), the ROM and the
// virtualized config space. Interrupts are in vfio_pci_function_interrupts_test.cc.
#include "passthrough/vfio_pci_function.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/passthrough/vfio_pci_function_fixture.h"

namespace minivmm::vfio_pci_function_testing {
namespace {

TEST_F(VfioPciFunctionTest, ReadsIdentityFromTheDevice) {
  Create();
  EXPECT_EQ(ReadConfig(PCI_VENDOR_ID), 0x10d38086u);
  EXPECT_EQ(ReadConfig(PCI_CLASS_REVISION), 0x02000000u);
  EXPECT_EQ(ReadConfig(PCI_SUBSYSTEM_VENDOR_ID), 0xa01f8086u);
  EXPECT_EQ(ReadConfig(PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
  EXPECT_EQ(ReadConfig(PCI_INTERRUPT_PIN, 1), 1u);
  // Status is read live: the device's interrupt status bit shows, the capability bit is kept.
  state_->SetU16(PCI_STATUS, PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
  EXPECT_EQ(ReadConfig(PCI_STATUS, 2), PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
}

TEST_F(VfioPciFunctionTest, DescribesBarsForTheVmm) {
  FakeVfioDevice device(state_);
  absl::StatusOr<VfioPciFunction::BarLayout> layout = VfioPciFunction::DescribeBars(device);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->bars.size(), 3u);
  EXPECT_EQ(layout->bars[0].index, 0);
  EXPECT_EQ(layout->bars[0].kind, PciBarKind::kMemory32);
  EXPECT_EQ(layout->bars[0].size, E::kBar0Size);
  EXPECT_EQ(layout->bars[1].index, 2);
  EXPECT_EQ(layout->bars[1].kind, PciBarKind::kIo);
  EXPECT_EQ(layout->bars[1].size, E::kBar2Size);
  EXPECT_EQ(layout->bars[2].index, 3);
  EXPECT_EQ(layout->bars[2].size, E::kBar3Size);
  EXPECT_EQ(layout->rom_size, E::kRomSize);
}

TEST_F(VfioPciFunctionTest, RejectsBridges) {
  state_->config[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_BRIDGE;
  absl::StatusOr<std::shared_ptr<VfioPciFunction>> function = Build();
  EXPECT_EQ(function.status().code(), absl::StatusCode::kUnimplemented) << function.status();
}

TEST_F(VfioPciFunctionTest, SizesEachBar) {
  Create();
  EXPECT_EQ(ReadConfig(PCI_BASE_ADDRESS_0), kBar0Address);
  EXPECT_EQ(ReadConfig(PCI_BASE_ADDRESS_2), kBar2Address | PCI_BASE_ADDRESS_SPACE_IO);
  EXPECT_EQ(ReadConfig(PCI_BASE_ADDRESS_3), kBar3Address);
  // Write all-ones, read back the size mask with the type bits (PCI 3.0 §6.2.5.1).
  const std::array<uint32_t, 6> expected = {
      static_cast<uint32_t>(~(E::kBar0Size - 1)),
      0,  // no BAR 1
      static_cast<uint32_t>(~(E::kBar2Size - 1)) | PCI_BASE_ADDRESS_SPACE_IO,
      static_cast<uint32_t>(~(E::kBar3Size - 1)),
      0,
      0,
  };
  for (int i = 0; i < 6; ++i) {
    const uint32_t offset = PCI_BASE_ADDRESS_0 + 4 * i;
    const uint32_t saved = ReadConfig(offset);
    WriteConfig(offset, 0xffffffff);
    EXPECT_EQ(ReadConfig(offset), expected[i]) << "BAR " << i;
    WriteConfig(offset, saved);
    EXPECT_EQ(ReadConfig(offset), saved) << "BAR " << i;
  }
  // BAR programming is virtual: the device's own BAR registers are never written.
  EXPECT_THAT(state_->config_writes, IsEmpty());
}

TEST_F(VfioPciFunctionTest, SizesA64BitPrefetchableBar) {
  state_->SetU32(PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
  Create();
  const uint32_t flags = PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH;
  WriteConfig(PCI_BASE_ADDRESS_0, 0xffffffff);
  WriteConfig(PCI_BASE_ADDRESS_1, 0xffffffff);
  EXPECT_EQ(ReadConfig(PCI_BASE_ADDRESS_0), static_cast<uint32_t>(~(E::kBar0Size - 1)) | flags);
  EXPECT_EQ(ReadConfig(PCI_BASE_ADDRESS_1), 0xffffffffu);
  // Placed above 4 GiB and enabled: the areas are mapped there.
  WriteConfig(PCI_BASE_ADDRESS_0, 0x0000'0000 | flags);
  WriteConfig(PCI_BASE_ADDRESS_1, 0x8);
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  std::vector<uint64_t> addresses;
  for (const FakeBarMemoryMapper::Entry& entry : mapper_.live()) {
    addresses.push_back(entry.guest_address);
  }
  EXPECT_THAT(addresses, ::testing::Contains(0x8'0000'0000u));
  EXPECT_THAT(addresses, ::testing::Contains(0x8'0001'0000u));
}

TEST_F(VfioPciFunctionTest, MapsMmapAreasWhenMemoryDecodeIsEnabled) {
  Create();
  EXPECT_THAT(mapper_.live(), IsEmpty());
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);

  // BAR0's two sparse areas; BAR3's area minus the page holding the PBA (the table's page is
  // not in the area at all).
  const std::vector<FakeBarMemoryMapper::Entry> live = mapper_.live();
  ASSERT_EQ(live.size(), 4u);
  EXPECT_EQ(live[0].guest_address, kBar0Address);
  EXPECT_EQ(live[0].size, 0x8000u);
  EXPECT_EQ(live[1].guest_address, kBar0Address + 0x10000);
  EXPECT_EQ(live[1].size, 0x10000u);
  EXPECT_EQ(live[2].guest_address, kBar3Address + 0x1000);
  EXPECT_EQ(live[2].size, 0x1000u);
  EXPECT_EQ(live[3].guest_address, kBar3Address + 0x3000);
  EXPECT_EQ(live[3].size, 0x1000u);
  for (const FakeBarMemoryMapper::Entry& entry : live) EXPECT_NE(entry.host, nullptr);
  // The device decodes memory too, and was told before the guest could reach it.
  EXPECT_NE(state_->ConfigU16(PCI_COMMAND) & PCI_COMMAND_MEMORY, 0);
  const std::vector<std::string>& events = state_->events;
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events[events.size() - 5], "config write 0x4");
  EXPECT_EQ(events.back(), absl::StrFormat("map %#x", kBar3Address + 0x3000));
}

TEST_F(VfioPciFunctionTest, CarvesTheMsixHoleOutOfAWholeBarArea) {
  // With VFIO_REGION_INFO_CAP_MSIX_MAPPABLE the whole BAR is one area; the table and PBA pages
  // must still trap.
  state_->regions[kBar3Region].mmap_areas = {{0, E::kBar3Size}};
  state_->regions[kBar3Region].msix_mappable = true;
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  std::vector<uint64_t> bar3;
  for (const FakeBarMemoryMapper::Entry& entry : mapper_.live()) {
    if (entry.guest_address >= kBar3Address) bar3.push_back(entry.guest_address - kBar3Address);
  }
  EXPECT_THAT(bar3, ElementsAre(0x1000, 0x3000));
}

TEST_F(VfioPciFunctionTest, DisablingMemoryDecodeUnmapsBeforeTheDeviceStopsDecoding) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  state_->events.clear();
  WriteConfig(PCI_COMMAND, 0, 2);
  EXPECT_THAT(mapper_.live(), IsEmpty());
  EXPECT_FALSE(BusRead(mmio_, kBar0Address + 0x8000).has_value());
  ASSERT_EQ(state_->events.size(), 5u);
  EXPECT_EQ(state_->events.front(), absl::StrFormat("unmap %#x", kBar0Address));
  EXPECT_EQ(state_->events.back(), "config write 0x4");
  EXPECT_EQ(state_->ConfigU16(PCI_COMMAND) & PCI_COMMAND_MEMORY, 0);
}

TEST_F(VfioPciFunctionTest, ForwardsTrappedBarAccessesWithTheirOffsets) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);

  // BAR0's gap between the sparse areas.
  EXPECT_EQ(BusRead(mmio_, kBar0Address + 0x8004), RegionDword(kBar0Region, 0x8004));
  ASSERT_EQ(state_->region_reads.size(), 1u);
  EXPECT_EQ(state_->region_reads[0].index, kBar0Region);
  EXPECT_EQ(state_->region_reads[0].offset, 0x8004u);
  ASSERT_TRUE(BusWrite(mmio_, kBar0Address + 0x9000, 0xdeadbeef));
  ASSERT_EQ(state_->region_writes.size(), 1u);
  EXPECT_EQ(state_->region_writes[0].index, kBar0Region);
  EXPECT_EQ(state_->region_writes[0].offset, 0x9000u);
  EXPECT_EQ(RegionDword(kBar0Region, 0x9000), 0xdeadbeefu);

  // The rest of the MSI-X table's page is the device's.
  EXPECT_EQ(BusRead(mmio_, kBar3Address + 0x100), RegionDword(kBar3Region, 0x100));
  EXPECT_EQ(state_->region_reads.back().index, kBar3Region);
  EXPECT_EQ(state_->region_reads.back().offset, 0x100u);

  // The I/O BAR, on the port bus.
  EXPECT_EQ(BusRead(pio_, kBar2Address + 4), RegionDword(kBar2Region, 4));
  EXPECT_EQ(state_->region_reads.back().index, kBar2Region);
  EXPECT_EQ(state_->region_reads.back().offset, 4u);
  ASSERT_TRUE(BusWrite(pio_, kBar2Address, 0x1234));
  EXPECT_EQ(state_->region_writes.back().index, kBar2Region);
  EXPECT_EQ(state_->region_writes.back().offset, 0u);
}

TEST_F(VfioPciFunctionTest, MsixTableAndPbaAreEmulatedNotForwarded) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  // Entries start masked (PCI 3.0 §6.8.2.9); nothing pending.
  EXPECT_EQ(BusRead(mmio_, kBar3Address + PCI_MSIX_ENTRY_VECTOR_CTRL), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  EXPECT_EQ(BusRead(mmio_, kBar3Address + E::kMsixPbaOffset), 0u);
  ASSERT_TRUE(BusWrite(mmio_, kBar3Address + PCI_MSIX_ENTRY_DATA, 0x4041));
  EXPECT_EQ(BusRead(mmio_, kBar3Address + PCI_MSIX_ENTRY_DATA), 0x4041u);
  EXPECT_THAT(state_->region_reads, IsEmpty());
  EXPECT_THAT(state_->region_writes, IsEmpty());
}

TEST_F(VfioPciFunctionTest, MovingABarRemapsIt) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  WriteConfig(PCI_BASE_ADDRESS_0, kMovedBar0Address);

  std::vector<uint64_t> bar0;
  for (const FakeBarMemoryMapper::Entry& entry : mapper_.live()) {
    if (entry.guest_address < kBar3Address || entry.guest_address >= kMovedBar0Address) {
      bar0.push_back(entry.guest_address);
    }
  }
  EXPECT_THAT(bar0, ElementsAre(kMovedBar0Address, kMovedBar0Address + 0x10000));
  EXPECT_FALSE(BusRead(mmio_, kBar0Address + 0x8000).has_value());
  EXPECT_EQ(BusRead(mmio_, kMovedBar0Address + 0x8000), RegionDword(kBar0Region, 0x8000));
  // Still the same host mmaps: a BAR move costs no new VFIO mmap.
  EXPECT_EQ(state_->mmaps.size(), 4u);
}

TEST_F(VfioPciFunctionTest, SizingAnEnabledBarDoesNotMapItAtTheSizingPattern) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  WriteConfig(PCI_BASE_ADDRESS_0, 0xffffffff);
  for (const FakeBarMemoryMapper::Entry& entry : mapper_.live()) {
    EXPECT_GE(entry.guest_address, kBar3Address);
  }
  WriteConfig(PCI_BASE_ADDRESS_0, kBar0Address);
  EXPECT_EQ(mapper_.live().size(), 4u);
}

TEST_F(VfioPciFunctionTest, RomBarSizesAndReadsTheImage) {
  Create();
  EXPECT_EQ(ReadConfig(PCI_ROM_ADDRESS), kRomAddress);  // assigned, not enabled
  WriteConfig(PCI_ROM_ADDRESS, PCI_ROM_ADDRESS_MASK);
  EXPECT_EQ(ReadConfig(PCI_ROM_ADDRESS), static_cast<uint32_t>(~(E::kRomSize - 1)));

  WriteConfig(PCI_ROM_ADDRESS, kRomAddress | PCI_ROM_ADDRESS_ENABLE);
  EXPECT_EQ(ReadConfig(PCI_ROM_ADDRESS), kRomAddress | PCI_ROM_ADDRESS_ENABLE);
  // The ROM decodes only with Memory Space on too (PCI 3.0 §6.2.5.2).
  EXPECT_FALSE(BusRead(mmio_, kRomAddress, 2).has_value());
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  EXPECT_EQ(BusRead(mmio_, kRomAddress, 2), 0xaa55u);
  EXPECT_EQ(state_->region_reads.back().index, static_cast<uint32_t>(VFIO_PCI_ROM_REGION_INDEX));
  EXPECT_EQ(state_->region_reads.back().offset, 0u);
  // ROM writes go nowhere.
  ASSERT_TRUE(BusWrite(mmio_, kRomAddress, 0));
  EXPECT_THAT(state_->region_writes, IsEmpty());

  WriteConfig(PCI_ROM_ADDRESS, kRomAddress);
  EXPECT_FALSE(BusRead(mmio_, kRomAddress, 2).has_value());
}

TEST_F(VfioPciFunctionTest, HidesTheRomWhenTheHostHasNone) {
  state_->regions[VFIO_PCI_ROM_REGION_INDEX].size = 0;
  Create();
  WriteConfig(PCI_ROM_ADDRESS, 0xffffffff);
  EXPECT_EQ(ReadConfig(PCI_ROM_ADDRESS), 0u);
}

TEST_F(VfioPciFunctionTest, CapabilityListHidesUnsupportedCapabilities) {
  Create();
  EXPECT_NE(ReadConfig(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0u);
  std::vector<std::pair<uint32_t, uint32_t>> walked;  // (offset, id)
  for (uint32_t at = ReadConfig(PCI_CAPABILITY_LIST, 1); at != 0 && walked.size() < 48;
       at = ReadConfig(at + PCI_CAP_LIST_NEXT, 1)) {
    walked.emplace_back(at, ReadConfig(at + PCI_CAP_LIST_ID, 1));
  }
  using P = std::pair<uint32_t, uint32_t>;
  EXPECT_THAT(walked, ElementsAre(P{E::kPm, PCI_CAP_ID_PM}, P{E::kMsi, PCI_CAP_ID_MSI},
                                  P{E::kPcie, PCI_CAP_ID_EXP}, P{E::kMsix, PCI_CAP_ID_MSIX}));
  // The hidden capability's bytes read 0; so does the extended list (PCIe Base 4.0 §7.6.3).
  EXPECT_EQ(ReadConfig(E::kVendor), 0u);
  EXPECT_EQ(ReadConfig(E::kVendor + 4), 0u);
  EXPECT_EQ(ReadConfig(0x100), 0u);
  EXPECT_EQ(ReadConfig(0xffc), 0u);
  // Kept capabilities' registers are the device's.
  EXPECT_EQ(ReadConfig(E::kPm + PCI_PM_PMC, 2), 0xc822u);
  EXPECT_EQ(ReadConfig(E::kPcie + PCI_EXP_DEVCAP), 0x00008cc1u);
  // MSI-X as the device describes it: 5 entries, table and PBA in BAR3.
  EXPECT_EQ(ReadConfig(E::kMsix + PCI_MSIX_FLAGS, 2), E::kMsixVectors - 1u);
  EXPECT_EQ(ReadConfig(E::kMsix + PCI_MSIX_TABLE), E::kMsixTableOffset | 3);
  EXPECT_EQ(ReadConfig(E::kMsix + PCI_MSIX_PBA), E::kMsixPbaOffset | 3);
}

TEST_F(VfioPciFunctionTest, PowerManagementWritesReachTheDevice) {
  Create();
  WriteConfig(E::kPm + PCI_PM_CTRL, 0x0003, 2);  // D3hot
  ASSERT_EQ(state_->config_writes.size(), 1u);
  EXPECT_EQ(state_->config_writes[0].offset, E::kPm + PCI_PM_CTRL);
  // Writes to hidden capabilities, the list pointers and extended space are dropped.
  WriteConfig(E::kVendor, 0xffffffff);
  WriteConfig(E::kPm, 0xffffffff, 2);
  WriteConfig(0x100, 0xffffffff);
  EXPECT_EQ(state_->config_writes.size(), 1u);
  EXPECT_EQ(ReadConfig(E::kPm + PCI_CAP_LIST_NEXT, 1), E::kMsi);
}

// Outside D0 a function decodes no BAR, and vfio-pci faults its BAR mmaps in D3hot: the guest
// slots must come down before the device goes to D3hot, and back up in D0.
TEST_F(VfioPciFunctionTest, BarMappingsFollowThePowerState) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
  ASSERT_EQ(mapper_.live().size(), 4u);
  state_->events.clear();

  WriteConfig(E::kPm + PCI_PM_CTRL, PCI_PM_CTRL_STATE_MASK, 2);  // D3hot
  EXPECT_THAT(mapper_.live(), IsEmpty());
  EXPECT_FALSE(BusRead(mmio_, kBar0Address + 0x8000).has_value());
  ASSERT_FALSE(state_->events.empty());
  EXPECT_EQ(state_->events.front(), absl::StrFormat("unmap %#x", kBar0Address));
  EXPECT_EQ(state_->events.back(), absl::StrFormat("config write %#x", E::kPm + PCI_PM_CTRL));

  WriteConfig(E::kPm + PCI_PM_CTRL, 0, 2);  // D0
  EXPECT_EQ(mapper_.live().size(), 4u);
  EXPECT_TRUE(BusRead(mmio_, kBar0Address + 0x8000).has_value());
}

TEST_F(VfioPciFunctionTest, BusMasterWriteReachesTheDevice) {
  Create();
  WriteConfig(PCI_COMMAND, PCI_COMMAND_MASTER | PCI_COMMAND_SERR, 2);
  EXPECT_EQ(ReadConfig(PCI_COMMAND, 2), PCI_COMMAND_MASTER | PCI_COMMAND_SERR);
  // Bus mastering is the device's (its DMA); SERR# reporting stays virtual.
  EXPECT_EQ(state_->ConfigU16(PCI_COMMAND), PCI_COMMAND_MASTER);
}

}  // namespace
}  // namespace minivmm::vfio_pci_function_testing
