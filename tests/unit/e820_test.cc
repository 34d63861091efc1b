#include "guest-firmware/e820.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/memory_layout.h"

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

class E820SizesTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(E820SizesTest, EntriesAreSortedAndDoNotOverlap) {
  const std::vector<boot_e820_entry> map = MapFor(GetParam());
  ASSERT_FALSE(map.empty());
  for (size_t i = 0; i < map.size(); ++i) {
    EXPECT_GT(map[i].size, 0u) << "entry " << i;
    if (i > 0) {
      EXPECT_LE(map[i - 1].addr + map[i - 1].size, map[i].addr) << "entries " << i - 1 << ", " << i;
    }
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
