#include "devices/virtio/single_queue_device.h"

#include <string>

#include "devices/virtio/queue_server.h"
#include "devices/virtio/ring_features.h"
#include "vmm/base/event_fd.h"

namespace minivmm::virtio {

absl::Status SingleQueueDevice::Activate(Activation activation) {
  absl::MutexLock lock(&mutex_);
  if (activation.queues.empty()) return absl::OkStatus();  // the driver enabled nothing
  const ActiveQueue& q = activation.queues.front();
  queue_.emplace(q.layout, (activation.features >> kRingEventIdxFeature) & 1,
                 (activation.features >> kRingIndirectDescFeature) & 1);
  OnActivate(activation.features);
  activation_ = std::move(activation);
  broken_ = false;
  const int kick_fd = activation_.queues.front().kick_fd;
  absl::StatusOr<std::unique_ptr<DeviceWorker>> worker =
      DeviceWorker::Start(std::string(Name()), {{kick_fd, [this, kick_fd] {
                                                   DrainEventFd(kick_fd);
                                                   ProcessRequests();
                                                 }}});
  if (!worker.ok()) return worker.status();
  worker_ = std::move(*worker);
  return absl::OkStatus();
}

void SingleQueueDevice::Reset() {
  std::unique_ptr<DeviceWorker> worker;
  {
    absl::MutexLock lock(&mutex_);
    worker = std::move(worker_);
  }
  worker.reset();  // joined outside the lock: the worker takes it to serve requests
  absl::MutexLock lock(&mutex_);
  queue_.reset();
  activation_ = {};
}

void SingleQueueDevice::ProcessRequests() {
  absl::MutexLock lock(&mutex_);
  if (!queue_ || broken_) return;
  GuestMemory& memory = *activation_.memory;
  const bool healthy = ServeQueue(*queue_, memory, activation_.queues.front(), Name(),
                                  [&](const DescriptorChain& chain) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    return HandleChain(memory, chain);
                                  });
  if (!healthy) {
    broken_ = true;
    if (activation_.report_broken) activation_.report_broken();
  }
}

}  // namespace minivmm::virtio
