#include "devices/virtio/virtqueue.h"

// Only the constants and structs; the legacy helpers do not compile as C++.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMemorySize = 1 << 20;
constexpr uint16_t kSize = 8;
constexpr uint64_t kDescTable = 0x1000;
constexpr uint64_t kAvailRing = 0x2000;
constexpr uint64_t kUsedRing = 0x3000;
constexpr uint64_t kIndirectTable = 0x4000;
constexpr uint64_t kData = 0x10000;
constexpr uint16_t kNext = VRING_DESC_F_NEXT;
constexpr uint16_t kWrite = VRING_DESC_F_WRITE;
constexpr uint16_t kIndirect = VRING_DESC_F_INDIRECT;
// Offsets of the trailing event fields for kSize (§2.7.6, §2.7.8).
constexpr uint64_t kUsedEvent = kAvailRing + 4 + 2 * kSize;
constexpr uint64_t kAvailEvent = kUsedRing + 4 + 8 * kSize;

GuestMemory CreateMemory(std::vector<GuestRegionSpec> specs) {
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(specs);
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

void ExpectInvalid(const absl::Status& status, const std::string& message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr(message));
}

void WriteDesc(GuestMemory& memory, uint64_t table, uint16_t index, uint64_t addr, uint32_t len,
               uint16_t flags, uint16_t next = 0) {
  const vring_desc desc = {.addr = addr, .len = len, .flags = flags, .next = next};
  ASSERT_TRUE(memory.WriteObject(table + 16 * index, desc).ok());
}

template <typename T>
T ReadGuest(const GuestMemory& memory, uint64_t gpa) {
  T value{};
  EXPECT_TRUE(memory.Read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))).ok());
  return value;
}

class VirtqueueTest : public ::testing::Test {
 protected:
  void Desc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    WriteDesc(memory_, kDescTable, index, addr, len, flags, next);
  }
  void IndirectDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next = 0) {
    WriteDesc(memory_, kIndirectTable, index, addr, len, flags, next);
  }
  absl::StatusOr<DescriptorChain> Parse(uint16_t head, bool indirect_allowed = true) {
    return ParseDescriptorChain(memory_, layout_, head, indirect_allowed);
  }
  void Write16(uint64_t gpa, uint16_t value) { ASSERT_TRUE(memory_.WriteObject(gpa, value).ok()); }
  // Driver side: puts `head` in the next avail->ring slot and publishes it (§2.7.13).
  void Offer(uint16_t head) {
    Write16(layout_.avail_ring + 4 + 2 * (driver_avail_idx_ % kSize), head);
    Write16(layout_.avail_ring + 2, ++driver_avail_idx_);
  }

  // PopAvailable, which must succeed.
  std::optional<DescriptorChain> Pop(SplitVirtqueue& queue) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.PopAvailable(memory_);
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.ok() ? std::move(*chain) : std::nullopt;
  }

  GuestMemory memory_ = CreateMemory({{0, kMemorySize}});
  QueueLayout layout_ = {
      .size = kSize, .desc_table = kDescTable, .avail_ring = kAvailRing, .used_ring = kUsedRing};
  uint16_t driver_avail_idx_ = 0;
};

// ValidateQueueLayout

TEST_F(VirtqueueTest, AcceptsAlignedLayoutInsideMemory) {
  EXPECT_TRUE(ValidateQueueLayout(memory_, layout_).ok());
  // The largest queue: a 512 KiB table, a 64 KiB avail ring and a 256 KiB used ring.
  const QueueLayout big = {
      .size = 32768, .desc_table = 0, .avail_ring = 0x80000, .used_ring = 0x90000};
  EXPECT_TRUE(ValidateQueueLayout(memory_, big).ok());
}

TEST_F(VirtqueueTest, RejectsQueueSizeThatIsNotAPowerOfTwoUpTo32768) {
  for (uint16_t size : {0, 3, 48, 65535}) {
    QueueLayout layout = layout_;
    layout.size = size;
    ExpectInvalid(ValidateQueueLayout(memory_, layout), "power of two");
  }
}

