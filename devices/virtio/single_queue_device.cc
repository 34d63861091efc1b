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
                 (activation.features >> kRingIndirectDescFeature) & 1, q.start_index);
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
  worker_.Install(std::move(*worker));
  return absl::OkStatus();
}

void SingleQueueDevice::Reset() {
  worker_.Stop();  // first, without mutex_: the worker holds it while it serves a round
  absl::MutexLock lock(&mutex_);
  queue_.reset();
  activation_ = {};
}

void SingleQueueDevice::ProcessRequests() {
  absl::MutexLock lock(&mutex_);
  if (!queue_ || broken_ || !activation_.MayAccessMemory()) return;
  GuestMemory& memory = *activation_.memory;
  const ActiveQueue& active = activation_.queues.front();
  const Round round = ServeQueue(*queue_, memory, active, Name(), active.layout.size,
                                 [&](const DescriptorChain& chain) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                   return HandleChain(memory, chain);
                                 });
  if (round == Round::kMore) {
    // Come back through the worker's loop, which looks at a stop request first.
    (void)SignalEventFd(active.kick_fd);
  } else if (round == Round::kBroken) {
    broken_ = true;
    if (activation_.report_broken) activation_.report_broken();
  }
}

}  // namespace minivmm::virtio
