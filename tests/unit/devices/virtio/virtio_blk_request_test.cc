// virtio-blk requests (virtio 1.2 §5.2.6): reads, writes, flushes and GET_ID against a fake disk,
// and chains a driver got wrong. Discard and write-zeroes are in virtio_blk_discard_test.cc.
#include "devices/virtio/virtio_blk_request.h"

#include <linux/virtio_blk.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_blk_request_fixture.h"

namespace minivmm::virtio::blk_testing {
namespace {

TEST_F(VirtioBlkRequestTest, ReadFillsWritableBufferAndReportsDataPlusStatus) {
  Readable(Header(VIRTIO_BLK_T_IN, 3));
  const uint64_t data = Writable(2 * kSector);
  const uint64_t status = Writable(1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, 2 * kSector + 1);
  EXPECT_FALSE(result.needs_reset);
  EXPECT_EQ(GuestBytes(data, 2 * kSector), Disk(3, 2 * kSector));
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
}

// seg_max (§5.2.5): the driver may use at most that many data segments, besides the header and
// the status byte. More fail with IOERR and move no data.
TEST_F(VirtioBlkRequestTest, RequestWithMoreSegmentsThanSegMaxFailsWithoutTouchingData) {
  info_.seg_max = 2;
  Readable(Header(VIRTIO_BLK_T_IN, 0));
  const uint64_t first = Writable(kSector);
  Writable(kSector);
  Writable(kSector);
  const uint64_t status = Writable(1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_IOERR);
  EXPECT_FALSE(result.needs_reset);
  EXPECT_EQ(GuestBytes(first, kSector), std::vector<uint8_t>(kSector, kPoison));
}

TEST_F(VirtioBlkRequestTest, RequestWithSegMaxSegmentsSucceeds) {
  info_.seg_max = 3;
  Readable(Header(VIRTIO_BLK_T_IN, 0));
  const uint64_t first = Writable(kSector);
  Writable(kSector);
  Writable(kSector);
  const uint64_t status = Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
  EXPECT_EQ(GuestBytes(first, kSector), Disk(0, kSector));
}

TEST_F(VirtioBlkRequestTest, ReadScattersAcrossBuffersAndSharesBufferWithStatus) {
  Readable(Header(VIRTIO_BLK_T_IN, 5));
  const uint64_t a = Writable(100);
  const uint64_t b = Writable(kSector - 100 + kSector + 1);  // the rest, then the status byte
  const BlkRequestResult result = Execute();
  ASSERT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, 2 * kSector + 1);
  EXPECT_EQ(Concat({GuestBytes(a, 100), GuestBytes(b, 2 * kSector - 100)}), Disk(5, 2 * kSector));
  EXPECT_EQ(GuestByte(b + 2 * kSector - 100), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, WriteGathersReadableBuffersAndReadsBack) {
  const std::vector<uint8_t> payload = Pattern(3 * kSector, 0x40);
  // Header and the first data bytes share a buffer; the rest is split unevenly.
  Readable(Concat({Header(VIRTIO_BLK_T_OUT, 10), {payload.begin(), payload.begin() + 300}}));
  Readable({payload.begin() + 300, payload.begin() + 512});
  Readable({payload.begin() + 512, payload.end()});
  const uint64_t status = Writable(1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, 1u);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
  EXPECT_EQ(Disk(10, payload.size()), payload);

  chain_ = {};
  Readable(Header(VIRTIO_BLK_T_IN, 10));
  const uint64_t data = Writable(3 * kSector + 1);
  ASSERT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(GuestBytes(data, payload.size()), payload);
}

TEST_F(VirtioBlkRequestTest, HeaderMaySpanBuffers) {
  const std::vector<uint8_t> header = Header(VIRTIO_BLK_T_IN, 1);
  Readable({header.begin(), header.begin() + 5});
  Readable({header.begin() + 5, header.end()});
  const uint64_t data = Writable(kSector + 1);
  ASSERT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(GuestBytes(data, kSector), Disk(1, kSector));
}

TEST_F(VirtioBlkRequestTest, ZeroLengthBuffersAreSkipped) {
  Readable({});
  Readable(Header(VIRTIO_BLK_T_IN, 1));
  const uint64_t data = Writable(kSector);
  Writable(0);
  const uint64_t status = Writable(1);
  Writable(0);
  const BlkRequestResult result = Execute();
  ASSERT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, kSector + 1);
  EXPECT_EQ(GuestBytes(data, kSector), Disk(1, kSector));
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, RejectsReadThatIsNotWholeSectors) {
  Readable(Header(VIRTIO_BLK_T_IN, 0));
  const uint64_t data = Writable(kSector + 8 + 1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 0u);  // the data bytes before the status were not written
  EXPECT_THAT(GuestBytes(data, kSector + 8), Each(kPoison));
  EXPECT_EQ(GuestByte(data + kSector + 8), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, RejectsWriteThatIsNotWholeSectors) {
  Readable(Header(VIRTIO_BLK_T_OUT, 0));
  Readable(Pattern(kSector - 1, 0));
  const uint64_t status = Writable(1);
  const std::vector<uint8_t> before = backend_.data_;
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 1u);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(backend_.data_, before);
}

TEST_F(VirtioBlkRequestTest, ReadEndingAtCapacitySucceeds) {
  Readable(Header(VIRTIO_BLK_T_IN, kDiskSectors - 2));
  Writable(2 * kSector + 1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, RejectsReadPastCapacity) {
  Readable(Header(VIRTIO_BLK_T_IN, kDiskSectors - 1));
  Writable(2 * kSector + 1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, RejectsWritePastCapacity) {
  Readable(Header(VIRTIO_BLK_T_OUT, kDiskSectors));
  Readable(Pattern(kSector, 0));
  Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(backend_.writes_, 0);
}

TEST_F(VirtioBlkRequestTest, RejectsSectorsWhoseByteOffsetOverflows) {
  // 2^55 sectors is 2^64 bytes: the byte offset wraps to 0, which must not pass as in range.
  for (uint64_t sector :
       std::vector<uint64_t>{1ull << 55, (1ull << 55) + 1, std::numeric_limits<uint64_t>::max()}) {
    chain_ = {};
    Readable(Header(VIRTIO_BLK_T_OUT, sector));
    Readable(Pattern(kSector, 0));
    Writable(1);
    EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR) << sector;
    chain_ = {};
    Readable(Header(VIRTIO_BLK_T_IN, sector));
    Writable(kSector + 1);
    EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR) << sector;
  }
  EXPECT_EQ(backend_.writes_, 0);
}

TEST_F(VirtioBlkRequestTest, ReadOnlyDiskFailsWritesAndWritesNothing) {
  backend_.read_only_ = true;
  Readable(Header(VIRTIO_BLK_T_OUT, 0));
  Readable(Pattern(kSector, 0));
  const uint64_t status = Writable(1);
  const std::vector<uint8_t> before = backend_.data_;
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(backend_.data_, before);
}

TEST_F(VirtioBlkRequestTest, ReadOnlyDiskStillReads) {
  backend_.read_only_ = true;
  Readable(Header(VIRTIO_BLK_T_IN, 0));
  Writable(kSector + 1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, FlushWhenNegotiated) {
  Readable(Header(VIRTIO_BLK_T_FLUSH, 0));
  const uint64_t status = Writable(1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, 1u);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
  EXPECT_EQ(backend_.flushes_, 1);
}

TEST_F(VirtioBlkRequestTest, FlushWithoutNegotiationIsUnsupported) {
  info_.negotiated_features = 0;
  Readable(Header(VIRTIO_BLK_T_FLUSH, 0));
  Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(backend_.flushes_, 0);
}

TEST_F(VirtioBlkRequestTest, FlushFailureIsIoError) {
  backend_.fail_with_ = absl::InternalError("disk on fire");
  Readable(Header(VIRTIO_BLK_T_FLUSH, 0));
  Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, WritesAreWritethroughWithoutNegotiatedFlush) {
  info_.negotiated_features = 0;
  Readable(Header(VIRTIO_BLK_T_OUT, 0));
  Readable(Pattern(kSector, 0));
  Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(backend_.flushes_, 1);
}

TEST_F(VirtioBlkRequestTest, WritesAreNotFlushedWhenDriverFlushes) {
  Readable(Header(VIRTIO_BLK_T_OUT, 0));
  Readable(Pattern(kSector, 0));
  Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(backend_.flushes_, 0);
}

TEST_F(VirtioBlkRequestTest, BackendReadFailureIsIoErrorWithoutUsedData) {
  backend_.fail_with_ = absl::DataLossError("bad sector");
  Readable(Header(VIRTIO_BLK_T_IN, 0));
  const uint64_t data = Writable(kSector + 1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 0u);
  EXPECT_EQ(GuestByte(data + kSector), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, GetIdPadsWithNul) {
  Readable(Header(VIRTIO_BLK_T_GET_ID, 0));
  const uint64_t id = Writable(VIRTIO_BLK_ID_BYTES);
  const uint64_t status = Writable(1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, VIRTIO_BLK_ID_BYTES + 1u);
  std::vector<uint8_t> expected(VIRTIO_BLK_ID_BYTES, 0);
  std::memcpy(expected.data(), "minivmm-disk0", 13);
  EXPECT_EQ(GuestBytes(id, VIRTIO_BLK_ID_BYTES), expected);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, GetIdOfTwentyBytesHasNoTerminator) {
  info_.serial = "0123456789abcdefghij";
  Readable(Header(VIRTIO_BLK_T_GET_ID, 0));
  const uint64_t id = Writable(VIRTIO_BLK_ID_BYTES + 1);
  ASSERT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  const std::vector<uint8_t> got = GuestBytes(id, VIRTIO_BLK_ID_BYTES);
  EXPECT_EQ(std::string(got.begin(), got.end()), info_.serial);
}

TEST_F(VirtioBlkRequestTest, GetIdCutsLongSerialToTwentyBytes) {
  info_.serial = "0123456789abcdefghijKLMNOP";
  Readable(Header(VIRTIO_BLK_T_GET_ID, 0));
  const uint64_t id = Writable(VIRTIO_BLK_ID_BYTES + 1);
  ASSERT_EQ(Execute().status, VIRTIO_BLK_S_OK);
  const std::vector<uint8_t> got = GuestBytes(id, VIRTIO_BLK_ID_BYTES);
  EXPECT_EQ(std::string(got.begin(), got.end()), "0123456789abcdefghij");
  EXPECT_EQ(GuestByte(id + VIRTIO_BLK_ID_BYTES), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkRequestTest, GetIdIntoShortBufferIsCut) {
  Readable(Header(VIRTIO_BLK_T_GET_ID, 0));
  const uint64_t id = Writable(8 + 1);
  const BlkRequestResult result = Execute();
  ASSERT_EQ(result.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(result.used_len, 9u);
  const std::vector<uint8_t> got = GuestBytes(id, 8);
  EXPECT_EQ(std::string(got.begin(), got.end()), "minivmm-");
}

TEST_F(VirtioBlkRequestTest, GetIdIntoOversizedBufferIsRejected) {
  Readable(Header(VIRTIO_BLK_T_GET_ID, 0));
  const uint64_t id = Writable(VIRTIO_BLK_ID_BYTES + 4 + 1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 0u);
  EXPECT_THAT(GuestBytes(id, VIRTIO_BLK_ID_BYTES + 4), Each(kPoison));
  EXPECT_EQ(GuestByte(id + VIRTIO_BLK_ID_BYTES + 4), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, ChainWithoutWritableByteNeedsReset) {
  Readable(Header(VIRTIO_BLK_T_OUT, 0));
  Readable(Pattern(kSector, 0));
  const BlkRequestResult result = Execute();
  EXPECT_TRUE(result.needs_reset);
  EXPECT_EQ(result.used_len, 0u);
  EXPECT_EQ(backend_.writes_, 0);
}

TEST_F(VirtioBlkRequestTest, StatusByteOutsideGuestMemoryNeedsReset) {
  Readable(Header(VIRTIO_BLK_T_FLUSH, 0));
  chain_.buffers.push_back({.address = 2 << 20, .length = 1, .device_writable = true});
  chain_.writable_bytes += 1;
  const BlkRequestResult result = Execute();
  EXPECT_TRUE(result.needs_reset);
  EXPECT_EQ(result.used_len, 0u);
}

TEST_F(VirtioBlkRequestTest, ShortHeaderIsIoError) {
  const std::vector<uint8_t> header = Header(VIRTIO_BLK_T_IN, 0);
  Readable({header.begin(), header.end() - 1});
  const uint64_t status = Writable(1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 1u);
  EXPECT_FALSE(result.needs_reset);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, NoReadableBytesIsIoError) {
  const uint64_t status = Writable(1);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, StatusGoesToLastWritableByteNotTheDriversIntendedOne) {
  // A write whose driver meant the first writable byte as the status but offered more: the
  // device reads the status as the last writable byte (§5.2.6), finds stray bytes before it,
  // fails the request without writing, and touches none of them.
  Readable(Header(VIRTIO_BLK_T_OUT, 0));
  Readable(Pattern(kSector, 0));
  const uint64_t intended = Writable(1);
  const uint64_t extra = Writable(8);
  const std::vector<uint8_t> before = backend_.data_;
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 0u);
  EXPECT_EQ(GuestByte(intended), kPoison);
  EXPECT_THAT(GuestBytes(extra, 7), Each(kPoison));
  EXPECT_EQ(GuestByte(extra + 7), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(backend_.data_, before);
}

TEST_F(VirtioBlkRequestTest, ReadWithBytesAfterIntendedStatusIsNotWholeSectors) {
  Readable(Header(VIRTIO_BLK_T_IN, 0));
  const uint64_t data = Writable(kSector);
  Writable(1);
  const uint64_t extra = Writable(8);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(result.used_len, 0u);
  EXPECT_THAT(GuestBytes(data, kSector), Each(kPoison));
  EXPECT_EQ(GuestByte(extra + 7), VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkRequestTest, FlushWithStrayWritableBytesIsIoError) {
  Readable(Header(VIRTIO_BLK_T_FLUSH, 0));
  Writable(4);
  EXPECT_EQ(Execute().status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(backend_.flushes_, 0);
}

TEST_F(VirtioBlkRequestTest, UnknownTypesAreUnsupported) {
  for (uint32_t type : {2u, 3u, 5u, 10u, 14u, 15u, 16u, 0x80000001u, 0xffffffffu}) {
    chain_ = {};
    Readable(Header(type, 0));
    const uint64_t status = Writable(1);
    const BlkRequestResult result = Execute();
    EXPECT_EQ(result.status, VIRTIO_BLK_S_UNSUPP) << type;
    EXPECT_EQ(result.used_len, 1u) << type;
    EXPECT_EQ(GuestByte(status), VIRTIO_BLK_S_UNSUPP) << type;
  }
  EXPECT_EQ(backend_.writes_, 0);
  EXPECT_EQ(backend_.flushes_, 0);
}

TEST_F(VirtioBlkRequestTest, UnknownTypeWithWritableDataLeavesItUntouched) {
  Readable(Header(VIRTIO_BLK_T_SECURE_ERASE + 50, 0));
  const uint64_t data = Writable(64 + 1);
  const BlkRequestResult result = Execute();
  EXPECT_EQ(result.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(result.used_len, 0u);
  EXPECT_THAT(GuestBytes(data, 64), Each(kPoison));
  EXPECT_EQ(GuestByte(data + 64), VIRTIO_BLK_S_UNSUPP);
}

}  // namespace
}  // namespace minivmm::virtio::blk_testing
