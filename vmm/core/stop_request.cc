#include "vmm/core/stop_request.h"

namespace minivmm {

absl::StatusOr<std::unique_ptr<StopRequest>> StopRequest::Create() {
  absl::StatusOr<EventFd> event = EventFd::Create("stop request");
  if (!event.ok()) return event.status();
  return std::unique_ptr<StopRequest>(new StopRequest(std::move(*event)));
}

void StopRequest::Request(StopReason reason, absl::Status error, int signal) {
  {
    absl::MutexLock lock(&mutex_);
    if (requested_.load(std::memory_order_relaxed)) return;
    reason_ = reason;
    error_ = std::move(error);
    signal_ = signal;
    requested_.store(true, std::memory_order_release);
  }
  (void)event_.Signal();  // fails only when a wakeup is pending anyway
}

StopReason StopRequest::reason() const {
  absl::MutexLock lock(&mutex_);
  return reason_;
}

absl::Status StopRequest::error() const {
  absl::MutexLock lock(&mutex_);
  return error_;
}

int StopRequest::signal() const {
  absl::MutexLock lock(&mutex_);
  return signal_;
}

}  // namespace minivmm
