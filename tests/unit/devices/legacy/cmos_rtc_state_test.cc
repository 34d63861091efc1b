// CmosRtc::SaveState/RestoreState: a restored RTC keeps its CMOS bytes and index and keeps
// showing the host clock.
#include <string>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/cmos_rtc_registers.h"
#include "devices/legacy/legacy_state.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"

namespace minivmm {
namespace {

using namespace cmos;  // NOLINT(build/namespaces): register names keep the tests readable
using ::testing::HasSubstr;

constexpr uint8_t kGeneralPurpose = 0x40;  // a battery-backed byte with no RTC meaning

absl::Time Utc(int year, int month, int day, int hour, int minute, int second) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

void WriteCmos(CmosRtc& rtc, uint8_t index, uint8_t value) {
  OutByte(rtc, kIndexPort, index);
  OutByte(rtc, kDataPort, value);
}

uint8_t ReadCmos(CmosRtc& rtc, uint8_t index) {
  OutByte(rtc, kIndexPort, index);
  return InByte(rtc, kDataPort);
}

TEST(CmosRtcStateTest, RestoredRtcKeepsRamModeAndIndex) {
  CmosRtc rtc([] { return Utc(2024, 2, 29, 13, 5, 9); });
  WriteCmos(rtc, kStatusB, kStatusB24Hour | kStatusBBinary);
  WriteCmos(rtc, kGeneralPurpose, 0xa5);
  OutByte(rtc, kIndexPort, kGeneralPurpose + 1);
  const state::CmosRtcState saved = rtc.SaveState();

  // The host clock moved on between snapshot and restore; the RTC follows it.
  CmosRtc restored([] { return Utc(2024, 3, 1, 8, 30, 0); });
  ASSERT_TRUE(restored.RestoreState(saved).ok());
  EXPECT_EQ(restored.SaveState().SerializeAsString(), saved.SerializeAsString());

  OutByte(restored, kDataPort, 0x77);  // goes to the restored index, kGeneralPurpose + 1
  EXPECT_EQ(ReadCmos(restored, kGeneralPurpose + 1), 0x77);
  EXPECT_EQ(ReadCmos(restored, kGeneralPurpose), 0xa5);
  EXPECT_EQ(ReadCmos(restored, kStatusB), kStatusB24Hour | kStatusBBinary);
  // Binary mode (30, not BCD 0x30), from the clock of the host that restored it.
  EXPECT_EQ(ReadCmos(restored, kMinutes), 30);
  EXPECT_EQ(ReadCmos(restored, kDayOfMonth), 1);
}

TEST(CmosRtcStateTest, RefusesWrongRamSizeAndIndexChangingNothing) {
  CmosRtc rtc([] { return Utc(2024, 2, 29, 13, 5, 9); });
  WriteCmos(rtc, kGeneralPurpose, 0xa5);
  const std::string before = rtc.SaveState().SerializeAsString();

  state::CmosRtcState short_ram = rtc.SaveState();
  short_ram.set_ram(std::string(kSize - 1, '\0'));
  absl::Status status = rtc.RestoreState(short_ram);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("ram"));

  state::CmosRtcState bad_index = rtc.SaveState();
  bad_index.set_index(kSize);
  bad_index.set_ram(std::string(kSize, '\0'));  // would clear the byte if applied
  EXPECT_THAT(rtc.RestoreState(bad_index).message(), HasSubstr("index"));

  EXPECT_EQ(rtc.SaveState().SerializeAsString(), before);
  EXPECT_EQ(ReadCmos(rtc, kGeneralPurpose), 0xa5);
}

}  // namespace
}  // namespace minivmm
