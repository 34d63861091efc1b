// The VFIO_DEVICE_GET_REGION_INFO capability chain, decoded from hand-built buffers laid out as
// <linux/vfio.h> describes them: struct vfio_region_info (32 bytes), then capabilities whose
// offsets count from the start of the buffer.
#include "passthrough/vfio_device_fd.h"

#include <linux/vfio.h>

#include <cstdint>
#include <cstring>
#include <ostream>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {

// Found by argument-dependent lookup from gmock's matchers, so it lives beside VfioMmapArea.
bool operator==(const VfioMmapArea& a, const VfioMmapArea& b) {
  return a.offset == b.offset && a.size == b.size;
}
void PrintTo(const VfioMmapArea& area, std::ostream* os) {
  *os << "[0x" << std::hex << area.offset << ", +0x" << area.size << ")" << std::dec;
}

namespace {

using ::testing::HasSubstr;

constexpr uint32_t kInfoSize = 32;  // sizeof(struct vfio_region_info)

class InfoBuffer {
 public:
  // struct vfio_region_info {argsz, flags, index, cap_offset, size, offset}.
  InfoBuffer(uint32_t flags, uint32_t index, uint64_t size, uint32_t total = kInfoSize)
      : bytes_(total, 0) {
    Put32(0, total);
    Put32(4, flags);
    Put32(8, index);
    Put64(16, size);
    Put64(24, 0x70000000000);  // the region's fd offset, as vfio-pci computes it
  }
  void SetCapOffset(uint32_t offset) { Put32(12, offset); }
  // struct vfio_info_cap_header {u16 id, u16 version, u32 next}.
  void PutCapHeader(uint32_t at, uint16_t id, uint32_t next) {
    Put16(at, id);
    Put16(at + 2, 1);
    Put32(at + 4, next);
  }
  // struct vfio_region_info_cap_sparse_mmap: header, nr_areas, reserved, areas[{offset, size}].
  void PutSparse(uint32_t at, uint32_t next, const std::vector<VfioMmapArea>& areas,
                 uint32_t nr_areas_claimed) {
    PutCapHeader(at, VFIO_REGION_INFO_CAP_SPARSE_MMAP, next);
    Put32(at + 8, nr_areas_claimed);
    for (size_t i = 0; i < areas.size(); ++i) {
      Put64(at + 16 + 16 * i, areas[i].offset);
      Put64(at + 24 + 16 * i, areas[i].size);
    }
  }
  void Put16(size_t at, uint16_t v) { Put(at, v); }
  void Put32(size_t at, uint32_t v) { Put(at, v); }
  void Put64(size_t at, uint64_t v) { Put(at, v); }
  std::span<const uint8_t> span() const { return bytes_; }

 private:
  template <typename T>
  void Put(size_t at, T value) {
    ASSERT_LE(at + sizeof(T), bytes_.size()) << "test buffer too small";
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
  }

  std::vector<uint8_t> bytes_;
};

constexpr uint32_t kRw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
constexpr uint32_t kMmapCaps = kRw | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;

TEST(VfioRegionCapsTest, NoCapsFlagMeansNoCaps) {
  InfoBuffer buffer(kRw | VFIO_REGION_INFO_FLAG_MMAP, VFIO_PCI_BAR0_REGION_INDEX, 0x20000);
  absl::StatusOr<VfioRegionCaps> caps = ParseRegionInfoCaps(buffer.span());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_FALSE(caps->has_sparse_mmap);
  EXPECT_FALSE(caps->msix_mappable);

  absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer.span());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->index, 0u);
  EXPECT_EQ(info->size, 0x20000u);
  EXPECT_TRUE(info->readable);
  EXPECT_TRUE(info->writable);
  EXPECT_THAT(info->mmap_areas, ::testing::ElementsAre(VfioMmapArea{0, 0x20000}));
}

TEST(VfioRegionCapsTest, CapsFlagWithZeroOffsetMeansTheBufferWasTooSmall) {
  InfoBuffer buffer(kMmapCaps, VFIO_PCI_BAR0_REGION_INDEX, 0x20000);
  absl::StatusOr<VfioRegionCaps> caps = ParseRegionInfoCaps(buffer.span());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_FALSE(caps->has_sparse_mmap);
}

TEST(VfioRegionCapsTest, RegionWithoutMmapFlagHasNoAreas) {
  InfoBuffer buffer(kRw, VFIO_PCI_CONFIG_REGION_INDEX, 0x1000);
  absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer.span());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->mmap_areas.empty());
}

TEST(VfioRegionCapsTest, ReadOnlyRegion) {
  InfoBuffer buffer(VFIO_REGION_INFO_FLAG_READ, VFIO_PCI_ROM_REGION_INDEX, 0x10000);
  absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer.span());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->readable);
  EXPECT_FALSE(info->writable);
  EXPECT_EQ(info->index, static_cast<uint32_t>(VFIO_PCI_ROM_REGION_INDEX));
}

