#include "devices/legacy/cmos_rtc.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

bool IsTimeRegister(uint8_t index) {
  switch (index) {
    case cmos::kSeconds:
    case cmos::kMinutes:
    case cmos::kHours:
    case cmos::kDayOfWeek:
    case cmos::kDayOfMonth:
    case cmos::kMonth:
    case cmos::kYear:
    case cmos::kCentury:
      return true;
    default:
      return false;
  }
}

// MC146818A day-of-week register: 1 = Sunday ... 7 = Saturday.
int RtcDayOfWeek(absl::Weekday weekday) {
  return weekday == absl::Weekday::sunday ? 1 : static_cast<int>(weekday) + 2;
}

}  // namespace

CmosRtc::CmosRtc(Clock clock) : clock_(std::move(clock)) {
  absl::MutexLock lock(&mutex_);
  ram_[cmos::kStatusA] = cmos::kStatusADefault;
  ram_[cmos::kStatusB] = cmos::kStatusBDefault;
}

void CmosRtc::Read(uint64_t offset, std::span<uint8_t> data) {
  if (data.size() != 1) {
    MINIVMM_LOG_GUEST_ERROR("cmos: %d-byte read at offset %d ignored", data.size(), offset);
    return;
  }
  // The index port is write-only; reads see the open bus.
  if (offset != cmos::kDataPort) return;
  absl::MutexLock lock(&mutex_);
  data[0] = ReadRegister(index_);
}

void CmosRtc::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1) {
    MINIVMM_LOG_GUEST_ERROR("cmos: %d-byte write at offset %d ignored", data.size(), offset);
    return;
  }
  absl::MutexLock lock(&mutex_);
  if (offset == cmos::kIndexPort) {
    index_ = data[0] & cmos::kIndexMask;  // the NMI-disable bit has no effect here
  } else {
    WriteRegister(index_, data[0]);
  }
}

state::CmosRtcState CmosRtc::SaveState() const {
  absl::MutexLock lock(&mutex_);
  state::CmosRtcState s;
  s.set_index(index_);
  s.set_ram(std::string(ram_.begin(), ram_.end()));
  return s;
}

absl::Status CmosRtc::RestoreState(const state::CmosRtcState& s) {
  // The index port keeps 7 bits (the NMI-disable bit is dropped on write, see Write).
  if (s.index() > cmos::kIndexMask) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cmos_rtc state: index = %#x is out of range 0..%#x", s.index(), cmos::kIndexMask));
  }
  if (s.ram().size() != cmos::kSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cmos_rtc state: ram holds %d bytes, expected %d", s.ram().size(), cmos::kSize));
  }
  absl::MutexLock lock(&mutex_);
  index_ = static_cast<uint8_t>(s.index());
  std::copy(s.ram().begin(), s.ram().end(), ram_.begin());
  return absl::OkStatus();
}

uint8_t CmosRtc::ReadRegister(uint8_t index) const {
  if (IsTimeRegister(index)) return ReadTime(index);
  switch (index) {
    case cmos::kStatusA:
      // UIP stays clear: every read samples the host clock, so no update is ever in progress.
      return ram_[index] & ~cmos::kStatusAUpdateInProgress;
    case cmos::kStatusC:
      return 0;  // no interrupt flags: no interrupts are generated
    case cmos::kStatusD:
      return cmos::kStatusDValidRam;
    default:
      return ram_[index];
  }
}

void CmosRtc::WriteRegister(uint8_t index, uint8_t value) {
  if (IsTimeRegister(index)) {
    Log(LogLevel::kDebug, "cmos: write %#x to time register %#x ignored", value, index);
    return;
  }
  switch (index) {
    case cmos::kStatusA:
      ram_[index] = value & ~cmos::kStatusAUpdateInProgress;  // UIP is read-only
      return;
    case cmos::kStatusC:
    case cmos::kStatusD:
      return;  // read-only
    default:
      ram_[index] = value;
  }
}

uint8_t CmosRtc::ReadTime(uint8_t index) const {
  absl::CivilSecond now = absl::ToCivilSecond(clock_(), absl::UTCTimeZone());
  switch (index) {
    case cmos::kSeconds:
      return Encode(now.second());
    case cmos::kMinutes:
      return Encode(now.minute());
    case cmos::kHours:
      return EncodeHour(now.hour());
    case cmos::kDayOfWeek:
      return Encode(RtcDayOfWeek(absl::GetWeekday(now)));
    case cmos::kDayOfMonth:
      return Encode(now.day());
    case cmos::kMonth:
      return Encode(now.month());
    case cmos::kYear:
      return Encode(static_cast<int>(now.year() % 100));
    default:  // cmos::kCentury
      return Encode(static_cast<int>(now.year() / 100));
  }
}

uint8_t CmosRtc::Encode(int value) const {
  if (ram_[cmos::kStatusB] & cmos::kStatusBBinary) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>((value / 10) << 4 | value % 10);
}

uint8_t CmosRtc::EncodeHour(int hour) const {
  if (ram_[cmos::kStatusB] & cmos::kStatusB24Hour) return Encode(hour);
  // 12-hour mode: 12, 1, ..., 11 with bit 7 set from noon on.
  int twelve_hour = hour % 12 == 0 ? 12 : hour % 12;
  return Encode(twelve_hour) | (hour >= 12 ? cmos::kHourPm : 0);
}

}  // namespace minivmm
