#include "guest-firmware/e820.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

MATCHER_P3(Entry, addr, size, type, "") {
  return arg.addr == static_cast<uint64_t>(addr) && arg.size == static_cast<uint64_t>(size) &&
         arg.type == static_cast<uint32_t>(type);
}

std::vector<boot_e820_entry> MapFor(uint64_t memory_bytes) {
  return BuildE820Map(layout::RamRegions(memory_bytes));
}

TEST(E820Test, SmallGuestHasLowRamReservedBiosAreaAndRamFromOneMib) {
  EXPECT_THAT(MapFor(256 * kMiB), ElementsAre(Entry(0, 0x9fc00, kE820Ram),
                                              Entry(0xe0000, 0x100000 - 0xe0000, kE820Reserved),
                                              Entry(0x100000, 256 * kMiB - 0x100000, kE820Ram)));
}

TEST(E820Test, GuestLargerThanThreeGibHasARegionAboveFourGib) {
  EXPECT_THAT(
      MapFor(4 * kGiB),
      ElementsAre(Entry(0, 0x9fc00, kE820Ram), Entry(0xe0000, 0x20000, kE820Reserved),
                  Entry(0x100000, 3 * kGiB - 0x100000, kE820Ram), Entry(4 * kGiB, kGiB, kE820Ram)));
}

TEST(E820Test, GuestOfExactlyOneMibHasNoRamAboveOneMib) {
  EXPECT_THAT(MapFor(kMiB),
              ElementsAre(Entry(0, 0x9fc00, kE820Ram), Entry(0xe0000, 0x20000, kE820Reserved)));
}

TEST(E820Test, AcpiTablesLieInAReservedEntry) {
  bool covered = false;
  for (const boot_e820_entry& e : MapFor(512 * kMiB)) {
    if (e.type == kE820Reserved && e.addr <= layout::kAcpiTablesAddress &&
        layout::kAcpiTablesAddress + layout::kAcpiTablesMaxSize <= e.addr + e.size) {
      covered = true;
    }
  }
  EXPECT_TRUE(covered) << "the guest could reuse the memory holding its ACPI tables";
}

TEST(E820Test, ReservedRangeInTheMmioHoleBecomesASortedReservedEntry) {
  const GuestRegionSpec ecam[] = {{layout::kPciEcamAddress, layout::kPciEcamSize}};
  EXPECT_THAT(BuildE820Map(layout::RamRegions(4 * kGiB), ecam),
              ElementsAre(Entry(0, 0x9fc00, kE820Ram), Entry(0xe0000, 0x20000, kE820Reserved),
                          Entry(0x100000, 3 * kGiB - 0x100000, kE820Ram),
                          Entry(layout::kPciEcamAddress, layout::kPciEcamSize, kE820Reserved),
                          Entry(4 * kGiB, kGiB, kE820Ram)));
}

TEST(E820Test, ReservedRangesAreSortedWhateverTheirOrder) {
  const GuestRegionSpec reserved[] = {{0xfec00000, 0x1000}, {layout::kPciEcamAddress, kMiB}};
  const std::vector<boot_e820_entry> map = BuildE820Map(layout::RamRegions(64 * kMiB), reserved);
  ASSERT_EQ(map.size(), 5u);
  EXPECT_THAT(map[3], Entry(layout::kPciEcamAddress, kMiB, kE820Reserved));
  EXPECT_THAT(map[4], Entry(0xfec00000, 0x1000, kE820Reserved));
}

TEST(E820Test, ReservedRangeOverlappingRamCutsTheRamEntry) {
  const GuestRegionSpec reserved[] = {{32 * kMiB, kMiB}};
  EXPECT_THAT(
      BuildE820Map(layout::RamRegions(64 * kMiB), reserved),
      ElementsAre(Entry(0, 0x9fc00, kE820Ram), Entry(0xe0000, 0x20000, kE820Reserved),
                  Entry(0x100000, 31 * kMiB, kE820Ram), Entry(32 * kMiB, kMiB, kE820Reserved),
                  Entry(33 * kMiB, 31 * kMiB, kE820Ram)));
}

