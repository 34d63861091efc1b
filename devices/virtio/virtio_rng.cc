#include "devices/virtio/virtio_rng.h"

#include <linux/virtio_ids.h>
#include <sys/random.h>

#include <cerrno>

#include "devices/virtio/queue_server.h"
#include "devices/virtio/ring_features.h"

namespace minivmm::virtio {
namespace {

// PCI class "other" (0xff): an entropy source has no class of its own (QEMU uses the same).
constexpr uint32_t kPciClassOther = 0xff0000;
// Fill at most this much per request: the driver asks for small amounts, and a bound keeps one
// request from holding the worker.
constexpr uint64_t kMaxBytesPerRequest = 64 * 1024;

void FillRandom(std::span<uint8_t> span) {
  size_t done = 0;
  while (done < span.size()) {
    // getrandom() returns short only for > 256 bytes or on a signal; loop for both.
    const ssize_t n = ::getrandom(span.data() + done, span.size() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

uint16_t VirtioRng::device_type() const { return VIRTIO_ID_RNG; }
uint32_t VirtioRng::pci_class_code() const { return kPciClassOther; }

absl::Status VirtioRng::Activate(Activation activation) {
  absl::MutexLock lock(&mutex_);
  if (activation.queues.empty()) return absl::OkStatus();  // the driver enabled nothing
  const ActiveQueue& q = activation.queues.front();
  queue_.emplace(q.layout, (activation.features >> kRingEventIdxFeature) & 1,
                 (activation.features >> kRingIndirectDescFeature) & 1);
  activation_ = std::move(activation);
  broken_ = false;
  const int kick_fd = activation_.queues.front().kick_fd;
  absl::StatusOr<std::unique_ptr<DeviceWorker>> worker =
      DeviceWorker::Start("virtio-rng", {{kick_fd, [this, kick_fd] {
                                            DrainKick(kick_fd);
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
  const bool healthy =
      ServeQueue(*queue_, memory, activation_.queues.front(), Name(),
                 [&memory](const DescriptorChain& chain) -> std::optional<uint32_t> {
                   ChainWriter writer(memory, chain);
                   for (std::span<uint8_t> span : writer.TakeSpans(kMaxBytesPerRequest))
                     FillRandom(span);
                   return static_cast<uint32_t>(writer.written());
                 });
  if (!healthy) {
    broken_ = true;
    if (activation_.report_broken) activation_.report_broken();
  }
}

}  // namespace minivmm::virtio