TEST(VfioRegionCapsTest, SparseMmapAreasAroundTheMsixTable) {
  // A 64 KiB BAR with the MSI-X table in its third page: mmap below and above it.
  InfoBuffer buffer(kMmapCaps, VFIO_PCI_BAR3_REGION_INDEX, 0x10000, kInfoSize + 16 + 2 * 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {{0, 0x2000}, {0x3000, 0xd000}}, 2);
  absl::StatusOr<VfioRegionCaps> caps = ParseRegionInfoCaps(buffer.span());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_TRUE(caps->has_sparse_mmap);
  EXPECT_THAT(caps->sparse_mmap_areas,
              ::testing::ElementsAre(VfioMmapArea{0, 0x2000}, VfioMmapArea{0x3000, 0xd000}));

  absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer.span());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->mmap_areas,
              ::testing::ElementsAre(VfioMmapArea{0, 0x2000}, VfioMmapArea{0x3000, 0xd000}));
}

TEST(VfioRegionCapsTest, SparseMmapWithNoAreasLeavesNothingToMmap) {
  InfoBuffer buffer(kMmapCaps, VFIO_PCI_BAR0_REGION_INDEX, 0x1000, kInfoSize + 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {}, 0);
  absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer.span());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->mmap_areas.empty());
}

TEST(VfioRegionCapsTest, ZeroSizedSparseAreasAreDropped) {
  InfoBuffer buffer(kMmapCaps, VFIO_PCI_BAR0_REGION_INDEX, 0x4000, kInfoSize + 16 + 2 * 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {{0, 0}, {0x1000, 0x3000}}, 2);
  absl::StatusOr<VfioRegionCaps> caps = ParseRegionInfoCaps(buffer.span());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(caps->sparse_mmap_areas, ::testing::ElementsAre(VfioMmapArea{0x1000, 0x3000}));
}

TEST(VfioRegionCapsTest, MsixMappable) {
  InfoBuffer buffer(kMmapCaps, VFIO_PCI_BAR3_REGION_INDEX, 0x4000, kInfoSize + 8);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutCapHeader(kInfoSize, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer.span());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->msix_mappable);
  // No sparse capability: the whole BAR may be mmapped.
  EXPECT_THAT(info->mmap_areas, ::testing::ElementsAre(VfioMmapArea{0, 0x4000}));
}

TEST(VfioRegionCapsTest, ChainOfUnknownTypeSparseAndMsixMappable) {
  // CAP_TYPE (16 bytes) at 32, sparse (32 bytes) at 48, MSIX_MAPPABLE (8 bytes) at 80.
  InfoBuffer buffer(kMmapCaps, VFIO_PCI_BAR0_REGION_INDEX, 0x8000, 88);
  buffer.SetCapOffset(32);
  buffer.PutCapHeader(32, VFIO_REGION_INFO_CAP_TYPE, 48);
  buffer.PutSparse(48, 80, {{0x4000, 0x4000}}, 1);
  buffer.PutCapHeader(80, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  absl::StatusOr<VfioRegionCaps> caps = ParseRegionInfoCaps(buffer.span());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_TRUE(caps->msix_mappable);
  EXPECT_THAT(caps->sparse_mmap_areas, ::testing::ElementsAre(VfioMmapArea{0x4000, 0x4000}));
}

void ExpectMalformed(const InfoBuffer& buffer, const std::string& detail) {
  absl::StatusOr<VfioRegionCaps> caps = ParseRegionInfoCaps(buffer.span());
  ASSERT_FALSE(caps.ok());
  EXPECT_THAT(std::string(caps.status().message()), HasSubstr("malformed"));
  EXPECT_THAT(std::string(caps.status().message()), HasSubstr(detail));
  EXPECT_FALSE(ParseRegionInfo(buffer.span()).ok());
}

TEST(VfioRegionCapsTest, RejectsBufferShorterThanTheFixedStruct) {
  std::vector<uint8_t> bytes(kInfoSize - 1, 0);
  EXPECT_FALSE(ParseRegionInfoCaps(bytes).ok());
  EXPECT_FALSE(ParseRegionInfo(bytes).ok());
  EXPECT_FALSE(ParseRegionInfoCaps({}).ok());
}

TEST(VfioRegionCapsTest, RejectsFirstCapInsideTheFixedStruct) {
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, 64);
  buffer.SetCapOffset(8);
  ExpectMalformed(buffer, "overlaps");
}

TEST(VfioRegionCapsTest, RejectsFirstCapPastTheEnd) {
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, 40);
  buffer.SetCapOffset(1000);
  ExpectMalformed(buffer, "past the end");
}

TEST(VfioRegionCapsTest, RejectsTruncatedHeader) {
  // Room for 4 of the header's 8 bytes.
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, kInfoSize + 4);
  buffer.SetCapOffset(kInfoSize);
  ExpectMalformed(buffer, "past the end");
}

