#include "passthrough/memory_reservation.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1024 * 1024;

TEST(MemlockLimitTest, AcceptsMemoryThatFits) {
  EXPECT_TRUE(CheckMemlockLimit(256 * kMiB, 256 * kMiB).ok());
  EXPECT_TRUE(CheckMemlockLimit(256 * kMiB, 1024 * kMiB).ok());
}

TEST(MemlockLimitTest, UnlimitedAcceptsAnything) {
  EXPECT_TRUE(CheckMemlockLimit(1ull << 40, RLIM_INFINITY).ok());
}

TEST(MemlockLimitTest, TooLowLimitNamesBothNumbersAndTheFix) {
  const absl::Status status = CheckMemlockLimit(256 * kMiB, 8 * kMiB);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("pins all guest memory (256 MiB)"));
  EXPECT_THAT(message, HasSubstr("RLIMIT_MEMLOCK is 8 MiB"));
  EXPECT_THAT(message, HasSubstr("raise it by 248 MiB to at least 262144 KiB"));
  EXPECT_THAT(message, HasSubstr("ulimit -l 262144"));
}

TEST(MemlockLimitTest, RoundsTheSuggestionUp) {
  // One byte over a MiB boundary still needs the whole extra KiB and MiB.
  const absl::Status status = CheckMemlockLimit(kMiB + 1, kMiB);
  EXPECT_THAT(std::string(status.message()), HasSubstr("raise it by 1 MiB to at least 1025 KiB"));
}

TEST(MemlockLimitTest, OneByteOverTheLimitFails) {
  EXPECT_FALSE(CheckMemlockLimit(64 * kMiB + 1, 64 * kMiB).ok());
}

}  // namespace
}  // namespace minivmm
