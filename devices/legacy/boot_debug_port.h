// The POST/debug port 0x80 as a boot-progress probe. Linux writes arbitrary bytes there as
// I/O delays (arch/x86/include/asm/io.h, native_io_delay), so only one value means anything:
// kBootMarkerInitStarted, written by the guest's init to mark the end of kernel boot. The
// first marker timestamps boot; everything else is ignored.
#ifndef MINIVMM_DEVICES_LEGACY_BOOT_DEBUG_PORT_H_
#define MINIVMM_DEVICES_LEGACY_BOOT_DEBUG_PORT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vmm/core/bus.h"

namespace minivmm {

inline constexpr uint16_t kBootDebugPort = 0x80;
// Chosen by minivmm (not a POST code standard): the guest's init writes it once it runs.
inline constexpr uint8_t kBootMarkerInitStarted = 0x7e;

class BootDebugPort : public BusDevice {
 public:
  using Clock = std::function<absl::Time()>;
  // Receives the time from `start` to the first marker.
  using InitStartedCallback = std::function<void(absl::Duration)>;

  // `start` is when the VMM started the guest, on the same clock as `clock`. The callback runs
  // once, on the vCPU thread that wrote the marker, without the device lock held.
  BootDebugPort(absl::Time start, InitStartedCallback on_init_started, Clock clock = absl::Now);

  std::string_view Name() const override { return "boot_debug_port"; }
  // Reads leave the bus's open-bus value: nothing reads port 0x80 back.
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Time from start to the first kBootMarkerInitStarted, once written.
  std::optional<absl::Duration> init_started_after() const;

 private:
  const absl::Time start_;
  const InitStartedCallback on_init_started_;
  const Clock clock_;

  mutable absl::Mutex mutex_;
  std::optional<absl::Duration> init_started_after_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_LEGACY_BOOT_DEBUG_PORT_H_