TEST_F(VirtqueueTest, RejectsMisalignedAreas) {
  QueueLayout layout = layout_;
  layout.desc_table = kDescTable + 8;
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "descriptor table at 0x1008 is not 16-byte");
  layout = layout_;
  layout.avail_ring = kAvailRing + 1;
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "available ring at 0x2001 is not 2-byte");
  layout = layout_;
  layout.used_ring = kUsedRing + 2;
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "used ring at 0x3002 is not 4-byte");
}

TEST_F(VirtqueueTest, RejectsAreasNotInsideMemory) {
  QueueLayout layout = layout_;
  layout.desc_table = kMemorySize - 16 * kSize + 16;  // last entry past the end
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "descriptor table");
  layout = layout_;
  layout.avail_ring = kMemorySize - (4 + 2 * kSize);  // all but used_event inside
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "available ring");
  layout = layout_;
  layout.used_ring = kMemorySize - (4 + 8 * kSize);  // all but avail_event inside
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "used ring");
  layout = layout_;
  layout.avail_ring = ~uint64_t{1};  // aligned, and wraps past 2^64
  ExpectInvalid(ValidateQueueLayout(memory_, layout), "not inside one guest memory region");
}

// ParseDescriptorChain: direct descriptors

TEST_F(VirtqueueTest, ParsesSingleReadableDescriptor) {
  Desc(3, kData, 100, 0);
  absl::StatusOr<DescriptorChain> chain = Parse(3);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->head, 3);
  ASSERT_EQ(chain->buffers.size(), 1u);
  EXPECT_EQ(chain->buffers[0].address, kData);
  EXPECT_EQ(chain->buffers[0].length, 100u);
  EXPECT_FALSE(chain->buffers[0].device_writable);
  EXPECT_EQ(chain->readable_bytes, 100u);
  EXPECT_EQ(chain->writable_bytes, 0u);
}

TEST_F(VirtqueueTest, ParsesReadableThenWritableChainInNextOrder) {
  Desc(5, kData, 16, kNext, 2);
  Desc(2, kData + 0x100, 100, kNext, 7);
  Desc(7, kData + 0x200, 200, kWrite | kNext, 0);
  Desc(0, kData + 0x400, 1, kWrite);
  absl::StatusOr<DescriptorChain> chain = Parse(5);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->head, 5);
  ASSERT_EQ(chain->buffers.size(), 4u);
  EXPECT_EQ(chain->buffers[1].address, kData + 0x100);
  EXPECT_FALSE(chain->buffers[1].device_writable);
  EXPECT_EQ(chain->buffers[2].address, kData + 0x200);
  EXPECT_TRUE(chain->buffers[2].device_writable);
  EXPECT_EQ(chain->buffers[3].length, 1u);
  EXPECT_EQ(chain->readable_bytes, 116u);
  EXPECT_EQ(chain->writable_bytes, 201u);
}

TEST_F(VirtqueueTest, AcceptsChainAsLongAsTheQueue) {
  for (uint16_t i = 0; i < kSize; ++i)
    Desc(i, kData + i * 0x10, 0x10, i + 1 < kSize ? kNext : 0, i + 1);
  absl::StatusOr<DescriptorChain> chain = Parse(0);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->buffers.size(), kSize);
  EXPECT_EQ(chain->readable_bytes, 0x10u * kSize);
}

TEST_F(VirtqueueTest, RejectsHeadNextOrQueueSizeOutOfRange) {
  ExpectInvalid(Parse(kSize).status(), "chain head 8 is not below the queue size 8");
  ExpectInvalid(Parse(0xffff).status(), "chain head 65535");
  Desc(0, kData, 16, kNext, kSize);
  ExpectInvalid(Parse(0).status(), "descriptor index 8 is out of range (8 entries)");
  layout_.size = 0;
  ExpectInvalid(Parse(0).status(), "power of two");
}

