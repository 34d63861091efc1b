// A thread that serves one virtio device: it waits on the device's fds (queue kicks, a tap, ...)
// and runs their handlers, so device work happens off the vCPU threads. Stopping it joins the
// thread, which is what VirtioDevice::Reset needs to promise that no handler is running.
#ifndef MINIVMM_DEVICES_VIRTIO_DEVICE_WORKER_H_
#define MINIVMM_DEVICES_VIRTIO_DEVICE_WORKER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vmm/base/event_fd.h"
#include "vmm/base/unique_fd.h"

namespace minivmm::virtio {

class DeviceWorker {
 public:
  struct Handler {
    int fd;
    std::function<void()> on_readable;
    // Level-triggered (the default): on_readable runs again as long as the fd stays readable,
    // so it must drain the fd (an eventfd kick) or the worker spins. Edge-triggered
    // (EPOLLET): on_readable runs once per new readiness (for a tap: each arriving frame);
    // it may leave data unread, and is not called again for it until more arrives. That
    // suits a source the device cannot always drain, such as a tap while the guest has no
    // receive buffers: the handler stops, and another event (a queue kick) resumes it.
    bool edge_triggered = false;
  };

  // Starts the thread. Handlers run on it, one at a time, whenever their fd is readable (see
  // Handler::edge_triggered).
  static absl::StatusOr<std::unique_ptr<DeviceWorker>> Start(std::string name,
                                                             std::vector<Handler> handlers);
  DeviceWorker(const DeviceWorker&) = delete;
  DeviceWorker& operator=(const DeviceWorker&) = delete;
  ~DeviceWorker();

 private:
  DeviceWorker(std::string name, UniqueFd epoll, EventFd stop, std::vector<Handler> handlers)
      : name_(std::move(name)),
        epoll_(std::move(epoll)),
        stop_(std::move(stop)),
        handlers_(std::move(handlers)) {}
  void Run();

  std::string name_;
  UniqueFd epoll_;
  EventFd stop_;  // readable once the worker must exit
  std::vector<Handler> handlers_;
  std::thread thread_;
};

// A device's worker, kept apart from the device's own lock: the worker holds that lock while
// it serves a round, so Reset (from a vCPU that holds the transport's lock) stops the worker
// through here first and takes the device lock only once the worker is gone. Waiting for the
// device lock first would wait for the round, and for a guest that keeps its ring full.
class WorkerSlot {
 public:
  // Replaces the worker (stopping any previous one).
  void Install(std::unique_ptr<DeviceWorker> worker) ABSL_LOCKS_EXCLUDED(mutex_);
  // Stops and joins the worker, if there is one: no handler runs once this returns.
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  absl::Mutex mutex_;
  std::unique_ptr<DeviceWorker> worker_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_DEVICE_WORKER_H_
