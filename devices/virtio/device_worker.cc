#include "devices/virtio/device_worker.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/base/seccomp.h"

namespace minivmm::virtio {
namespace {

// epoll_event.data.u64 of the stop eventfd; handlers use their index.
constexpr uint64_t kStopKey = ~0ull;

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceWorker>> DeviceWorker::Start(std::string name,
                                                                  std::vector<Handler> handlers) {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return ErrnoError(absl::StrFormat("epoll_create1(%s worker)", name));
  absl::StatusOr<EventFd> stop = EventFd::Create(absl::StrFormat("%s worker", name));
  if (!stop.ok()) return stop.status();
  auto watch = [&](int fd, uint64_t key, bool edge_triggered) -> absl::Status {
    epoll_event event{};
    // An fd already readable when added is reported once in either mode (ep_insert polls it).
    event.events = EPOLLIN | (edge_triggered ? EPOLLET : 0u);
    event.data.u64 = key;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      return ErrnoError(absl::StrFormat("epoll_ctl(%s worker, fd %d)", name, fd));
    }
    return absl::OkStatus();
  };
  MINIVMM_RETURN_IF_ERROR(watch(stop->fd(), kStopKey, /*edge_triggered=*/false));
  for (size_t i = 0; i < handlers.size(); ++i) {
    MINIVMM_RETURN_IF_ERROR(watch(handlers[i].fd, i, handlers[i].edge_triggered));
  }
  std::unique_ptr<DeviceWorker> worker(
      new DeviceWorker(std::move(name), std::move(epoll), std::move(*stop), std::move(handlers)));
  worker->thread_ = std::thread([w = worker.get()] { w->Run(); });
  return worker;
}

DeviceWorker::~DeviceWorker() {
  if (absl::Status signalled = stop_.Signal(); !signalled.ok()) {
    Log(LogLevel::kError, "%s worker: cannot signal stop: %s", name_, signalled.ToString());
  }
  if (thread_.joinable()) thread_.join();
}

void DeviceWorker::Run() {
  if (absl::Status entered = EnterThreadClass(ThreadClass::kDeviceWorker); !entered.ok()) {
    // Without its filter the worker does not serve: the guest sees the device hang, and the
    // log says why (the vCPU's own filter was installed, so this is not expected).
    Log(LogLevel::kError, "%s worker: %s", name_, entered.ToString());
    return;
  }
  epoll_event events[16];
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "%s worker: epoll_wait: %s", name_, strerror(errno));
      return;
    }
    // The stop request wins over pending work: after Reset the queues are not ours any more.
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kStopKey) return;
    }
    for (int i = 0; i < n; ++i) handlers_[events[i].data.u64].on_readable();
  }
}

void WorkerSlot::Install(std::unique_ptr<DeviceWorker> worker) {
  std::unique_ptr<DeviceWorker> previous;
  {
    absl::MutexLock lock(&mutex_);
    previous = std::exchange(worker_, std::move(worker));
  }
  // previous joins here, outside mutex_.
}

void WorkerSlot::Stop() {
  std::unique_ptr<DeviceWorker> worker;
  {
    absl::MutexLock lock(&mutex_);
    worker = std::move(worker_);
  }
  worker.reset();  // joined outside mutex_, so a concurrent Install never waits for a round
}

}  // namespace minivmm::virtio
