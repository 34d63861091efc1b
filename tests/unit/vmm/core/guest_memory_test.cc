#include "vmm/core/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

MATCHER_P2(Spec, address, size, "") {
  return arg.guest_address == static_cast<uint64_t>(address) &&
         arg.size == static_cast<uint64_t>(size);
}

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  std::iota(bytes.begin(), bytes.end(), seed);
  return bytes;
}

GuestMemory Create(std::vector<GuestRegionSpec> specs) {
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(specs);
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

absl::Status CreateStatus(std::vector<GuestRegionSpec> specs) {
  return GuestMemory::Create(specs).status();
}

// Two regions with a gap: [0, 64 KiB) and [1 MiB, 1 MiB + 64 KiB).
class GuestMemoryTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kLowSize = 16 * kPage;
  static constexpr uint64_t kHighBase = kMiB;
  static constexpr uint64_t kHighSize = 16 * kPage;
  static constexpr uint64_t kHighEnd = kHighBase + kHighSize;

  GuestMemory memory_ = Create({{0, kLowSize}, {kHighBase, kHighSize}});
};

TEST_F(GuestMemoryTest, FreshMemoryReadsAsZero) {
  std::vector<uint8_t> out(64, 0xaa);
  ASSERT_TRUE(memory_.Read(kHighBase + 100, out).ok());
  EXPECT_THAT(out, Each(0));
}

TEST_F(GuestMemoryTest, WriteThenReadRoundTrips) {
  const std::vector<uint8_t> in = Pattern(300, 7);
  ASSERT_TRUE(memory_.Write(kHighBase + 0x123, in).ok());
  std::vector<uint8_t> out(in.size());
  ASSERT_TRUE(memory_.Read(kHighBase + 0x123, out).ok());
  EXPECT_EQ(out, in);
}

TEST_F(GuestMemoryTest, RegionsAreIndependent) {
  ASSERT_TRUE(memory_.Write(0x10, Pattern(4, 1)).ok());
  ASSERT_TRUE(memory_.Write(kHighBase + 0x10, Pattern(4, 9)).ok());
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(memory_.Read(0x10, out).ok());
  EXPECT_THAT(out, ElementsAre(1, 2, 3, 4));
  ASSERT_TRUE(memory_.Read(kHighBase + 0x10, out).ok());
  EXPECT_THAT(out, ElementsAre(9, 10, 11, 12));
}

TEST_F(GuestMemoryTest, SliceAliasesGuestMemory) {
  absl::StatusOr<std::span<uint8_t>> slice = memory_.Slice(kHighBase + 8, 4);
  ASSERT_TRUE(slice.ok()) << slice.status();
  ASSERT_EQ(slice->size(), 4u);
  (*slice)[0] = 0x11;
  (*slice)[3] = 0x44;
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(memory_.Read(kHighBase + 8, out).ok());
  EXPECT_THAT(out, ElementsAre(0x11, 0, 0, 0x44));

  ASSERT_TRUE(memory_.Write(kHighBase + 9, std::vector<uint8_t>{0x22}).ok());
  EXPECT_EQ((*slice)[1], 0x22);
}

TEST_F(GuestMemoryTest, WriteObjectStoresTheObjectBytes) {
  ASSERT_TRUE(memory_.WriteObject(0x100, uint32_t{0x11223344}).ok());
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(memory_.Read(0x100, out).ok());
  EXPECT_THAT(out, ElementsAre(0x44, 0x33, 0x22, 0x11));
}

TEST_F(GuestMemoryTest, AccessEndingExactlyAtTheRegionEndSucceeds) {
  std::vector<uint8_t> out(4);
  EXPECT_TRUE(memory_.Read(kHighEnd - 4, out).ok());
  EXPECT_TRUE(memory_.Write(kHighEnd - 4, out).ok());
  EXPECT_TRUE(memory_.Slice(kHighEnd - 4, 4).ok());
  EXPECT_TRUE(memory_.Slice(kHighBase, kHighSize).ok());
}