TEST(E820Test, OverlappingReservedRangesDoNotOverlapInTheMap) {
  const GuestRegionSpec reserved[] = {
      {0xf0000, 0x20000}, {0x100000 + kMiB, 2 * kMiB}, {0x100000 + 2 * kMiB, 2 * kMiB}};
  EXPECT_THAT(
      BuildE820Map(layout::RamRegions(64 * kMiB), reserved),
      ElementsAre(Entry(0, 0x9fc00, kE820Ram), Entry(0xe0000, 0x10000, kE820Reserved),
                  Entry(0xf0000, 0x20000, kE820Reserved), Entry(0x110000, kMiB - 0x10000, kE820Ram),
                  Entry(0x100000 + kMiB, kMiB, kE820Reserved),
                  Entry(0x100000 + 2 * kMiB, 2 * kMiB, kE820Reserved),
                  Entry(0x100000 + 4 * kMiB, 60 * kMiB - 0x100000, kE820Ram)));
}

TEST(E820Test, EmptyReservedRangeIsLeftOut) {
  const GuestRegionSpec reserved[] = {{layout::kPciEcamAddress, 0}};
  EXPECT_EQ(BuildE820Map(layout::RamRegions(64 * kMiB), reserved).size(), 3u);
}

class E820SizesTest : public ::testing::TestWithParam<uint64_t> {};

void ExpectSortedAndDisjoint(const std::vector<boot_e820_entry>& map) {
  ASSERT_FALSE(map.empty());
  for (size_t i = 0; i < map.size(); ++i) {
    EXPECT_GT(map[i].size, 0u) << "entry " << i;
    if (i > 0) {
      EXPECT_LE(map[i - 1].addr + map[i - 1].size, map[i].addr) << "entries " << i - 1 << ", " << i;
    }
  }
}

TEST_P(E820SizesTest, EntriesAreSortedAndDoNotOverlap) {
  ExpectSortedAndDisjoint(MapFor(GetParam()));
}

TEST_P(E820SizesTest, WithTheEcamReservedEntriesAreSortedAndRamIsUnchanged) {
  const GuestRegionSpec ecam[] = {{layout::kPciEcamAddress, layout::kPciEcamSize}};
  const std::vector<boot_e820_entry> map = BuildE820Map(layout::RamRegions(GetParam()), ecam);
  ExpectSortedAndDisjoint(map);
  std::vector<boot_e820_entry> without_ecam;
  for (const boot_e820_entry& e : map) {
    if (e.addr != layout::kPciEcamAddress) without_ecam.push_back(e);
  }
  const std::vector<boot_e820_entry> plain = MapFor(GetParam());
  ASSERT_EQ(without_ecam.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_THAT(without_ecam[i], Entry(plain[i].addr, plain[i].size, plain[i].type)) << i;
  }
}

TEST_P(E820SizesTest, NoRamInTheLegacyHoleOrTheMmioHole) {
  for (const boot_e820_entry& e : MapFor(GetParam())) {
    if (e.type != kE820Ram) continue;
    const uint64_t end = e.addr + e.size;
    EXPECT_TRUE(end <= layout::kLowMemoryEnd || e.addr >= layout::kHighMemoryStart)
        << "RAM entry [" << e.addr << ", " << end << ") covers the legacy BIOS area";
    EXPECT_TRUE(end <= layout::kMmioHoleStart || e.addr >= layout::kMmioHoleEnd)
        << "RAM entry [" << e.addr << ", " << end << ") covers the MMIO hole";
  }
}

TEST_P(E820SizesTest, RamEntriesAddUpToTheGuestMemoryLessTheLegacyHole) {
  uint64_t ram = 0;
  for (const boot_e820_entry& e : MapFor(GetParam())) {
    if (e.type == kE820Ram) ram += e.size;
  }
  EXPECT_EQ(ram, GetParam() - (layout::kHighMemoryStart - layout::kLowMemoryEnd));
}

INSTANTIATE_TEST_SUITE_P(MemorySizes, E820SizesTest,
                         ::testing::Values(2 * kMiB, 64 * kMiB, 3 * kGiB, 3 * kGiB + 2 * kMiB,
                                           8 * kGiB));

}  // namespace
}  // namespace minivmm
