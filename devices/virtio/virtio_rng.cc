#include "devices/virtio/virtio_rng.h"

#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "devices/virtio/descriptor_chain.h"
#include "vmm/log.h"

namespace minivmm::virtio {
namespace {

// PCI class "other" (0xff): an entropy source has no class of its own (QEMU uses the same).
constexpr uint32_t kPciClassOther = 0xff0000;
// Fill at most this much per request: the driver asks for small amounts, and a bound keeps one
// request from pinning the worker.
constexpr uint64_t kMaxBytesPerRequest = 64 * 1024;

void DrainEventFd(int fd) {
  uint64_t count;
  (void)!::read(fd, &count, sizeof(count));
}

}  // namespace

uint16_t VirtioRng::device_type() const { return VIRTIO_ID_RNG; }
uint32_t VirtioRng::pci_class_code() const { return kPciClassOther; }

absl::Status VirtioRng::Activate(Activation activation) {
  absl::MutexLock lock(&mutex_);
  if (activation.queues.empty()) return absl::OkStatus();  // the driver enabled nothing
  const ActiveQueue& q = activation.queues.front();
  queue_.emplace(q.layout, (activation.features >> VIRTIO_RING_F_EVENT_IDX) & 1,
                 (activation.features >> VIRTIO_RING_F_INDIRECT_DESC) & 1);
  activation_ = std::move(activation);
  broken_ = false;
  const int kick_fd = activation_.queues.front().kick_fd;
  absl::StatusOr<std::unique_ptr<DeviceWorker>> worker =
      DeviceWorker::Start("virtio-rng", {{kick_fd, [this, kick_fd] {
                                            DrainEventFd(kick_fd);
                                            ProcessRequests();
                                          }}});
  if (!worker.ok()) return worker.status();
  worker_ = std::move(*worker);
  return absl::OkStatus();
}

void VirtioRng::Reset() {
  // Join the worker first, without the lock: it takes the lock to process requests.
  std::unique_ptr<DeviceWorker> worker;
  {
    absl::MutexLock lock(&mutex_);
    worker = std::move(worker_);
  }
  worker.reset();
  absl::MutexLock lock(&mutex_);
  queue_.reset();
  activation_ = {};
}

void VirtioRng::ProcessRequests() {
  absl::MutexLock lock(&mutex_);
  if (!queue_ || broken_) return;
  GuestMemory& memory = *activation_.memory;
  bool used = false;
  for (;;) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue_->PopAvailable(memory);
    if (!chain.ok()) {
      MINIVMM_LOG_GUEST_ERROR("virtio-rng: %s", chain.status().ToString());
      broken_ = true;
      break;
    }
    if (!chain->has_value()) break;
    ChainWriter writer(memory, **chain);
    for (std::span<uint8_t> span : writer.TakeSpans(kMaxBytesPerRequest)) {
      // getrandom() never returns short for <= 256 bytes; loop for larger spans and EINTR.
      size_t done = 0;
      while (done < span.size()) {
        const ssize_t n = ::getrandom(span.data() + done, span.size() - done, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
    }
    if (absl::Status pushed =
            queue_->PushUsed(memory, (*chain)->head, static_cast<uint32_t>(writer.written()));
        !pushed.ok()) {
      MINIVMM_LOG_GUEST_ERROR("virtio-rng: %s", pushed.ToString());
      broken_ = true;
      break;
    }
    used = true;
  }
  if (!used) return;
  absl::StatusOr<bool> notify = queue_->ShouldInterrupt(memory);
  if (!notify.ok() || *notify) activation_.queues.front().signal_used();
}

}  // namespace minivmm::virtio
