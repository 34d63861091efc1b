#include "vmm/base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "vmm/base/errno_status.h"

namespace minivmm {

absl::StatusOr<EventFd> EventFd::Create(std::string_view purpose) {
  UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd.valid()) {
    return ErrnoError(purpose.empty() ? std::string("eventfd")
                                      : "eventfd(" + std::string(purpose) + ")");
  }
  return EventFd(std::move(fd));
}

absl::Status EventFd::Signal() { return SignalEventFd(fd_.get()); }

uint64_t EventFd::Drain() { return DrainEventFd(fd_.get()); }

absl::Status SignalEventFd(int fd) {
  const uint64_t one = 1;
  while (::write(fd, &one, sizeof(one)) < 0) {
    if (errno == EINTR) continue;
    // eventfd(2): a non-blocking write fails with EAGAIN only when the counter would pass
    // 0xfffffffffffffffe, i.e. a wakeup is already pending.
    if (errno == EAGAIN) return absl::OkStatus();
    return ErrnoError("write(eventfd)");
  }
  return absl::OkStatus();
}

uint64_t DrainEventFd(int fd) {
  uint64_t count = 0;
  while (::read(fd, &count, sizeof(count)) < 0) {
    if (errno == EINTR) continue;
    // EAGAIN: the counter is 0. Nothing else can fail on a valid eventfd read with an 8-byte
    // buffer (eventfd(2)).
    return 0;
  }
  return count;
}

}  // namespace minivmm
