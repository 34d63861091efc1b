// A small epoll loop for the main thread: console input, signals and the stop event.
#ifndef MINIVMM_VMM_BASE_EVENT_LOOP_H_
#define MINIVMM_VMM_BASE_EVENT_LOOP_H_

#include <functional>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

class EventLoop {
 public:
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();

  // Calls on_readable from RunOnce whenever fd is readable (or hung up).
  absl::Status Watch(int fd, std::function<void()> on_readable);
  void Unwatch(int fd);
  // Waits up to timeout_ms (-1: forever) and runs the callbacks of ready fds.
  absl::Status RunOnce(int timeout_ms);

 private:
  explicit EventLoop(UniqueFd epoll) : epoll_(std::move(epoll)) {}
  UniqueFd epoll_;
  std::map<int, std::function<void()>> callbacks_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_EVENT_LOOP_H_
