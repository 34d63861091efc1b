#include "devices/virtio/virtio_blk.h"

#include <linux/virtio_ids.h>

#include <algorithm>
#include <cstring>

#include "devices/virtio/queue_server.h"
#include "devices/virtio/ring_features.h"

namespace minivmm::virtio {
namespace {

// PCI class 01 80 00: mass storage, "other" (what virtio-blk reports on QEMU too).
constexpr uint32_t kPciClassStorageOther = 0x018000;

}  // namespace

VirtioBlk::VirtioBlk(std::shared_ptr<BlockBackend> backend, std::string serial)
    : backend_(std::move(backend)),
      serial_(std::move(serial)),
      config_(MakeBlkConfig(*backend_, kQueueSize)) {}

uint16_t VirtioBlk::device_type() const { return VIRTIO_ID_BLOCK; }
uint32_t VirtioBlk::pci_class_code() const { return kPciClassStorageOther; }
uint64_t VirtioBlk::features() const { return BlkDeviceFeatures(*backend_); }

void VirtioBlk::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= kBlkConfigSize) return;
  const size_t n = std::min<size_t>(data.size(), kBlkConfigSize - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

absl::Status VirtioBlk::Activate(Activation activation) {
  absl::MutexLock lock(&mutex_);
  if (activation.queues.empty()) return absl::OkStatus();
  const ActiveQueue& q = activation.queues.front();
  queue_.emplace(q.layout, (activation.features >> kRingEventIdxFeature) & 1,
                 (activation.features >> kRingIndirectDescFeature) & 1);
  info_ = {serial_, activation.features};
  activation_ = std::move(activation);
  broken_ = false;
  const int kick_fd = activation_.queues.front().kick_fd;
  absl::StatusOr<std::unique_ptr<DeviceWorker>> worker =
      DeviceWorker::Start("virtio-blk", {{kick_fd, [this, kick_fd] {
                                            DrainKick(kick_fd);
                                            ProcessRequests();
                                          }}});
  if (!worker.ok()) return worker.status();
  worker_ = std::move(*worker);
  return absl::OkStatus();
}

void VirtioBlk::Reset() {
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

void VirtioBlk::ProcessRequests() {
  absl::MutexLock lock(&mutex_);
  if (!queue_ || broken_) return;
  GuestMemory& memory = *activation_.memory;
  const bool healthy = ServeQueue(*queue_, memory, activation_.queues.front(), Name(),
                                  [&](const DescriptorChain& chain) -> std::optional<uint32_t> {
                                    const BlkRequestResult result =
                                        ExecuteBlkRequest(memory, chain, *backend_, info_);
                                    if (result.needs_reset) return std::nullopt;
                                    return result.used_len;
                                  });
  if (!healthy) {
    broken_ = true;
    if (activation_.report_broken) activation_.report_broken();
  }
}

}  // namespace minivmm::virtio
