#include "devices/legacy/boot_debug_port.h"

#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"

namespace minivmm {
namespace {

class BootDebugPortTest : public ::testing::Test {
 protected:
  absl::Time start_ = absl::FromUnixSeconds(1'700'000'000);
  absl::Time now_ = start_;
  std::vector<absl::Duration> reported_;
  BootDebugPort port_{start_, [this](absl::Duration d) { reported_.push_back(d); },
                      [this] { return now_; }};
};

TEST_F(BootDebugPortTest, NothingIsRecordedBeforeTheMarker) {
  EXPECT_EQ(port_.init_started_after(), std::nullopt);
  EXPECT_TRUE(reported_.empty());
}

TEST_F(BootDebugPortTest, IoDelayWritesAreIgnored) {
  for (int value : {0x00, 0x7d, 0x7f, 0xff}) OutByte(port_, 0, value);
  EXPECT_EQ(port_.init_started_after(), std::nullopt);
  EXPECT_TRUE(reported_.empty());
}

TEST_F(BootDebugPortTest, FirstMarkerReportsTimeSinceStart) {
  now_ += absl::Milliseconds(1234);
  OutByte(port_, 0, kBootMarkerInitStarted);
  EXPECT_EQ(port_.init_started_after(), absl::Milliseconds(1234));
  EXPECT_EQ(reported_, std::vector<absl::Duration>{absl::Milliseconds(1234)});
}

TEST_F(BootDebugPortTest, LaterMarkersKeepTheFirstTimestamp) {
  now_ += absl::Seconds(1);
  OutByte(port_, 0, kBootMarkerInitStarted);
  now_ += absl::Seconds(5);
  OutByte(port_, 0, kBootMarkerInitStarted);
  EXPECT_EQ(port_.init_started_after(), absl::Seconds(1));
  EXPECT_EQ(reported_.size(), 1u);
}

TEST_F(BootDebugPortTest, WideWriteOfMarkerIsNotAMarker) {
  const uint8_t word[2] = {kBootMarkerInitStarted, 0};
  port_.Write(0, word);
  EXPECT_EQ(port_.init_started_after(), std::nullopt);
}

}  // namespace
}  // namespace minivmm
