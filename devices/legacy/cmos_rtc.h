// The PC's CMOS RTC (MC146818A) at ports 0x70 (index) and 0x71 (data): 128 bytes of CMOS
// whose time registers show the host's UTC clock. Guest writes to the time registers are
// ignored (the guest cannot set the host clock), so the RTC never drifts from the host.
// No periodic, alarm or update interrupts are generated: register C always reads 0.
#ifndef MINIVMM_DEVICES_LEGACY_CMOS_RTC_H_
#define MINIVMM_DEVICES_LEGACY_CMOS_RTC_H_

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "devices/legacy/cmos_rtc_registers.h"
#include "devices/legacy/legacy_state.pb.h"
#include "vmm/core/bus.h"

namespace minivmm {

class CmosRtc : public BusDevice {
 public:
  // Register at kBasePort for kPortSpan bytes.
  static constexpr uint64_t kBasePort = 0x70;
  static constexpr uint64_t kPortSpan = 2;

  // The wall clock, read on every time-register access; tests inject a fixed one.
  using Clock = std::function<absl::Time()>;

  explicit CmosRtc(Clock clock = absl::Now);

  std::string_view Name() const override { return "cmos_rtc"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Snapshot and restore of the index register and the 128 CMOS bytes. The time registers are
  // not state: they keep showing the host clock. RestoreState checks the whole message first
  // and, on a bad field, changes nothing and names the field.
  state::CmosRtcState SaveState() const;
  absl::Status RestoreState(const state::CmosRtcState& s);

 private:
  uint8_t ReadRegister(uint8_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void WriteRegister(uint8_t index, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The time register `index` encoded per register B; `index` must be a time register.
  uint8_t ReadTime(uint8_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint8_t Encode(int value) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint8_t EncodeHour(int hour) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const Clock clock_;

  mutable absl::Mutex mutex_;
  uint8_t index_ ABSL_GUARDED_BY(mutex_) = 0;
  // Registers A and B, the alarm registers and the general-purpose bytes; the time, C and D
  // entries are unused (computed on read).
  std::array<uint8_t, cmos::kSize> ram_ ABSL_GUARDED_BY(mutex_) = {};
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_LEGACY_CMOS_RTC_H_
