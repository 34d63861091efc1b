#include "vmm/base/event_loop.h"

#include <sys/epoll.h>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd.valid()) return ErrnoError("epoll_create1");
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(fd)));
}

absl::Status EventLoop::Watch(int fd, std::function<void()> on_readable) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) < 0) {
    return ErrnoError(absl::StrFormat("epoll_ctl(ADD, fd %d)", fd));
  }
  callbacks_[fd] = std::move(on_readable);
  return absl::OkStatus();
}

void EventLoop::Unwatch(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  callbacks_.erase(fd);
}

absl::Status EventLoop::RunOnce(int timeout_ms) {
  epoll_event events[8];
  const int n = ::epoll_wait(epoll_.get(), events, 8, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return absl::OkStatus();
    return ErrnoError("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    // A callback may unwatch fds (its own included): look each one up afresh.
    auto it = callbacks_.find(events[i].data.fd);
    if (it != callbacks_.end()) {
      std::function<void()> callback = it->second;
      callback();
    }
  }
  return absl::OkStatus();
}

}  // namespace minivmm