TEST(VfioRegionCapsTest, RejectsHeaderStraddlingTheEndWithHugeOffset) {
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, 40);
  buffer.SetCapOffset(0xfffffffc);  // offset + 8 overflows 32 bits
  ExpectMalformed(buffer, "past the end");
}

TEST(VfioRegionCapsTest, RejectsNextPointingBackwards) {
  // Two MSIX_MAPPABLE headers pointing at each other: a loop without the check.
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, 48);
  buffer.SetCapOffset(32);
  buffer.PutCapHeader(32, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 40);
  buffer.PutCapHeader(40, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 32);
  ExpectMalformed(buffer, "points back");
}

TEST(VfioRegionCapsTest, RejectsNextPointingAtItself) {
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, 40);
  buffer.SetCapOffset(32);
  buffer.PutCapHeader(32, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 32);
  ExpectMalformed(buffer, "points back");
}

TEST(VfioRegionCapsTest, RejectsNextPastTheEnd) {
  InfoBuffer buffer(kMmapCaps, 0, 0x1000, 40);
  buffer.SetCapOffset(32);
  buffer.PutCapHeader(32, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 4096);
  ExpectMalformed(buffer, "past the end");
}

TEST(VfioRegionCapsTest, RejectsSparseAreasPastTheBuffer) {
  // Claims 3 areas, room for 1.
  InfoBuffer buffer(kMmapCaps, 0, 0x10000, kInfoSize + 16 + 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {{0, 0x1000}}, 3);
  ExpectMalformed(buffer, "lists 3 areas");
}

TEST(VfioRegionCapsTest, RejectsHugeSparseAreaCount) {
  InfoBuffer buffer(kMmapCaps, 0, 0x10000, kInfoSize + 16 + 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {{0, 0x1000}}, 0xffffffff);
  ExpectMalformed(buffer, "areas");
}

TEST(VfioRegionCapsTest, RejectsSparseAreasOverlappingTheNextCap) {
  // The sparse cap claims 2 areas (48 bytes) but the next cap starts 32 bytes after it.
  InfoBuffer buffer(kMmapCaps, 0, 0x10000, 32 + 48 + 8);
  buffer.SetCapOffset(32);
  buffer.PutSparse(32, 64, {{0, 0x1000}}, 2);
  buffer.PutCapHeader(64, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  ExpectMalformed(buffer, "lists 2 areas");
}

TEST(VfioRegionCapsTest, RejectsTruncatedSparseHeader) {
  // next leaves the sparse capability only its 8-byte header, not nr_areas.
  InfoBuffer buffer(kMmapCaps, 0, 0x10000, 48);
  buffer.SetCapOffset(32);
  buffer.PutCapHeader(32, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 40);
  buffer.PutCapHeader(40, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  ExpectMalformed(buffer, "truncated");
}

TEST(VfioRegionCapsTest, RejectsSparseAreaOutsideTheRegion) {
  InfoBuffer buffer(kMmapCaps, 0, 0x4000, kInfoSize + 16 + 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {{0x3000, 0x2000}}, 1);
  ExpectMalformed(buffer, "outside the region");
}

TEST(VfioRegionCapsTest, RejectsSparseAreaWhoseEndOverflows) {
  InfoBuffer buffer(kMmapCaps, 0, 0x4000, kInfoSize + 16 + 16);
  buffer.SetCapOffset(kInfoSize);
  buffer.PutSparse(kInfoSize, 0, {{0x1000, UINT64_MAX}}, 1);
  ExpectMalformed(buffer, "outside the region");
}

TEST(VfioRegionCapsTest, RejectsTwoSparseCaps) {
  InfoBuffer buffer(kMmapCaps, 0, 0x4000, 64);
  buffer.SetCapOffset(32);
  buffer.PutSparse(32, 48, {}, 0);
  buffer.PutSparse(48, 0, {}, 0);
  ExpectMalformed(buffer, "two sparse");
}

TEST(VfioRegionNamesTest, NamesFollowVfioPciIndexes) {
  EXPECT_EQ(VfioPciRegionName(VFIO_PCI_BAR2_REGION_INDEX), "BAR2");
  EXPECT_EQ(VfioPciRegionName(VFIO_PCI_ROM_REGION_INDEX), "ROM");
  EXPECT_EQ(VfioPciRegionName(VFIO_PCI_CONFIG_REGION_INDEX), "config");
  EXPECT_EQ(VfioPciRegionName(VFIO_PCI_VGA_REGION_INDEX), "VGA");
  EXPECT_EQ(VfioPciRegionName(9), "region 9");
  EXPECT_EQ(VfioPciIrqName(VFIO_PCI_MSIX_IRQ_INDEX), "MSI-X");
  EXPECT_EQ(VfioPciIrqName(VFIO_PCI_INTX_IRQ_INDEX), "INTx");
}

}  // namespace
}  // namespace minivmm
