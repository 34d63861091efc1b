#include "devices/legacy/cmos_rtc.h"

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "devices/legacy/cmos_rtc_registers.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"

namespace minivmm {
namespace {

using namespace cmos;  // NOLINT(build/namespaces): register names keep the tests readable

absl::Time Utc(int year, int month, int day, int hour, int minute, int second) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

class CmosRtcTest : public ::testing::Test {
 protected:
  uint8_t ReadCmos(uint8_t index) {
    OutByte(rtc_, kIndexPort, index);
    return InByte(rtc_, kDataPort);
  }
  void WriteCmos(uint8_t index, uint8_t value) {
    OutByte(rtc_, kIndexPort, index);
    OutByte(rtc_, kDataPort, value);
  }

  absl::Time now_ = Utc(2024, 2, 29, 13, 5, 9);  // a Thursday
  CmosRtc rtc_{[this] { return now_; }};
};

TEST_F(CmosRtcTest, ShowsHostUtcTimeInBcd24HourByDefault) {
  EXPECT_EQ(ReadCmos(kSeconds), 0x09);
  EXPECT_EQ(ReadCmos(kMinutes), 0x05);
  EXPECT_EQ(ReadCmos(kHours), 0x13);
  EXPECT_EQ(ReadCmos(kDayOfWeek), 0x05);
  EXPECT_EQ(ReadCmos(kDayOfMonth), 0x29);
  EXPECT_EQ(ReadCmos(kMonth), 0x02);
  EXPECT_EQ(ReadCmos(kYear), 0x24);
  EXPECT_EQ(ReadCmos(kCentury), 0x20);
}

TEST_F(CmosRtcTest, ShowsBinaryWhenStatusBDataModeIsSet) {
  WriteCmos(kStatusB, kStatusB24Hour | kStatusBBinary);
  EXPECT_EQ(ReadCmos(kSeconds), 9);
  EXPECT_EQ(ReadCmos(kHours), 13);
  EXPECT_EQ(ReadCmos(kDayOfMonth), 29);
  EXPECT_EQ(ReadCmos(kYear), 24);
  EXPECT_EQ(ReadCmos(kCentury), 20);
}

TEST_F(CmosRtcTest, TwelveHourModeFlagsAfternoonHours) {
  WriteCmos(kStatusB, 0);
  EXPECT_EQ(ReadCmos(kHours), kHourPm | 0x01);
  now_ = Utc(2024, 2, 29, 0, 30, 0);
  EXPECT_EQ(ReadCmos(kHours), 0x12);
  now_ = Utc(2024, 2, 29, 12, 0, 0);
  EXPECT_EQ(ReadCmos(kHours), kHourPm | 0x12);
  WriteCmos(kStatusB, kStatusBBinary);
  EXPECT_EQ(ReadCmos(kHours), kHourPm | 12);
}

TEST_F(CmosRtcTest, SundayIsDayOne) {
  now_ = Utc(2024, 3, 3, 0, 0, 0);
  EXPECT_EQ(ReadCmos(kDayOfWeek), 1);
  now_ = Utc(2024, 3, 9, 0, 0, 0);
  EXPECT_EQ(ReadCmos(kDayOfWeek), 7);
}

TEST_F(CmosRtcTest, EveryReadSamplesTheClock) {
  EXPECT_EQ(ReadCmos(kSeconds), 0x09);
  now_ += absl::Seconds(51);
  EXPECT_EQ(ReadCmos(kSeconds), 0x00);
  EXPECT_EQ(ReadCmos(kMinutes), 0x06);
}

TEST_F(CmosRtcTest, IndexBit7NmiMaskIsIgnored) {
  EXPECT_EQ(ReadCmos(0x80 | kMinutes), 0x05);
  WriteCmos(0x80 | 0x40, 0xab);
  EXPECT_EQ(ReadCmos(0x40), 0xab);
}

TEST_F(CmosRtcTest, StatusRegistersReportValidTimeAndNoUpdateInProgress) {
  EXPECT_EQ(ReadCmos(kStatusA), kStatusADefault);
  EXPECT_EQ(ReadCmos(kStatusB), kStatusBDefault);
  EXPECT_EQ(ReadCmos(kStatusC), 0);
  EXPECT_EQ(ReadCmos(kStatusD), kStatusDValidRam);
}

TEST_F(CmosRtcTest, ReadOnlyStatusBitsIgnoreWrites) {
  WriteCmos(kStatusA, kStatusAUpdateInProgress | kStatusADefault);
  EXPECT_EQ(ReadCmos(kStatusA), kStatusADefault);
  WriteCmos(kStatusC, 0xff);
  WriteCmos(kStatusD, 0x00);
  EXPECT_EQ(ReadCmos(kStatusC), 0);
  EXPECT_EQ(ReadCmos(kStatusD), kStatusDValidRam);
}

TEST_F(CmosRtcTest, GuestCannotSetTheClock) {
  WriteCmos(kSeconds, 0x42);
  WriteCmos(kCentury, 0x19);
  EXPECT_EQ(ReadCmos(kSeconds), 0x09);
  EXPECT_EQ(ReadCmos(kCentury), 0x20);
}

TEST_F(CmosRtcTest, RamBytesKeepWhatTheGuestWrites) {
  WriteCmos(0x01, 0x30);  // seconds alarm
  WriteCmos(0x0e, 0x11);
  WriteCmos(0x7f, 0x22);
  EXPECT_EQ(ReadCmos(0x01), 0x30);
  EXPECT_EQ(ReadCmos(0x0e), 0x11);
  EXPECT_EQ(ReadCmos(0x7f), 0x22);
}

TEST_F(CmosRtcTest, IndexPortReadsAsOpenBus) {
  OutByte(rtc_, kIndexPort, kSeconds);
  EXPECT_EQ(InByte(rtc_, kIndexPort), 0xff);
}

}  // namespace
}  // namespace minivmm
