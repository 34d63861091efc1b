// I8042::SaveState/RestoreState: a restored controller looks the same to the guest.
#include <string>

#include "absl/status/status.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/i8042_registers.h"
#include "devices/legacy/legacy_state.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"

namespace minivmm {
namespace {

using namespace i8042;  // NOLINT(build/namespaces): register names keep the tests readable
using ::testing::HasSubstr;

TEST(I8042StateTest, RestoredControllerKeepsCommandByteOutputBufferAndPendingCommand) {
  int resets = 0;
  I8042 controller([&resets] { ++resets; });
  OutByte(controller, kStatusCommand, kCmdWriteCommandByte);
  OutByte(controller, kData, 0x43);  // system flag clear, unlike the default command byte
  OutByte(controller, kStatusCommand, kCmdSelfTest);         // 0x55 waits in the output buffer
  OutByte(controller, kStatusCommand, kCmdWriteOutputPort);  // its parameter is still to come
  const state::I8042State saved = controller.SaveState();

  int restored_resets = 0;
  I8042 restored([&restored_resets] { ++restored_resets; });
  ASSERT_TRUE(restored.RestoreState(saved).ok());
  EXPECT_EQ(restored.SaveState().SerializeAsString(), saved.SerializeAsString());

  EXPECT_EQ(InByte(restored, kStatusCommand),
            kStatusOutputFull | kStatusLastWasCommand | kStatusNotInhibited);
  // The pending 0xd1 takes the next data byte as the output port: pulling reset low resets.
  OutByte(restored, kData, 0xfe);
  EXPECT_EQ(restored_resets, 1);
  EXPECT_EQ(InByte(restored, kData), kSelfTestPassed);
  EXPECT_EQ(InByte(restored, kStatusCommand), kStatusNotInhibited);
  OutByte(restored, kStatusCommand, kCmdReadCommandByte);
  EXPECT_EQ(InByte(restored, kData), 0x43);
  EXPECT_EQ(resets, 0);
}

TEST(I8042StateTest, RefusesOutOfRangeFieldsChangingNothing) {
  I8042 controller(nullptr);
  OutByte(controller, kStatusCommand, kCmdSelfTest);
  const std::string before = controller.SaveState().SerializeAsString();

  state::I8042State wide = controller.SaveState();
  wide.set_command_byte(0x100);
  wide.clear_output_buffer();  // would empty the output buffer if applied
  absl::Status status = controller.RestoreState(wide);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("command_byte"));

  state::I8042State bad_command = controller.SaveState();
  bad_command.set_awaiting_parameter_for(kCmdSelfTest);  // takes no parameter
  EXPECT_THAT(controller.RestoreState(bad_command).message(), HasSubstr("awaiting_parameter_for"));

  EXPECT_EQ(controller.SaveState().SerializeAsString(), before);
  EXPECT_EQ(InByte(controller, kData), kSelfTestPassed);
}

}  // namespace
}  // namespace minivmm
