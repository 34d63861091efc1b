#include "devices/legacy/i8042.h"

#include "devices/legacy/i8042_registers.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"

namespace minivmm {
namespace {

using namespace i8042;  // NOLINT(build/namespaces): register names keep the tests readable

class I8042Test : public ::testing::Test {
 protected:
  uint8_t In(uint64_t offset) { return InByte(controller_, offset); }
  void Out(uint64_t offset, uint8_t value) { OutByte(controller_, offset, value); }

  int resets_ = 0;
  I8042 controller_{[this] { ++resets_; }};
};

TEST_F(I8042Test, StatusReportsEmptyBuffersAndSystemFlag) {
  EXPECT_EQ(In(kStatusCommand),
            kStatusSystemFlag | kStatusLastWasCommand | kStatusNotInhibited);  // 0x1c
  EXPECT_EQ(In(kData), 0);
}

TEST_F(I8042Test, PulseResetCommandRequestsReset) {
  Out(kStatusCommand, kCmdPulseReset);
  EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, PulseWithoutResetBitDoesNotReset) {
  Out(kStatusCommand, 0xff);  // pulses no line
  EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, OutputPortWriteWithResetBitClearRequestsReset) {
  Out(kStatusCommand, kCmdWriteOutputPort);
  EXPECT_EQ(resets_, 0);
  Out(kData, 0xfe);
  EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, OutputPortWriteWithResetBitSetOnlyStoresValue) {
  Out(kStatusCommand, kCmdWriteOutputPort);
  Out(kData, kOutputPortNotReset);  // A20 off
  EXPECT_EQ(resets_, 0);
  Out(kStatusCommand, kCmdReadOutputPort);
  EXPECT_EQ(In(kData), kOutputPortNotReset);
}

TEST_F(I8042Test, SelfTestAnswers0x55ThroughTheOutputBuffer) {
  Out(kStatusCommand, kCmdSelfTest);
  EXPECT_EQ(In(kStatusCommand) & kStatusOutputFull, kStatusOutputFull);
  EXPECT_EQ(In(kData), kSelfTestPassed);
  EXPECT_EQ(In(kStatusCommand) & kStatusOutputFull, 0);
}

TEST_F(I8042Test, CommandByteCanBeWrittenAndReadBack) {
  Out(kStatusCommand, kCmdReadCommandByte);
  EXPECT_EQ(In(kData), kCommandByteDefault);
  Out(kStatusCommand, kCmdWriteCommandByte);
  Out(kData, 0x60);
  EXPECT_EQ(In(kStatusCommand) & kStatusLastWasCommand, 0);
  Out(kStatusCommand, kCmdReadCommandByte);
  EXPECT_EQ(In(kData), 0x60);
  EXPECT_EQ(In(kStatusCommand) & kStatusSystemFlag, 0) << "status mirrors command byte bit 2";
}

TEST_F(I8042Test, KeyboardBytesWithoutPendingCommandAreDropped) {
  Out(kData, 0xfe);
  Out(kData, 0x00);
  EXPECT_EQ(resets_, 0);
  EXPECT_EQ(In(kStatusCommand) & kStatusOutputFull, 0);
}

TEST_F(I8042Test, PortsBetweenDataAndStatusAreNotDecoded) {
  Out(2, kCmdPulseReset);
  EXPECT_EQ(resets_, 0);
  EXPECT_EQ(In(1), 0xff);
}

}  // namespace
}  // namespace minivmm
