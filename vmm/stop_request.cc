#include "vmm/stop_request.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/errno_status.h"

namespace minivmm {

absl::StatusOr<std::unique_ptr<StopRequest>> StopRequest::Create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return ErrnoError("eventfd");
  return std::unique_ptr<StopRequest>(new StopRequest(std::move(fd)));
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
  const uint64_t one = 1;
  (void)!::write(event_fd_.get(), &one, sizeof(one));
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
