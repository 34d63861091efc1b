// virtio-blk DISCARD and WRITE_ZEROES (virtio 1.2 §5.2.6.2), and the features and config space
// that announce them and their limits.
#include <linux/virtio_blk.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/virtio/virtio_blk_request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_blk_request_fixture.h"

namespace minivmm::virtio::blk_testing {
namespace {

TEST_F(VirtioBlkRequestTest, DiscardPassesSegmentsToBackend) {
  const uint64_t status =
      DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(8, 4, 0), Segment(kDiskSectors - 1, 1, 0)});
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, 1u);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
  EXPECT_THAT(backend_.discards_,
              ElementsAre(FakeBlockBackend::Call{8 * kSector, 4 * kSector, false},
                          FakeBlockBackend::Call{(kDiskSectors - 1) * kSector, kSector, false}));
}

TEST_F(VirtioBlkRequestTest, DiscardWithoutNegotiationIsUnsupported) {
  info_.negotiated_features = 1ull << VIRTIO_BLK_F_FLUSH;
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_THAT(backend_.discards_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, DiscardWithUnmapFlagIsUnsupported) {
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_THAT(backend_.discards_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, DiscardWithReservedFlagIsUnsupported) {
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, 1, 0), Segment(4, 1, 0x80000000u)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
  // Checked before any segment runs: the first, valid, one did not either.
  EXPECT_THAT(backend_.discards_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, DiscardPastCapacityIsIoError) {
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(kDiskSectors - 1, 2, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  chain_ = {};
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(std::numeric_limits<uint64_t>::max(), 2, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_THAT(backend_.discards_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, DiscardOverTheSectorLimitIsIoError) {
  backend_.size_override_ = (uint64_t{kBlkMaxDiscardSectors} + 8) * kSector;
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, kBlkMaxDiscardSectors + 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  chain_ = {};
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, kBlkMaxDiscardSectors, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, DiscardWithTooManySegmentsIsIoError) {
  std::vector<std::vector<uint8_t>> segments(kBlkMaxDiscardSegments + 1, Segment(0, 1, 0));
  DiscardLike(VIRTIO_BLK_T_DISCARD, segments);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_THAT(backend_.discards_, IsEmpty());

  chain_ = {};
  segments.pop_back();
  DiscardLike(VIRTIO_BLK_T_DISCARD, segments);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(backend_.discards_.size(), kBlkMaxDiscardSegments);
}

TEST_F(VirtioBlkRequestTest, DiscardWithPartialOrNoSegmentIsIoError) {
  std::vector<uint8_t> partial = Segment(0, 1, 0);
  partial.pop_back();
  DiscardLike(VIRTIO_BLK_T_DISCARD, {partial});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  chain_ = {};
  Readable(Header(VIRTIO_BLK_T_DISCARD, 0));
  Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_THAT(backend_.discards_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, DiscardOnReadOnlyDiskIsIoError) {
  backend_.read_only_ = true;
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_THAT(backend_.discards_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, DiscardTheBackendCannotDoIsUnsupported) {
  backend_.fail_with_ = absl::UnimplementedError("no punch hole here");
  DiscardLike(VIRTIO_BLK_T_DISCARD, {Segment(0, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
}

TEST_F(VirtioBlkRequestTest, WriteZeroesZeroesAndPassesUnmap) {
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, {Segment(2, 3, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  chain_ = {};
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, {Segment(20, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_THAT(backend_.write_zeroes_,
              ElementsAre(FakeBlockBackend::Call{2 * kSector, 3 * kSector, true},
                          FakeBlockBackend::Call{20 * kSector, kSector, false}));
  EXPECT_THAT(Disk(2, 3 * kSector), Each(0));
  EXPECT_THAT(Disk(20, kSector), Each(0));
  EXPECT_NE(Disk(5, 1)[0], 0);
}

TEST_F(VirtioBlkRequestTest, WriteZeroesWithReservedFlagIsUnsupported) {
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, {Segment(0, 1, 0x2)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_THAT(backend_.write_zeroes_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, WriteZeroesPastCapacityIsIoError) {
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, {Segment(kDiskSectors, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_THAT(backend_.write_zeroes_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, WriteZeroesWithTooManySegmentsIsIoError) {
  std::vector<std::vector<uint8_t>> segments(kBlkMaxWriteZeroesSegments + 1, Segment(0, 1, 0));
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, segments);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_THAT(backend_.write_zeroes_, IsEmpty());
}

TEST_F(VirtioBlkRequestTest, WriteZeroesWithoutNegotiationIsUnsupported) {
  info_.negotiated_features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD);
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, {Segment(0, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
}

TEST_F(VirtioBlkRequestTest, WriteZeroesIsWritethroughWithoutNegotiatedFlush) {
  info_.negotiated_features = 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
  DiscardLike(VIRTIO_BLK_T_WRITE_ZEROES, {Segment(0, 1, 0)});
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(backend_.flushes_, 1);
}

TEST(BlkDeviceFeaturesTest, WritableDiskOffersDiscardAndWriteZeroes) {
  FakeBlockBackend backend(kSector);
  EXPECT_EQ(BlkDeviceFeatures(backend),
            (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
                (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
  backend.supports_discard_ = false;
  EXPECT_EQ(BlkDeviceFeatures(backend) & (1ull << VIRTIO_BLK_F_DISCARD), 0u);
}

TEST(BlkDeviceFeaturesTest, ReadOnlyDiskOffersRoAndNoWrites) {
  FakeBlockBackend backend(kSector);
  backend.read_only_ = true;
  EXPECT_EQ(BlkDeviceFeatures(backend),
            (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_RO));
}

TEST(MakeBlkConfigTest, FillsLimitsLittleEndianAtSpecOffsets) {
  FakeBlockBackend backend(kDiskSectors * kSector);
  const virtio_blk_config config = MakeBlkConfig(backend, 256);
  uint8_t bytes[sizeof(config)];
  std::memcpy(bytes, &config, sizeof(config));
  auto le = [&](size_t offset, size_t size) {
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) value |= uint64_t{bytes[offset + i]} << (8 * i);
    return value;
  };
  EXPECT_EQ(le(0, 8), kDiskSectors);             // capacity
  EXPECT_EQ(le(8, 4), 0u);                       // size_max: not offered
  EXPECT_EQ(le(12, 4), 254u);                    // seg_max
  EXPECT_EQ(le(20, 4), 512u);                    // blk_size
  EXPECT_EQ(le(33, 1), 0u);                      // unused0
  EXPECT_EQ(le(34, 2), 1u);                      // num_queues
  EXPECT_EQ(le(36, 4), kBlkMaxDiscardSectors);   // max_discard_sectors
  EXPECT_EQ(le(40, 4), kBlkMaxDiscardSegments);  // max_discard_seg
  EXPECT_EQ(le(44, 4), kBlkDiscardSectorAlignment);
  EXPECT_EQ(le(48, 4), kBlkMaxWriteZeroesSectors);
  EXPECT_EQ(le(52, 4), kBlkMaxWriteZeroesSegments);
  EXPECT_EQ(le(56, 1), 1u);  // write_zeroes_may_unmap
  EXPECT_EQ(le(57, 3), 0u);  // unused1
  EXPECT_EQ(kBlkConfigSize, 60u);

  backend.supports_discard_ = false;
  EXPECT_EQ(MakeBlkConfig(backend, 256).write_zeroes_may_unmap, 0);
}

}  // namespace
}  // namespace minivmm::virtio::blk_testing
