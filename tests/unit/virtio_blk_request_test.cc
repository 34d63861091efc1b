#include "devices/virtio/virtio_blk_request.h"

#include <endian.h>
#include <linux/virtio_blk.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "devices/virtio/block_backend.h"
#include "devices/virtio/descriptor_chain.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/guest_memory.h"

namespace minivmm::virtio {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kSector = 512;
constexpr uint64_t kDiskSectors = 64;
constexpr uint64_t kAllFeatures = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
                                  (1ull << VIRTIO_BLK_F_WRITE_ZEROES);

// An in-memory disk that records what the device asked of it.
class FakeBlockBackend : public BlockBackend {
 public:
  struct Call {
    uint64_t offset;
    uint64_t length;
    bool may_unmap;
    bool operator==(const Call&) const = default;
  };

  explicit FakeBlockBackend(uint64_t size) : data_(size) {
    std::iota(data_.begin(), data_.end(), uint8_t{1});
  }

  uint64_t size_bytes() const override { return size_override_ ? size_override_ : data_.size(); }
  bool read_only() const override { return read_only_; }
  absl::Status ReadAt(uint64_t offset, std::span<const std::span<uint8_t>> iov) override {
    if (!fail_with_.ok()) return fail_with_;
    for (std::span<uint8_t> s : iov) {
      EXPECT_LE(offset + s.size(), data_.size());
      std::memcpy(s.data(), data_.data() + offset, s.size());
      offset += s.size();
    }
    return absl::OkStatus();
  }
  absl::Status WriteAt(uint64_t offset, std::span<const std::span<const uint8_t>> iov) override {
    EXPECT_FALSE(read_only_);
    if (!fail_with_.ok()) return fail_with_;
    ++writes_;
    for (std::span<const uint8_t> s : iov) {
      EXPECT_LE(offset + s.size(), data_.size());
      std::memcpy(data_.data() + offset, s.data(), s.size());
      offset += s.size();
    }
    return absl::OkStatus();
  }
  absl::Status Flush() override {
    ++flushes_;
    return fail_with_;
  }
  absl::Status Discard(uint64_t offset, uint64_t length) override {
    if (!fail_with_.ok()) return fail_with_;
    discards_.push_back({offset, length, false});
    // Discarded sectors read as anything (§5.2.6.1).
    if (offset + length <= data_.size()) std::fill_n(data_.begin() + offset, length, 0xdd);
    return absl::OkStatus();
  }
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool may_unmap) override {
    if (!fail_with_.ok()) return fail_with_;
    write_zeroes_.push_back({offset, length, may_unmap});
    if (offset + length <= data_.size()) std::fill_n(data_.begin() + offset, length, 0);
    return absl::OkStatus();
  }
  bool supports_discard() const override { return supports_discard_; }
  bool supports_write_zeroes() const override { return true; }

  std::vector<uint8_t> data_;
  uint64_t size_override_ = 0;  // a disk larger than data_; ranges past data_ are only recorded
  bool read_only_ = false;
  bool supports_discard_ = true;
  absl::Status fail_with_;
  int writes_ = 0;
  int flushes_ = 0;
  std::vector<Call> discards_;
  std::vector<Call> write_zeroes_;
};

std::vector<uint8_t> Header(uint32_t type, uint64_t sector) {
  virtio_blk_outhdr header{};
  header.type = htole32(type);
  header.ioprio = htole32(0x1234);  // reserved (§5.2.6): must be ignored
  header.sector = htole64(sector);
  std::vector<uint8_t> bytes(sizeof(header));
  std::memcpy(bytes.data(), &header, sizeof(header));
  return bytes;
}

std::vector<uint8_t> Segment(uint64_t sector, uint32_t num_sectors, uint32_t flags) {
  virtio_blk_discard_write_zeroes segment{};
  segment.sector = htole64(sector);
  segment.num_sectors = htole32(num_sectors);
  segment.flags = htole32(flags);
  std::vector<uint8_t> bytes(sizeof(segment));
  std::memcpy(bytes.data(), &segment, sizeof(segment));
  return bytes;
}

std::vector<uint8_t> Concat(std::vector<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  std::iota(bytes.begin(), bytes.end(), seed);
  return bytes;
}

class VirtioBlkRequestTest : public ::testing::Test {
 protected:
  static constexpr uint8_t kPoison = 0xaa;

  // Places a device-readable buffer holding bytes in guest memory.
  uint64_t Readable(const std::vector<uint8_t>& bytes) {
    const uint64_t gpa = Place(bytes.size());
    if (!bytes.empty()) {
      EXPECT_TRUE(memory_.Write(gpa, bytes).ok());
    }
    chain_.buffers.push_back({gpa, static_cast<uint32_t>(bytes.size()), false});
    chain_.readable_bytes += bytes.size();
    return gpa;
  }
  // Places a device-writable buffer, filled with kPoison so untouched bytes show.
  uint64_t Writable(uint32_t length) {
    const uint64_t gpa = Place(length);
    if (length > 0) {
      EXPECT_TRUE(memory_.Write(gpa, std::vector<uint8_t>(length, kPoison)).ok());
    }
    chain_.buffers.push_back({gpa, length, true});
    chain_.writable_bytes += length;
    return gpa;
  }
  std::vector<uint8_t> GuestBytes(uint64_t gpa, size_t length) {
    std::vector<uint8_t> bytes(length);
    EXPECT_TRUE(memory_.Read(gpa, bytes).ok());
    return bytes;
  }
  uint8_t GuestByte(uint64_t gpa) { return GuestBytes(gpa, 1)[0]; }

  BlkRequestResult Execute() { return ExecuteBlkRequest(memory_, chain_, backend_, info_); }

  std::vector<uint8_t> Disk(uint64_t sector, size_t length) {
    return std::vector<uint8_t>(backend_.data_.begin() + sector * kSector,
                                backend_.data_.begin() + sector * kSector + length);
  }

  // Header, then the segments, then a lone status byte; returns the status byte's address.
  uint64_t DiscardLike(uint32_t type, std::vector<std::vector<uint8_t>> segments) {
    Readable(Header(type, 0));
    Readable(Concat(std::move(segments)));
    return Writable(1);
  }

  GuestMemory memory_ =
      std::move(GuestMemory::Create(std::vector<GuestRegionSpec>{{0, 1 << 20}}).value());
  FakeBlockBackend backend_{kDiskSectors * kSector};
  BlkDeviceInfo info_{.serial = "minivmm-disk0", .negotiated_features = kAllFeatures};
  DescriptorChain chain_;

 private:
  // Buffers go at distinct, deliberately unaligned addresses with gaps between them.
  uint64_t Place(uint64_t length) {
    const uint64_t gpa = next_gpa_;
    next_gpa_ += length + 0x33;
    return gpa;
  }
  uint64_t next_gpa_ = 0x1003;
};

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
}  // namespace minivmm::virtio
