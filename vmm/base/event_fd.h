// An owned, non-blocking eventfd(2): the doorbell between a signaller (a device worker, or KVM
// through an irqfd/ioeventfd) and a waiter (the event loop, or KVM).
#ifndef MINIVMM_VMM_BASE_EVENT_FD_H_
#define MINIVMM_VMM_BASE_EVENT_FD_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

class EventFd {
 public:
  // A counter starting at 0, EFD_NONBLOCK | EFD_CLOEXEC. `purpose` names it in the error
  // ("eventfd(virtio-net resume): Too many open files").
  static absl::StatusOr<EventFd> Create(std::string_view purpose = "");

  EventFd(EventFd&&) = default;
  EventFd& operator=(EventFd&&) = default;

  int fd() const { return fd_.get(); }

  // Adds 1 to the counter, waking any waiter. Thread-safe (eventfd writes are atomic). A
  // counter already at its maximum means the event is pending anyway, so that is not an error.
  absl::Status Signal();

  // Reads and resets the counter: the number of signals since the last Drain, or 0 when none
  // is pending (never blocks). Thread-safe.
  uint64_t Drain();

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}

  UniqueFd fd_;
};

// The same two operations on an eventfd someone else owns (a worker is handed the transport's
// kick fds as plain fds).
absl::Status SignalEventFd(int fd);
uint64_t DrainEventFd(int fd);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_EVENT_FD_H_
