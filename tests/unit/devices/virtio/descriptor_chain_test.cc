#include "devices/virtio/descriptor_chain.h"

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr uint64_t kMemorySize = 1 << 20;

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  std::iota(bytes.begin(), bytes.end(), seed);
  return bytes;
}

GuestMemory CreateMemory() {
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create({{{0, kMemorySize}}});
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

class DescriptorChainTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> Guest(uint64_t gpa, size_t size) {
    std::vector<uint8_t> bytes(size);
    EXPECT_TRUE(memory_.Read(gpa, bytes).ok());
    return bytes;
  }
  void Fill(uint64_t gpa, const std::vector<uint8_t>& bytes) {
    ASSERT_TRUE(memory_.Write(gpa, bytes).ok());
  }

  GuestMemory memory_ = CreateMemory();
  // Readable 3 + 5 + 2 bytes at scattered addresses, then writable 4 + 6 bytes.
  DescriptorChain chain_ = {
      .head = 0,
      .buffers = {{0x1000, 3, false},
                  {0x2000, 5, false},
                  {0x3000, 2, false},
                  {0x4000, 4, true},
                  {0x5000, 6, true}},
      .readable_bytes = 10,
      .writable_bytes = 10,
  };
};

TEST_F(DescriptorChainTest, ReaderReadsAcrossBufferBoundaries) {
  Fill(0x1000, {1, 2, 3});
  Fill(0x2000, {4, 5, 6, 7, 8});
  Fill(0x3000, {9, 10});
  ChainReader reader(memory_, chain_);
  EXPECT_EQ(reader.remaining(), 10u);
  std::vector<uint8_t> first(4);
  ASSERT_TRUE(reader.Read(first).ok());
  EXPECT_THAT(first, ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(reader.remaining(), 6u);
  std::vector<uint8_t> rest(6);
  ASSERT_TRUE(reader.Read(rest).ok());
  EXPECT_THAT(rest, ElementsAre(5, 6, 7, 8, 9, 10));
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_TRUE(reader.Read({}).ok());
}

TEST_F(DescriptorChainTest, ReaderShortReadFailsAndConsumesNothing) {
  Fill(0x1000, {1, 2, 3});
  Fill(0x2000, {4, 5, 6, 7, 8});
  ChainReader reader(memory_, chain_);
  std::vector<uint8_t> too_much(11);
  EXPECT_EQ(reader.Read(too_much).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(reader.remaining(), 10u);
  uint16_t value = 0;
  ASSERT_TRUE(reader.ReadObject(&value).ok());
  EXPECT_EQ(value, 0x0201);
  std::vector<uint8_t> nine(9);
  EXPECT_FALSE(reader.Read(nine).ok());
  uint32_t next = 0;
  ASSERT_TRUE(reader.ReadObject(&next).ok());
  EXPECT_EQ(next, 0x06050403u);
}

TEST_F(DescriptorChainTest, ReaderTakeSpansSplitsMidBufferAndPointsIntoGuestMemory) {
  Fill(0x1000, {1, 2, 3});
  Fill(0x2000, {4, 5, 6, 7, 8});
  Fill(0x3000, {9, 10});
  ChainReader reader(memory_, chain_);
  uint8_t one = 0;
  ASSERT_TRUE(reader.ReadObject(&one).ok());
  std::vector<std::span<const uint8_t>> spans = reader.TakeSpans(4);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_THAT(spans[0], ElementsAre(2, 3));
  EXPECT_THAT(spans[1], ElementsAre(4, 5));
  EXPECT_EQ(spans[0].data(), memory_.Slice(0x1001, 2)->data());
  EXPECT_EQ(reader.remaining(), 5u);
  EXPECT_TRUE(reader.TakeSpans(0).empty());
  spans = reader.TakeSpans(1000);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_THAT(spans[0], ElementsAre(6, 7, 8));
  EXPECT_THAT(spans[1], ElementsAre(9, 10));
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_TRUE(reader.TakeSpans(1000).empty());
}

TEST_F(DescriptorChainTest, WriterWritesAcrossBufferBoundariesIntoWritableBuffersOnly) {
  ChainWriter writer(memory_, chain_);
  EXPECT_EQ(writer.remaining(), 10u);
  ASSERT_TRUE(writer.Write(Pattern(3, 1)).ok());
  ASSERT_TRUE(writer.WriteObject(uint32_t{0x07060504}).ok());
  EXPECT_EQ(writer.written(), 7u);
  EXPECT_EQ(writer.remaining(), 3u);
  EXPECT_THAT(Guest(0x4000, 4), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(Guest(0x5000, 6), ElementsAre(5, 6, 7, 0, 0, 0));
  EXPECT_THAT(Guest(0x1000, 3), Each(0));  // readable buffers untouched
}

TEST_F(DescriptorChainTest, WriterShortWriteFailsAndWritesNothing) {
  ChainWriter writer(memory_, chain_);
  ASSERT_TRUE(writer.Write(Pattern(2, 1)).ok());
  EXPECT_EQ(writer.Write(Pattern(9, 10)).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(writer.written(), 2u);
  EXPECT_EQ(writer.remaining(), 8u);
  EXPECT_THAT(Guest(0x4000, 4), ElementsAre(1, 2, 0, 0));
  EXPECT_THAT(Guest(0x5000, 6), Each(0));
  ASSERT_TRUE(writer.Write(Pattern(8, 3)).ok());
  EXPECT_THAT(Guest(0x5000, 6), ElementsAre(5, 6, 7, 8, 9, 10));
  EXPECT_EQ(writer.written(), 10u);
}

TEST_F(DescriptorChainTest, WriterTakeSpansCountsAsWritten) {
  ChainWriter writer(memory_, chain_);
  ASSERT_TRUE(writer.Write(Pattern(1, 0xa0)).ok());
  std::vector<std::span<uint8_t>> spans = writer.TakeSpans(5);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].size(), 3u);
  EXPECT_EQ(spans[1].size(), 2u);
  for (std::span<uint8_t> span : spans) std::fill(span.begin(), span.end(), 0xbb);
  EXPECT_EQ(writer.written(), 6u);
  EXPECT_EQ(writer.remaining(), 4u);
  EXPECT_THAT(Guest(0x4000, 4), ElementsAre(0xa0, 0xbb, 0xbb, 0xbb));
  EXPECT_THAT(Guest(0x5000, 6), ElementsAre(0xbb, 0xbb, 0, 0, 0, 0));
  spans = writer.TakeSpans(100);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].size(), 4u);
  EXPECT_EQ(writer.written(), 10u);
  EXPECT_EQ(writer.remaining(), 0u);
}

