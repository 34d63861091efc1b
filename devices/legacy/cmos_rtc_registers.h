// Register map of the PC's CMOS RTC, a Motorola MC146818A (datasheet "Address Map" and
// "Registers A-D"), with the IBM PC AT's century byte.
#ifndef MINIVMM_DEVICES_LEGACY_CMOS_RTC_REGISTERS_H_
#define MINIVMM_DEVICES_LEGACY_CMOS_RTC_REGISTERS_H_

#include <cstddef>
#include <cstdint>

namespace minivmm::cmos {

// Port offsets from 0x70.
inline constexpr uint64_t kIndexPort = 0;
inline constexpr uint64_t kDataPort = 1;
// Bit 7 of an index write disables NMI on a PC; the remaining bits select the register.
inline constexpr uint8_t kIndexMask = 0x7f;
inline constexpr size_t kSize = 128;

// Time and alarm registers (MC146818A "Time, Calendar and Alarm Data Modes").
inline constexpr uint8_t kSeconds = 0x00;
inline constexpr uint8_t kMinutes = 0x02;
inline constexpr uint8_t kHours = 0x04;
inline constexpr uint8_t kDayOfWeek = 0x06;  // 1 = Sunday
inline constexpr uint8_t kDayOfMonth = 0x07;
inline constexpr uint8_t kMonth = 0x08;
inline constexpr uint8_t kYear = 0x09;    // two digits
inline constexpr uint8_t kHourPm = 0x80;  // in 12-hour mode

inline constexpr uint8_t kStatusA = 0x0a;
inline constexpr uint8_t kStatusB = 0x0b;
inline constexpr uint8_t kStatusC = 0x0c;
inline constexpr uint8_t kStatusD = 0x0d;

// Century, in the format of the other time registers. The IBM PC AT put it at 0x32; ACPI
// names the index in FADT.CENTURY (ACPI 6.4 §5.2.9).
inline constexpr uint8_t kCentury = 0x32;

// Register A: bit 7 UIP (update in progress); 0x26 = divider 010 (32.768 kHz time base) and
// rate 0110 (1.024 kHz periodic rate), the PC's setting.
inline constexpr uint8_t kStatusAUpdateInProgress = 0x80;
inline constexpr uint8_t kStatusADefault = 0x26;

// Register B: DM (bit 2) selects binary instead of BCD, 24/12 (bit 1) selects 24-hour mode.
inline constexpr uint8_t kStatusBBinary = 0x04;
inline constexpr uint8_t kStatusB24Hour = 0x02;
inline constexpr uint8_t kStatusBDefault = kStatusB24Hour;

// Register D: VRT (bit 7), the battery-backed RAM and time are valid.
inline constexpr uint8_t kStatusDValidRam = 0x80;

}  // namespace minivmm::cmos

#endif  // MINIVMM_DEVICES_LEGACY_CMOS_RTC_REGISTERS_H_
