#include "devices/legacy/acpi_sleep_control.h"

#include "gtest/gtest.h"
#include "tests/unit/devices/legacy/port_io_helpers.h"

namespace minivmm {
namespace {

// The value Linux's acpi_hw_extended_sleep writes for a sleep type: SLP_TYP | SLP_EN.
constexpr uint8_t SleepRequest(uint8_t sleep_type) {
  return sleep_type << AcpiSleepControl::kSleepTypeShift | AcpiSleepControl::kSleepEnable;
}

class AcpiSleepControlTest : public ::testing::Test {
 protected:
  int power_offs_ = 0;
  AcpiSleepControl control_{[this] { ++power_offs_; }};
};

TEST_F(AcpiSleepControlTest, S5WithSleepEnablePowersOff) {
  OutByte(control_, 0, SleepRequest(kAcpiSleepTypeS5));
  EXPECT_EQ(power_offs_, 1);
}

TEST_F(AcpiSleepControlTest, RepeatedS5RequestsPowerOffOnce) {
  OutByte(control_, 0, SleepRequest(kAcpiSleepTypeS5));
  OutByte(control_, 0, SleepRequest(kAcpiSleepTypeS5));
  EXPECT_EQ(power_offs_, 1);
}

TEST_F(AcpiSleepControlTest, S5WithoutSleepEnableIsIgnored) {
  OutByte(control_, 0, kAcpiSleepTypeS5 << AcpiSleepControl::kSleepTypeShift);
  EXPECT_EQ(power_offs_, 0);
}

TEST_F(AcpiSleepControlTest, OtherSleepTypesAreIgnored) {
  for (uint8_t sleep_type : {0, 1, 3, 4, 7}) OutByte(control_, 0, SleepRequest(sleep_type));
  EXPECT_EQ(power_offs_, 0);
}

TEST_F(AcpiSleepControlTest, ClearingWakeStatusIsIgnored) {
  OutByte(control_, 0, 0x80);  // WAK_STS, write-1-to-clear
  EXPECT_EQ(power_offs_, 0);
}

TEST_F(AcpiSleepControlTest, ReadsAsZero) { EXPECT_EQ(InByte(control_, 0), 0); }

}  // namespace
}  // namespace minivmm