TEST_F(DescriptorChainTest, EmptyAndZeroLengthBuffersAreSkipped) {
  const DescriptorChain chain = {.buffers = {{0x1000, 0, false},
                                             {0x1000, 2, false},
                                             {0x2000, 0, false},
                                             {0x3000, 1, false},
                                             {0x4000, 0, true}}};
  Fill(0x1000, {1, 2});
  Fill(0x3000, {3});
  ChainReader reader(memory_, chain);
  EXPECT_EQ(reader.remaining(), 3u);
  std::vector<uint8_t> bytes(3);
  ASSERT_TRUE(reader.Read(bytes).ok());
  EXPECT_THAT(bytes, ElementsAre(1, 2, 3));
  ChainWriter writer(memory_, chain);
  EXPECT_EQ(writer.remaining(), 0u);
  EXPECT_FALSE(writer.Write(Pattern(1, 0)).ok());
  EXPECT_TRUE(writer.Write({}).ok());
  EXPECT_TRUE(writer.TakeSpans(10).empty());
}

// A chain not made by ParseDescriptorChain may name memory the guest does not have; the
// reader and writer must fail (or stop) there without touching anything.
TEST_F(DescriptorChainTest, HandBuiltChainOutsideMemoryFailsCleanly) {
  const DescriptorChain chain = {.buffers = {{0x1000, 2, false},
                                             {kMemorySize - 1, 2, false},
                                             {0x4000, 2, true},
                                             {~uint64_t{0}, 2, true}}};
  Fill(0x1000, {1, 2});
  ChainReader reader(memory_, chain);
  std::vector<uint8_t> bytes(3);
  EXPECT_EQ(reader.Read(bytes).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(reader.remaining(), 4u);
  std::vector<std::span<const uint8_t>> spans = reader.TakeSpans(4);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_THAT(spans[0], ElementsAre(1, 2));
  EXPECT_EQ(reader.remaining(), 2u);
  EXPECT_FALSE(reader.Read(std::span(bytes).first(1)).ok());

  ChainWriter writer(memory_, chain);
  EXPECT_FALSE(writer.Write(Pattern(3, 7)).ok());
  EXPECT_THAT(Guest(0x4000, 2), Each(0));
  EXPECT_EQ(writer.written(), 0u);
  EXPECT_EQ(writer.TakeSpans(4).size(), 1u);
  EXPECT_EQ(writer.written(), 2u);
  EXPECT_EQ(writer.remaining(), 2u);
}

TEST_F(DescriptorChainTest, ReaderUsesAConstGuestMemory) {
  Fill(0x2000, {42});
  const GuestMemory& view = memory_;
  const DescriptorChain chain = {.buffers = {{0x2000, 1, false}}};
  ChainReader reader(view, chain);
  EXPECT_THAT(reader.TakeSpans(1), ElementsAre(ElementsAreArray({42})));
}

}  // namespace
}  // namespace minivmm::virtio
