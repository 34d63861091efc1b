#include "devices/legacy/boot_debug_port.h"

#include <utility>

#include "vmm/base/log.h"

namespace minivmm {

BootDebugPort::BootDebugPort(absl::Time start, InitStartedCallback on_init_started, Clock clock)
    : start_(start), on_init_started_(std::move(on_init_started)), clock_(std::move(clock)) {}

void BootDebugPort::Read(uint64_t /*offset*/, std::span<uint8_t> /*data*/) {}

void BootDebugPort::Write(uint64_t /*offset*/, std::span<const uint8_t> data) {
  // Only a byte-wide write of the marker counts; any other write is an I/O delay.
  if (data.size() != 1 || data[0] != kBootMarkerInitStarted) return;
  absl::Duration elapsed = clock_() - start_;
  {
    absl::MutexLock lock(&mutex_);
    if (init_started_after_.has_value()) {
      Log(LogLevel::kDebug, "boot marker %#x repeated after %s", data[0],
          absl::FormatDuration(elapsed));
      return;
    }
    init_started_after_ = elapsed;
  }
  if (on_init_started_) on_init_started_(elapsed);
}

std::optional<absl::Duration> BootDebugPort::init_started_after() const {
  absl::MutexLock lock(&mutex_);
  return init_started_after_;
}

}  // namespace minivmm