TEST_F(GuestMemoryTest, ReadPastTheEndOfARegionFails) {
  std::vector<uint8_t> out(4);
  const absl::Status status = memory_.Read(kHighEnd - 2, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(status.message()), HasSubstr("outside guest RAM"));
  EXPECT_EQ(memory_.Read(kHighEnd, out).code(), absl::StatusCode::kOutOfRange);
}

TEST_F(GuestMemoryTest, WritePastTheEndOfARegionFailsWithoutWritingAnything) {
  const std::vector<uint8_t> in = Pattern(4, 1);
  EXPECT_EQ(memory_.Write(kHighEnd - 2, in).code(), absl::StatusCode::kOutOfRange);
  std::vector<uint8_t> tail(2, 0xaa);
  ASSERT_TRUE(memory_.Read(kHighEnd - 2, tail).ok());
  EXPECT_THAT(tail, Each(0)) << "a rejected write must not store its in-range part";
}

TEST_F(GuestMemoryTest, SlicePastTheEndOfARegionFails) {
  EXPECT_EQ(memory_.Slice(kHighEnd - 2, 4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Slice(kHighBase, kHighSize + 1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(GuestMemoryTest, AccessInTheGapBetweenRegionsFails) {
  std::vector<uint8_t> out(1);
  EXPECT_EQ(memory_.Read(kLowSize, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Write(kHighBase - 1, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Slice(kHighBase - 1, 2).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(GuestMemoryStraddleTest, AccessStraddlingTwoAdjacentRegionsFails) {
  // Contiguous in the guest, but two separate host mappings: no single host span covers both.
  GuestMemory memory = Create({{0, kPage}, {kPage, kPage}});
  std::vector<uint8_t> out(4);
  EXPECT_EQ(memory.Read(kPage - 2, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory.Write(kPage - 2, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory.Slice(kPage - 2, 4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(memory.Read(kPage - 4, out).ok());
  EXPECT_TRUE(memory.Read(kPage, out).ok());
}

TEST_F(GuestMemoryTest, LengthThatWrapsPastTheAddressSpaceFails) {
  // gpa + length wraps around to an address inside the region: a check written as
  // `gpa + length <= end` would accept it.
  EXPECT_EQ(memory_.Slice(kHighBase + 0x10, kMax).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Slice(kHighBase + 0x10, kMax - 0xf).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Slice(0x10, kMax - 0xf).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(GuestMemoryTest, AddressNearTheTopOfTheAddressSpaceFails) {
  std::vector<uint8_t> out(2);
  EXPECT_EQ(memory_.Read(kMax, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Read(kMax - 1, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Write(kMax, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Slice(kMax, 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory_.Slice(kMax, kMax).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(GuestMemoryTopTest, RegionEndingJustBelowTheTopRejectsAccessesThatWrap) {
  constexpr uint64_t kBase = kMax - 2 * kPage + 1;  // [2^64 - 8 KiB, 2^64 - 4 KiB)
  GuestMemory memory = Create({{kBase, kPage}});
  std::vector<uint8_t> out(2);
  EXPECT_TRUE(memory.Read(kBase + kPage - 2, out).ok());
  EXPECT_EQ(memory.Read(kBase + kPage - 1, out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory.Slice(kBase + 1, kMax).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory.Slice(kBase, kMax - kBase + 1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(GuestMemoryCreateTest, SortsRegionsByAddress) {
  GuestMemory memory = Create({{kMiB, kPage}, {0, 2 * kPage}});
  ASSERT_EQ(memory.regions().size(), 2u);
  EXPECT_EQ(memory.regions()[0].guest_address, 0u);
  EXPECT_EQ(memory.regions()[0].size, 2 * kPage);
  EXPECT_EQ(memory.regions()[1].guest_address, kMiB);
  EXPECT_EQ(memory.total_size(), 3 * kPage);
}

TEST(GuestMemoryCreateTest, AcceptsAdjacentRegions) {
  EXPECT_TRUE(CreateStatus({{0, kPage}, {kPage, kPage}}).ok());
}

TEST(GuestMemoryCreateTest, RejectsUnalignedAddress) {
  EXPECT_EQ(CreateStatus({{0x800, kPage}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryCreateTest, RejectsUnalignedSize) {
  EXPECT_EQ(CreateStatus({{0, kPage + 1}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryCreateTest, RejectsEmptyRegion) {
  EXPECT_EQ(CreateStatus({{0, kPage}, {kMiB, 0}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryCreateTest, RejectsRegionThatWraps) {
  EXPECT_EQ(CreateStatus({{kMax - kPage + 1, 2 * kPage}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryCreateTest, RejectsOverlappingRegionsGivenInAnyOrder) {
  const absl::Status status = CreateStatus({{kMiB, 4 * kPage}, {0, kMiB + kPage}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("overlap"));
}

TEST(GuestMemoryCreateTest, RejectsRegionsWithTheSameAddress) {
  EXPECT_EQ(CreateStatus({{0, kPage}, {0, 2 * kPage}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryMoveTest, MovedToMemoryKeepsTheContents) {
  GuestMemory source = Create({{0, kPage}});
  ASSERT_TRUE(source.Write(0x10, Pattern(3, 5)).ok());
  GuestMemory target = std::move(source);
  std::vector<uint8_t> out(3);
  ASSERT_TRUE(target.Read(0x10, out).ok());
  EXPECT_THAT(out, ElementsAre(5, 6, 7));
  EXPECT_TRUE(source.regions().empty());  // NOLINT(bugprone-use-after-move): documented state
}

TEST(GuestMemoryMoveTest, MoveAssignmentReplacesTheRegions) {
  GuestMemory target = Create({{0, kPage}});
  GuestMemory source = Create({{kMiB, 2 * kPage}});
  target = std::move(source);
  ASSERT_EQ(target.regions().size(), 1u);
  EXPECT_EQ(target.regions()[0].guest_address, kMiB);
  std::vector<uint8_t> out(1);
  EXPECT_FALSE(target.Read(0, out).ok());
  EXPECT_TRUE(target.Read(kMiB, out).ok());
}

TEST(RamRegionsTest, SmallGuestHasOneRegionFromZero) {
  EXPECT_THAT(layout::RamRegions(256 * kMiB), ElementsAre(Spec(0, 256 * kMiB)));
}

TEST(RamRegionsTest, GuestFillingTheSpaceBelowTheMmioHoleHasOneRegion) {
  EXPECT_THAT(layout::RamRegions(3 * kGiB), ElementsAre(Spec(0, 3 * kGiB)));
}

TEST(RamRegionsTest, RamBeyondThreeGibGoesAboveFourGib) {
  EXPECT_THAT(layout::RamRegions(4 * kGiB), ElementsAre(Spec(0, 3 * kGiB), Spec(4 * kGiB, kGiB)));
  EXPECT_THAT(layout::RamRegions(3 * kGiB + 2 * kMiB),
              ElementsAre(Spec(0, 3 * kGiB), Spec(4 * kGiB, 2 * kMiB)));
}

TEST(RamRegionsTest, RegionsAreAcceptedByGuestMemory) {
  // MAP_NORESERVE: only address space is reserved, nothing is touched.
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(layout::RamRegions(4 * kGiB));
  ASSERT_TRUE(memory.ok()) << memory.status();
  EXPECT_EQ(memory->total_size(), 4 * kGiB);
  std::vector<uint8_t> out(1);
  EXPECT_FALSE(memory->Read(3 * kGiB, out).ok()) << "the MMIO hole must not be RAM";
  EXPECT_TRUE(memory->Read(5 * kGiB - 1, out).ok());
}

TEST(MemoryLayoutTest, BootStructuresLieInConventionalMemoryWithoutOverlapping) {
  struct Area {
    const char* name;
    uint64_t start;
    uint64_t size;
  };
  const std::vector<Area> areas = {
      {"GDT", layout::kGdtAddress, 5 * 8},
      {"zero page", layout::kZeroPageAddress, kPage},
      {"PML4", layout::kPml4Address, kPage},
      {"PDPT", layout::kPdptAddress, kPage},
      {"page directories", layout::kPdAddress, 4 * kPage},
      {"command line", layout::kCmdlineAddress, layout::kCmdlineMaxSize},
  };
  for (size_t i = 0; i < areas.size(); ++i) {
    EXPECT_LE(areas[i].start + areas[i].size, layout::kLowMemoryEnd) << areas[i].name;
    for (size_t j = i + 1; j < areas.size(); ++j) {
      const bool disjoint = areas[i].start + areas[i].size <= areas[j].start ||
                            areas[j].start + areas[j].size <= areas[i].start;
      EXPECT_TRUE(disjoint) << areas[i].name << " overlaps " << areas[j].name;
    }
  }
  // The boot stack grows down from kBootStackPointer into the page below the PML4.
  EXPECT_GE(layout::kBootStackPointer, layout::kZeroPageAddress + kPage);
  EXPECT_LT(layout::kBootStackPointer, layout::kPml4Address);
}

TEST(GuestMemoryZeroTest, ZeroesWholeAndPartialPagesWrittenBefore) {
  const GuestRegionSpec spec{0, 16 * 4096};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(memory.ok());
  const std::vector<uint8_t> ones(spec.size, 0xff);
  ASSERT_TRUE(memory->Write(0, ones).ok());
  // From the middle of page 1 to the middle of page 6: partial, whole and partial pages.
  ASSERT_TRUE(memory->Zero(4096 + 100, 5 * 4096).ok());
  std::vector<uint8_t> after(spec.size);
  ASSERT_TRUE(memory->Read(0, after).ok());
  for (uint64_t i = 0; i < spec.size; ++i) {
    const bool zeroed = i >= 4096 + 100 && i < 6 * 4096 + 100;
    ASSERT_EQ(after[i], zeroed ? 0 : 0xff) << "byte " << i;
  }
}

TEST(GuestMemoryZeroTest, ZeroesASubPageRange) {
  const GuestRegionSpec spec{0, 2 * 4096};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(memory.ok());
  const std::vector<uint8_t> ones(spec.size, 0xff);
  ASSERT_TRUE(memory->Write(0, ones).ok());
  ASSERT_TRUE(memory->Zero(10, 20).ok());
  std::vector<uint8_t> after(40);
  ASSERT_TRUE(memory->Read(0, after).ok());
  EXPECT_EQ(after[9], 0xff);
  EXPECT_EQ(after[10], 0);
  EXPECT_EQ(after[29], 0);
  EXPECT_EQ(after[30], 0xff);
}

// The VmFlags line of the /proc/self/smaps entry for the mapping that holds `address`.
std::string VmFlagsOfMappingAt(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find('-') < 17) {
      inside = start <= at && at < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

// Host and guest addresses agree modulo 2 MiB, so the host's huge pages line up with the
// guest's and KVM can map guest RAM in 2 MiB pages.
TEST(GuestMemoryHugePageTest, HostAddressesMatchGuestAddressesModuloTwoMiB) {
  const GuestRegionSpec specs[] = {
      {0, 6 * kMiB}, {4 * kGiB + 2 * kMiB, 4 * kMiB}, {8 * kGiB + 64 * kPage, 2 * kMiB}};
  for (int attempt = 0; attempt < 8; ++attempt) {  // mmap addresses vary between calls
    absl::StatusOr<GuestMemory> memory = GuestMemory::Create(specs);
    ASSERT_TRUE(memory.ok()) << memory.status();
    for (const GuestMemory::Region& r : memory->regions()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r.host) % kHugePageSize,
                r.guest_address % kHugePageSize)
          << "region at " << r.guest_address;
    }
  }
}

TEST(GuestMemoryHugePageTest, AsksForTransparentHugePages) {
  if (::access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  }
  const GuestRegionSpec spec{0, 8 * kMiB};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(memory.ok()) << memory.status();
  EXPECT_THAT(VmFlagsOfMappingAt(memory->regions()[0].host), HasSubstr(" hg"));
}

// The slack mapped for alignment is given back: only the region's own bytes stay mapped.
TEST(GuestMemoryHugePageTest, KeepsNoSlackMapped) {
  const GuestRegionSpec spec{0, 4 * kMiB};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(memory.ok()) << memory.status();
  const uint8_t* host = memory->regions()[0].host;
  EXPECT_NE(VmFlagsOfMappingAt(host), "");
  EXPECT_NE(VmFlagsOfMappingAt(host + spec.size - 1), "");
  // msync on an unmapped page fails with ENOMEM: the pages on both sides must be gone.
  EXPECT_NE(::msync(const_cast<uint8_t*>(host) - kPage, kPage, MS_ASYNC), 0);
  EXPECT_NE(::msync(const_cast<uint8_t*>(host) + spec.size, kPage, MS_ASYNC), 0);
}

// Which of the region's first `pages` host pages are resident (mincore).
std::vector<bool> ResidentPages(const GuestMemory& memory, size_t pages) {
  std::vector<unsigned char> flags(pages);
  EXPECT_EQ(::mincore(memory.regions()[0].host, pages * kPage, flags.data()), 0);
  return std::vector<bool>(flags.begin(), flags.end());
}

TEST(GuestMemoryZeroTest, DropsWholePagesInsteadOfWritingThem) {
  const GuestRegionSpec spec{0, 4 * kPage};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(memory.ok());
  ASSERT_TRUE(memory->Write(0, std::vector<uint8_t>(spec.size, 0xff)).ok());
  ASSERT_TRUE(memory->Zero(kPage, 2 * kPage).ok());
  EXPECT_THAT(ResidentPages(*memory, 4), ElementsAre(true, false, false, true));
}

// A device may DMA into pinned pages: dropping one would leave the guest a fresh page while
// the device kept the old one, so zeroing must write in place.
TEST(GuestMemoryZeroTest, WritesInPlaceOncePinnedForDma) {
  const GuestRegionSpec spec{0, 4 * kPage};
  absl::StatusOr<GuestMemory> created = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(created.ok());
  created->MarkPinnedForDma();
  GuestMemory memory = *std::move(created);  // the mark moves with the memory
  ASSERT_TRUE(memory.Write(0, std::vector<uint8_t>(spec.size, 0xff)).ok());
  ASSERT_TRUE(memory.Zero(kPage, 2 * kPage).ok());
  EXPECT_THAT(ResidentPages(memory, 4), Each(true));
  std::vector<uint8_t> zeroed(2 * kPage, 0xaa);
  ASSERT_TRUE(memory.Read(kPage, zeroed).ok());
  EXPECT_THAT(zeroed, Each(0));
}

TEST(GuestMemoryZeroTest, RejectsARangeOutsideGuestRam) {
  const GuestRegionSpec spec{0, 4096};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  ASSERT_TRUE(memory.ok());
  EXPECT_FALSE(memory->Zero(0, 8192).ok());
  EXPECT_FALSE(memory->Zero(~uint64_t{0} - 10, 100).ok());
}

// --- Dirty tracking: the VMM's own writes, which KVM's dirty log does not see.

// The page numbers whose bits are set, in order.
std::vector<uint64_t> PagesIn(const std::vector<uint64_t>& bits) {
  std::vector<uint64_t> pages;
  for (uint64_t i = 0; i < bits.size() * 64; ++i) {
    if (bits[i / 64] & (uint64_t{1} << (i % 64))) pages.push_back(i);
  }
  return pages;
}

TEST_F(GuestMemoryTest, TakeGivesNoBitmapWhenTrackingNeverStarted) {
  ASSERT_TRUE(memory_.Write(0x10, Pattern(4, 1)).ok());
  EXPECT_FALSE(memory_.dirty_tracking());
  EXPECT_THAT(memory_.TakeDirtyPages(0), IsEmpty());
  EXPECT_THAT(memory_.TakeDirtyPages(1), IsEmpty());
}

TEST_F(GuestMemoryTest, WritesBeforeTrackingStartsAreNotMarked) {
  ASSERT_TRUE(memory_.Write(0x10, Pattern(4, 1)).ok());
  ASSERT_TRUE(memory_.Zero(kHighBase, kPage).ok());
  memory_.StartDirtyTracking();
  EXPECT_TRUE(memory_.dirty_tracking());
  // One word per region: 16 pages each.
  EXPECT_THAT(memory_.TakeDirtyPages(0), ElementsAre(0));
  EXPECT_THAT(memory_.TakeDirtyPages(1), ElementsAre(0));
}

TEST_F(GuestMemoryTest, WriteMarksBothPagesOfAWriteAcrossAPageBoundary) {
  memory_.StartDirtyTracking();
  ASSERT_TRUE(memory_.Write(kHighBase + 3 * kPage - 4, Pattern(8, 1)).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), IsEmpty()) << "wrong region marked";
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(1)), ElementsAre(2, 3));
}

TEST_F(GuestMemoryTest, WriteMarksThePageOfEachRegionItTouches) {
  memory_.StartDirtyTracking();
  ASSERT_TRUE(memory_.Write(kLowSize - 1, Pattern(1, 1)).ok());
  ASSERT_TRUE(memory_.WriteObject(kHighBase + 7 * kPage, uint32_t{1}).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), ElementsAre(15));
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(1)), ElementsAre(7));
}

TEST_F(GuestMemoryTest, ZeroMarksItsPartialAndWholePages) {
  memory_.StartDirtyTracking();
  // Middle of page 1 to the middle of page 6: the whole pages are dropped, not written, and
  // still read differently than before.
  ASSERT_TRUE(memory_.Zero(kPage + 100, 5 * kPage).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(1)), IsEmpty());
}

TEST_F(GuestMemoryTest, MutableSliceMarksItsWholeRange) {
  memory_.StartDirtyTracking();
  ASSERT_TRUE(memory_.Slice(kHighBase + 2 * kPage + 1, 2 * kPage).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(1)), ElementsAre(2, 3, 4));
}

TEST_F(GuestMemoryTest, ReadsAndConstSlicesAreNotMarked) {
  memory_.StartDirtyTracking();
  std::vector<uint8_t> out(2 * kPage);
  ASSERT_TRUE(memory_.Read(kPage, out).ok());
  const GuestMemory& view = memory_;
  ASSERT_TRUE(view.Slice(kHighBase, kHighSize).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), IsEmpty());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(1)), IsEmpty());
}

TEST_F(GuestMemoryTest, FailedWritesMarkNothing) {
  memory_.StartDirtyTracking();
  EXPECT_FALSE(memory_.Write(kHighEnd - 2, Pattern(4, 1)).ok());
  EXPECT_FALSE(memory_.Slice(kHighBase - 1, 2).ok());
  EXPECT_FALSE(memory_.Zero(kLowSize - kPage, 2 * kPage).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), IsEmpty());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(1)), IsEmpty());
}

TEST_F(GuestMemoryTest, TakeClearsThePagesItReturns) {
  memory_.StartDirtyTracking();
  ASSERT_TRUE(memory_.Write(5 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), ElementsAre(5));
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), IsEmpty());
  ASSERT_TRUE(memory_.Write(9 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), ElementsAre(9));
}

TEST_F(GuestMemoryTest, StopEndsMarkingButKeepsThePagesMarkedBefore) {
  memory_.StartDirtyTracking();
  ASSERT_TRUE(memory_.Write(2 * kPage, Pattern(1, 1)).ok());
  memory_.StopDirtyTracking();
  EXPECT_FALSE(memory_.dirty_tracking());
  ASSERT_TRUE(memory_.Write(3 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), ElementsAre(2));
  memory_.StartDirtyTracking();  // a second migration reuses the bitmaps
  ASSERT_TRUE(memory_.Write(4 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(PagesIn(memory_.TakeDirtyPages(0)), ElementsAre(4));
}

TEST_F(GuestMemoryTest, TakeOfARegionThatDoesNotExistIsEmpty) {
  memory_.StartDirtyTracking();
  EXPECT_THAT(memory_.TakeDirtyPages(2), IsEmpty());
}

TEST(GuestMemoryDirtyTest, RangeAcrossBitmapWordsMarksEveryPage) {
  GuestMemory memory = Create({{0, 256 * kPage}});
  memory.StartDirtyTracking();
  ASSERT_TRUE(memory.Zero(63 * kPage, 130 * kPage).ok());  // pages 63..192: four words
  const std::vector<uint64_t> bits = memory.TakeDirtyPages(0);
  ASSERT_EQ(bits.size(), 4u);
  std::vector<uint64_t> expected(130);
  std::iota(expected.begin(), expected.end(), 63);
  EXPECT_EQ(PagesIn(bits), expected);
}

TEST(GuestMemoryDirtyTest, BitmapOfARegionWithAPartialLastWordHasItsWords) {
  GuestMemory memory = Create({{0, 65 * kPage}});
  memory.StartDirtyTracking();
  ASSERT_TRUE(memory.Write(64 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(memory.TakeDirtyPages(0), ElementsAre(0, 1));
}

TEST(GuestMemoryDirtyTest, TrackingMovesWithTheMemory) {
  GuestMemory source = Create({{0, 4 * kPage}});
  source.StartDirtyTracking();
  ASSERT_TRUE(source.Write(kPage, Pattern(1, 1)).ok());
  GuestMemory target = std::move(source);
  EXPECT_TRUE(target.dirty_tracking());
  ASSERT_TRUE(target.Write(2 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(PagesIn(target.TakeDirtyPages(0)), ElementsAre(1, 2));
  GuestMemory assigned = Create({{0, kPage}});
  assigned = std::move(target);
  ASSERT_TRUE(assigned.Write(3 * kPage, Pattern(1, 1)).ok());
  EXPECT_THAT(PagesIn(assigned.TakeDirtyPages(0)), ElementsAre(3));
}

// A device thread writes while the migration thread takes: every page written once is returned
// by exactly one Take.
TEST(GuestMemoryDirtyTest, ConcurrentWriterAndTakerLoseNoPage) {
  constexpr uint64_t kPages = 4096;
  GuestMemory memory = Create({{0, kPages * kPage}});
  memory.StartDirtyTracking();
  std::vector<int> seen(kPages, 0);
  auto take = [&] {
    for (uint64_t page : PagesIn(memory.TakeDirtyPages(0))) ++seen[page];
  };
  std::atomic<bool> done = false;
  std::thread writer([&] {
    // Neighbouring pages share a bitmap word, so marks race with the taker's exchange.
    for (uint64_t page = 0; page < kPages; ++page) {
      if (page % 2 == 0) {
        EXPECT_TRUE(memory.Write(page * kPage + 8, Pattern(4, 1)).ok());
      } else {
        absl::StatusOr<std::span<uint8_t>> slice = memory.Slice(page * kPage, 1);
        ASSERT_TRUE(slice.ok());
        (*slice)[0] = 1;
      }
    }
    done = true;
  });
  while (!done) take();
  writer.join();
  take();
  EXPECT_THAT(seen, Each(1));
}

}  // namespace
}  // namespace minivmm