TEST_F(VirtqueueTest, RejectsSelfLoopAndTwoDescriptorLoop) {
  Desc(4, kData, 16, kNext, 4);
  ExpectInvalid(Parse(4).status(), "longer than the table's 8 entries");
  Desc(1, kData, 16, kNext, 2);
  Desc(2, kData, 16, kNext, 1);
  ExpectInvalid(Parse(1).status(), "longer than the table's 8 entries");
}

TEST_F(VirtqueueTest, RejectsChainLongerThanQueue) {
  // Every descriptor once, then back to the start: the ninth step must fail.
  for (uint16_t i = 0; i < kSize; ++i) Desc(i, kData, 16, kNext, (i + 1) % kSize);
  ExpectInvalid(Parse(0).status(), "longer than the table's 8 entries");
}

TEST_F(VirtqueueTest, RejectsBufferWrappingPastTwoToThe64) {
  Desc(0, 0xffff'ffff'ffff'f000, 0x2000, 0);
  ExpectInvalid(Parse(0).status(), "wraps past 2^64");
  Desc(0, 0xffff'ffff'ffff'ffff, 1, 0);
  ExpectInvalid(Parse(0).status(), "wraps past 2^64");
}

TEST_F(VirtqueueTest, RejectsBufferOutsideOrStraddlingMemory) {
  Desc(0, 2 * kMemorySize, 16, 0);
  ExpectInvalid(Parse(0).status(), "is not inside one guest memory region");
  Desc(0, kMemorySize - 8, 16, kWrite);
  ExpectInvalid(Parse(0).status(), "[0xffff8, +0x10) is not inside");
  Desc(0, kMemorySize - 16, 16, kWrite);  // ends exactly at the end: fine
  EXPECT_TRUE(Parse(0).ok());
}

TEST(VirtqueueRegionsTest, RejectsBufferSpanningTwoAdjacentRegions) {
  GuestMemory memory = CreateMemory({{0, kMemorySize}, {kMemorySize, kMemorySize}});
  const QueueLayout layout = {
      .size = kSize, .desc_table = kDescTable, .avail_ring = kAvailRing, .used_ring = kUsedRing};
  WriteDesc(memory, kDescTable, 0, kMemorySize - 8, 16, 0);
  ExpectInvalid(ParseDescriptorChain(memory, layout, 0, false).status(), "one guest memory region");
}

TEST_F(VirtqueueTest, RejectsReadableAfterWritable) {
  Desc(0, kData, 16, kWrite | kNext, 1);
  Desc(1, kData, 16, 0);
  ExpectInvalid(Parse(0).status(), "descriptor 1 is device-readable but follows a device-writable");
}

TEST_F(VirtqueueTest, ZeroLengthDescriptorsAddNoBufferButKeepTheRules) {
  Desc(0, kData, 16, kNext, 1);
  Desc(1, 0xdead'beef'0000'0000, 0, kNext, 2);  // address never used, so not checked
  Desc(2, kData, 32, kWrite);
  absl::StatusOr<DescriptorChain> chain = Parse(0);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->buffers.size(), 2u);
  EXPECT_EQ(chain->readable_bytes, 16u);
  EXPECT_EQ(chain->writable_bytes, 32u);

  Desc(2, kData, 0, kWrite | kNext, 3);  // a zero-length writable still orders the chain
  Desc(3, kData, 0, 0);
  ExpectInvalid(Parse(0).status(), "follows a device-writable");
}

TEST_F(VirtqueueTest, RejectsDescriptorTableOutsideMemory) {
  layout_.desc_table = kMemorySize - 16;  // head 0 inside, head 1 outside
  ExpectInvalid(Parse(1).status(), "descriptor at 0xffff0 + 0x10 is outside guest memory");
  layout_.desc_table = ~uint64_t{15};  // head 1 wraps to 0: must not read there
  ExpectInvalid(Parse(1).status(), "outside guest memory");
}

// Byte totals need buffers larger than 2 GiB; MAP_NORESERVE makes that cost nothing.
TEST(VirtqueueLargeTest, BoundsChainBytesPerDirection) {
  constexpr uint64_t kTwoGiB = 1ull << 31;
  GuestMemory memory = CreateMemory({{0, kTwoGiB}});
  const QueueLayout layout = {
      .size = kSize, .desc_table = kDescTable, .avail_ring = kAvailRing, .used_ring = kUsedRing};
  WriteDesc(memory, kDescTable, 0, 0, 0x8000'0000, kNext, 1);
  WriteDesc(memory, kDescTable, 1, 0, 0x7fff'ffff, kNext, 2);  // total 2^32 - 1: fine
  WriteDesc(memory, kDescTable, 2, 0, 0x8000'0000, kWrite | kNext, 3);
  WriteDesc(memory, kDescTable, 3, 0, 0x7fff'ffff, kWrite);
  absl::StatusOr<DescriptorChain> chain = ParseDescriptorChain(memory, layout, 0, false);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->readable_bytes, kMaxChainBytes);
  EXPECT_EQ(chain->writable_bytes, kMaxChainBytes);

  WriteDesc(memory, kDescTable, 3, 0, 0x8000'0000, kWrite);
  ExpectInvalid(ParseDescriptorChain(memory, layout, 0, false).status(), "writable bytes exceed");
  WriteDesc(memory, kDescTable, 1, 0, 0x8000'0000, 0);
  ExpectInvalid(ParseDescriptorChain(memory, layout, 0, false).status(), "readable bytes exceed");
}

// ParseDescriptorChain: indirect tables (§2.7.5.3)

TEST_F(VirtqueueTest, ParsesIndirectTableAndIgnoresTheReferringWriteFlag) {
  Desc(2, kIndirectTable, 3 * 16, kIndirect | kWrite);
  IndirectDesc(0, kData, 10, kNext, 2);
  IndirectDesc(2, kData + 0x100, 20, kNext, 1);
  IndirectDesc(1, kData + 0x200, 30, kWrite);
  absl::StatusOr<DescriptorChain> chain = Parse(2);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->head, 2);
  ASSERT_EQ(chain->buffers.size(), 3u);
  EXPECT_EQ(chain->buffers[1].address, kData + 0x100);
  EXPECT_TRUE(chain->buffers[2].device_writable);
  EXPECT_EQ(chain->readable_bytes, 30u);
  EXPECT_EQ(chain->writable_bytes, 30u);
}

TEST_F(VirtqueueTest, ParsesDirectDescriptorsFollowedByIndirectTable) {
  Desc(0, kData, 12, kNext, 1);
  Desc(1, kIndirectTable, 2 * 16, kIndirect);
  IndirectDesc(0, kData + 0x100, 20, kNext, 1);
  IndirectDesc(1, kData + 0x200, 30, kWrite);
  absl::StatusOr<DescriptorChain> chain = Parse(0);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->buffers.size(), 3u);
  EXPECT_EQ(chain->readable_bytes, 32u);
  EXPECT_EQ(chain->writable_bytes, 30u);
}

TEST_F(VirtqueueTest, AcceptsIndirectTableLargerThanTheQueue) {
  constexpr uint16_t kEntries = 4 * kSize;
  Desc(0, kIndirectTable, kEntries * 16, kIndirect);
  for (uint16_t i = 0; i < kEntries; ++i)
    IndirectDesc(i, kData, 1, i + 1 < kEntries ? kNext : 0, i + 1);
  absl::StatusOr<DescriptorChain> chain = Parse(0);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->buffers.size(), kEntries);
}

TEST_F(VirtqueueTest, RejectsIndirectWhenNotNegotiated) {
  Desc(0, kIndirectTable, 16, kIndirect);
  IndirectDesc(0, kData, 10, 0);
  ExpectInvalid(Parse(0, /*indirect_allowed=*/false).status(),
                "VIRTIO_F_INDIRECT_DESC was not negotiated");
}

TEST_F(VirtqueueTest, RejectsNestedIndirect) {
  Desc(0, kIndirectTable, 2 * 16, kIndirect);
  IndirectDesc(0, kData, 10, kNext, 1);
  IndirectDesc(1, kIndirectTable, 2 * 16, kIndirect);
  ExpectInvalid(Parse(0).status(), "INDIRECT inside an indirect table");
}

TEST_F(VirtqueueTest, RejectsIndirectWithNext) {
  Desc(0, kIndirectTable, 16, kIndirect | kNext, 1);
  Desc(1, kData, 10, 0);
  IndirectDesc(0, kData, 10, 0);
  ExpectInvalid(Parse(0).status(), "both INDIRECT and NEXT");
}

TEST_F(VirtqueueTest, RejectsIndirectTableOfBadLength) {
  IndirectDesc(0, kData, 10, 0);
  Desc(0, kIndirectTable, 24, kIndirect);
  ExpectInvalid(Parse(0).status(), "length 24, not a nonzero multiple of 16");
  Desc(0, kIndirectTable, 0, kIndirect);
  ExpectInvalid(Parse(0).status(), "length 0, not a nonzero multiple of 16");
  Desc(0, 0, 16 * (kMaxIndirectDescriptors + 1), kIndirect);
  ExpectInvalid(Parse(0).status(), "32769 entries, more than the 32768");
}

TEST_F(VirtqueueTest, RejectsIndirectTableOutsideMemory) {
  Desc(0, 4 * kMemorySize, 32, kIndirect);
  ExpectInvalid(Parse(0).status(), "indirect table [0x400000, +0x20) is not inside");
  Desc(0, kMemorySize - 16, 32, kIndirect);  // straddles the end
  ExpectInvalid(Parse(0).status(), "indirect table [0xffff0, +0x20) is not inside");
  Desc(0, ~uint64_t{15}, 32, kIndirect);  // wraps
  ExpectInvalid(Parse(0).status(), "is not inside one guest memory region");
}

TEST_F(VirtqueueTest, RejectsBadChainsInsideIndirectTable) {
  Desc(0, kIndirectTable, 2 * 16, kIndirect);
  IndirectDesc(0, kData, 10, kNext, 2);
  ExpectInvalid(Parse(0).status(), "indirect table at 0x4000: descriptor index 2 is out of range");
  IndirectDesc(0, kData, 10, kNext, 1);
  IndirectDesc(1, kData, 10, kNext, 0);
  ExpectInvalid(Parse(0).status(), "longer than the table's 2 entries");
  IndirectDesc(0, kData, 10, kWrite | kNext, 1);
  IndirectDesc(1, kData, 10, 0);
  ExpectInvalid(Parse(0).status(), "follows a device-writable");
  IndirectDesc(0, kMemorySize, 10, 0);
  ExpectInvalid(Parse(0).status(), "not inside one guest memory region");
}

TEST_F(VirtqueueTest, RejectsReadableIndirectAfterWritableDirect) {
  Desc(0, kData, 10, kWrite | kNext, 1);
  Desc(1, kIndirectTable, 16, kIndirect | kWrite);
  IndirectDesc(0, kData, 10, 0);
  ExpectInvalid(Parse(0).status(), "follows a device-writable");
}

// SplitVirtqueue

TEST_F(VirtqueueTest, PopAvailableReturnsNulloptOnEmptyRing) {
  SplitVirtqueue queue(layout_, false, false);
  EXPECT_FALSE(Pop(queue).has_value());
  EXPECT_EQ(queue.last_avail_idx(), 0);
}

TEST_F(VirtqueueTest, PopAvailableReturnsOfferedChainsInOrder) {
  SplitVirtqueue queue(layout_, false, false);
  Desc(4, kData, 10, 0);
  Desc(6, kData, 20, kWrite);
  Offer(4);
  Offer(6);
  std::optional<DescriptorChain> first = Pop(queue);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->head, 4);
  EXPECT_EQ(first->readable_bytes, 10u);
  EXPECT_EQ(queue.last_avail_idx(), 1);
  std::optional<DescriptorChain> second = Pop(queue);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->head, 6);
  EXPECT_EQ(second->writable_bytes, 20u);
  EXPECT_FALSE(Pop(queue).has_value());
  EXPECT_EQ(queue.last_avail_idx(), 2);
}

TEST_F(VirtqueueTest, PopAvailableAcceptsFullRingAndRejectsIdxJumpBeyondIt) {
  for (uint16_t i = 0; i < kSize; ++i) Desc(i, kData, 1, 0);
  for (uint16_t i = 0; i < kSize; ++i) Offer(i);
  SplitVirtqueue full(layout_, false, false);
  for (uint16_t i = 0; i < kSize; ++i) EXPECT_EQ(Pop(full)->head, i);
  EXPECT_FALSE(Pop(full).has_value());

  Write16(kAvailRing + 2, kSize + 1);
  SplitVirtqueue queue(layout_, false, false);
  ExpectInvalid(queue.PopAvailable(memory_).status(),
                "avail->idx 9 is 9 entries ahead of the device's 0");
  Write16(kAvailRing + 2, 0xffff);  // "behind" us is also a jump of 65535 ahead
  ExpectInvalid(queue.PopAvailable(memory_).status(), "65535 entries ahead");
  EXPECT_EQ(queue.last_avail_idx(), 0);
}

TEST_F(VirtqueueTest, PopAvailableRejectsBadHeadWithoutAdvancing) {
  SplitVirtqueue queue(layout_, false, false);
  Offer(kSize);
  ExpectInvalid(queue.PopAvailable(memory_).status(), "avail->ring[0] (avail idx 0)");
  ExpectInvalid(queue.PopAvailable(memory_).status(), "chain head 8");
  EXPECT_EQ(queue.last_avail_idx(), 0);
}

TEST_F(VirtqueueTest, PopAvailableRejectsBadChain) {
  SplitVirtqueue queue(layout_, false, /*indirect_allowed=*/false);
  Desc(0, kIndirectTable, 16, kIndirect);
  Offer(0);
  ExpectInvalid(queue.PopAvailable(memory_).status(), "not negotiated");
}

TEST_F(VirtqueueTest, QueueMethodsFailCleanlyOnUnvalidatedLayout) {
  QueueLayout bad = layout_;
  bad.size = 0;
  SplitVirtqueue empty(bad, true, true);
  EXPECT_EQ(empty.PopAvailable(memory_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.PushUsed(memory_, 0, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.ShouldInterrupt(memory_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.EnableNotifications(memory_, true).code(), absl::StatusCode::kFailedPrecondition);

  bad = layout_;
  bad.avail_ring = ~uint64_t{1};  // idx at 2^64 - 2 + 2 wraps to 0
  SplitVirtqueue wrapping(bad, false, false);
  ExpectInvalid(wrapping.PopAvailable(memory_).status(), "avail->idx at 0xfffffffffffffffe + 0x2");
  bad = layout_;
  bad.used_ring = kMemorySize;
  SplitVirtqueue outside(bad, false, false);
  ExpectInvalid(outside.EnableNotifications(memory_, false), "used->flags at 0x100000");
}

TEST_F(VirtqueueTest, PushUsedWritesElementThenIdx) {
  SplitVirtqueue queue(layout_, false, false);
  Desc(5, kData, 10, kWrite);
  Offer(5);
  ASSERT_TRUE(Pop(queue).has_value());
  ASSERT_TRUE(queue.PushUsed(memory_, 5, 7).ok());
  EXPECT_EQ(queue.used_idx(), 1);
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kUsedRing + 2), 1);
  EXPECT_EQ(ReadGuest<uint32_t>(memory_, kUsedRing + 4), 5u);
  EXPECT_EQ(ReadGuest<uint32_t>(memory_, kUsedRing + 8), 7u);
}

TEST_F(VirtqueueTest, PushUsedRejectsBadHeadAndPushesBeyondWhatWasTaken) {
  SplitVirtqueue queue(layout_, false, false);
  EXPECT_EQ(queue.PushUsed(memory_, 0, 0).code(), absl::StatusCode::kFailedPrecondition);
  Desc(0, kData, 10, 0);
  Offer(0);
  ASSERT_TRUE(Pop(queue).has_value());
  ExpectInvalid(queue.PushUsed(memory_, kSize, 0), "used head 8");
  EXPECT_TRUE(queue.PushUsed(memory_, 0, 0).ok());
  EXPECT_EQ(queue.PushUsed(memory_, 0, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kUsedRing + 2), 1);
}

// 65536 + a few round trips: both free-running indices wrap, ring slots stay modulo size, and
// EVENT_IDX compares across the wrap.
TEST_F(VirtqueueTest, IndicesWrapAt65536) {
  SplitVirtqueue queue(layout_, /*event_idx=*/true, false);
  for (uint16_t i = 0; i < kSize; ++i) Desc(i, kData, i + 1, 0);
  Write16(kUsedEvent, 0xffff);  // notify when entry 65535 is written (idx 65535 -> 0)
  int notifications = 0;
  constexpr int kRounds = 65536 + 3;
  for (int round = 0; round < kRounds; ++round) {
    const uint16_t head = round % kSize;
    Offer(head);
    std::optional<DescriptorChain> chain = Pop(queue);
    ASSERT_TRUE(chain.has_value()) << round;
    ASSERT_EQ(chain->head, head);
    ASSERT_EQ(chain->readable_bytes, head + 1u);
    ASSERT_TRUE(queue.PushUsed(memory_, head, round).ok());
    absl::StatusOr<bool> notify = queue.ShouldInterrupt(memory_);
    ASSERT_TRUE(notify.ok());
    if (*notify) {
      ++notifications;
      EXPECT_EQ(round, 65535);
      EXPECT_EQ(queue.used_idx(), 0);
    }
  }
  EXPECT_EQ(notifications, 1);
  EXPECT_EQ(queue.last_avail_idx(), kRounds % 65536);
  EXPECT_EQ(queue.used_idx(), kRounds % 65536);
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kUsedRing + 2), kRounds % 65536);
  const int last = kRounds - 1;  // its element is in slot last % kSize
  EXPECT_EQ(ReadGuest<uint32_t>(memory_, kUsedRing + 4 + 8 * (last % kSize)), last % kSize);
  EXPECT_EQ(ReadGuest<uint32_t>(memory_, kUsedRing + 8 + 8 * (last % kSize)), uint32_t(last));
}

class NotificationTest : public VirtqueueTest {
 protected:
  void SetUp() override { Desc(0, kData, 1, 0); }
  void Push(SplitVirtqueue& queue, int count) {
    for (int i = 0; i < count; ++i) {
      Offer(0);
      ASSERT_TRUE(Pop(queue).has_value());
      ASSERT_TRUE(queue.PushUsed(memory_, 0, 0).ok());
    }
  }
  bool Interrupt(SplitVirtqueue& queue) {
    absl::StatusOr<bool> notify = queue.ShouldInterrupt(memory_);
    EXPECT_TRUE(notify.ok()) << notify.status();
    return notify.value_or(false);
  }
};

TEST_F(NotificationTest, WithoutEventIdxFollowsNoInterruptFlag) {
  SplitVirtqueue queue(layout_, /*event_idx=*/false, false);
  EXPECT_FALSE(Interrupt(queue));  // nothing pushed yet
  Push(queue, 1);
  EXPECT_TRUE(Interrupt(queue));
  EXPECT_FALSE(Interrupt(queue));  // nothing new since
  Write16(kAvailRing, VRING_AVAIL_F_NO_INTERRUPT);
  Push(queue, 2);
  EXPECT_FALSE(Interrupt(queue));
  Write16(kAvailRing, 0);
  Write16(kUsedEvent, 0x1234);  // ignored without EVENT_IDX
  Push(queue, 1);
  EXPECT_TRUE(Interrupt(queue));
}

TEST_F(NotificationTest, WithEventIdxNotifiesWhenUsedEventIsPassed) {
  SplitVirtqueue queue(layout_, /*event_idx=*/true, false);
  Write16(kAvailRing, VRING_AVAIL_F_NO_INTERRUPT);  // ignored with EVENT_IDX (§2.7.7.2)
  Write16(kUsedEvent, 0);
  Push(queue, 1);  // entry 0 written: idx 0 -> 1
  EXPECT_TRUE(Interrupt(queue));
  Push(queue, 1);  // entry 1; the driver still asks for entry 0
  EXPECT_FALSE(Interrupt(queue));
  Write16(kUsedEvent, 3);
  Push(queue, 1);  // entry 2
  EXPECT_FALSE(Interrupt(queue));
  Push(queue, 1);  // entry 3
  EXPECT_TRUE(Interrupt(queue));
  Write16(kUsedEvent, 5);
  Push(queue, 3);  // entries 4, 5, 6 in one batch: 5 is among them
  EXPECT_TRUE(Interrupt(queue));
  Write16(kUsedEvent, 6);  // already behind
  Push(queue, 2);          // entries 7, 8
  EXPECT_FALSE(Interrupt(queue));
  Write16(kUsedEvent, 9);
  EXPECT_FALSE(Interrupt(queue));  // nothing pushed since the last check
  Write16(kUsedEvent, 0xff00);     // far ahead (or far behind): no notification
  Push(queue, 4);
  EXPECT_FALSE(Interrupt(queue));
}

TEST_F(NotificationTest, ReadingUsedEventOutsideMemoryIsAnError) {
  layout_.avail_ring = kMemorySize - 4 - 2 * kSize;  // ring fits, used_event does not
  SplitVirtqueue queue(layout_, /*event_idx=*/true, false);
  Push(queue, 1);
  ExpectInvalid(queue.ShouldInterrupt(memory_).status(), "avail->used_event");
}

TEST_F(NotificationTest, EnableNotificationsWithoutEventIdxTogglesNoNotify) {
  SplitVirtqueue queue(layout_, /*event_idx=*/false, false);
  ASSERT_TRUE(queue.EnableNotifications(memory_, false).ok());
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kUsedRing), VRING_USED_F_NO_NOTIFY);
  ASSERT_TRUE(queue.EnableNotifications(memory_, true).ok());
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kUsedRing), 0);
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kAvailEvent), 0);
}

TEST_F(NotificationTest, EnableNotificationsWithEventIdxWritesAvailEvent) {
  SplitVirtqueue queue(layout_, /*event_idx=*/true, false);
  Push(queue, 3);
  ASSERT_TRUE(queue.EnableNotifications(memory_, true).ok());
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kAvailEvent), 3);
  Push(queue, 2);
  ASSERT_TRUE(queue.EnableNotifications(memory_, false).ok());
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kAvailEvent), 3);  // left behind
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kUsedRing), 0);    // flags stay 0 (§2.7.10.2)
  ASSERT_TRUE(queue.EnableNotifications(memory_, true).ok());
  EXPECT_EQ(ReadGuest<uint16_t>(memory_, kAvailEvent), 5);
}

}  // namespace
}  // namespace minivmm::virtio
