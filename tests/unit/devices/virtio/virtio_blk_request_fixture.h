// The fixture of the virtio-blk request tests: an in-memory disk that records what the device
// asks of it, and helpers that place a request's header, data and status buffers in guest memory
// at unaligned addresses, as a driver might.
#ifndef MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_BLK_REQUEST_FIXTURE_H_
#define MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_BLK_REQUEST_FIXTURE_H_

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
#include "devices/virtio/virtio_blk_request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio::blk_testing {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

inline constexpr uint64_t kSector = 512;
inline constexpr uint64_t kDiskSectors = 64;
inline constexpr uint64_t kAllFeatures = (1ull << VIRTIO_BLK_F_FLUSH) |
                                         (1ull << VIRTIO_BLK_F_DISCARD) |
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

inline std::vector<uint8_t> Header(uint32_t type, uint64_t sector) {
  virtio_blk_outhdr header{};
  header.type = htole32(type);
  header.ioprio = htole32(0x1234);  // reserved (§5.2.6): must be ignored
  header.sector = htole64(sector);
  std::vector<uint8_t> bytes(sizeof(header));
  std::memcpy(bytes.data(), &header, sizeof(header));
  return bytes;
}

inline std::vector<uint8_t> Segment(uint64_t sector, uint32_t num_sectors, uint32_t flags) {
  virtio_blk_discard_write_zeroes segment{};
  segment.sector = htole64(sector);
  segment.num_sectors = htole32(num_sectors);
  segment.flags = htole32(flags);
  std::vector<uint8_t> bytes(sizeof(segment));
  std::memcpy(bytes.data(), &segment, sizeof(segment));
  return bytes;
}

inline std::vector<uint8_t> Concat(std::vector<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

inline std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
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

}  // namespace minivmm::virtio::blk_testing

#endif  // MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_BLK_REQUEST_FIXTURE_H_
