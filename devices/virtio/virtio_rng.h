// virtio-rng / entropy device (virtio 1.2 §5.4): fills every buffer the driver offers with
// bytes from the host's getrandom(). One request queue, no configuration, no features.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_RNG_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_RNG_H_

#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "devices/virtio/device_worker.h"
#include "devices/virtio/virtio_device.h"

namespace minivmm::virtio {

class VirtioRng : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;

  std::string_view Name() const override { return "virtio-rng"; }
  uint16_t device_type() const override;
  uint32_t pci_class_code() const override;
  uint64_t features() const override { return 0; }
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  size_t config_size() const override { return 0; }
  void ReadConfig(uint64_t, std::span<uint8_t>) override {}
  absl::Status Activate(Activation activation) override;
  void Reset() override;

  // Serves every available request; the worker calls it on each kick. Public for tests.
  void ProcessRequests();

 private:
  absl::Mutex mutex_;  // guards activation state against Reset from a vCPU thread
  Activation activation_;
  std::optional<SplitVirtqueue> queue_;
  std::unique_ptr<DeviceWorker> worker_;
  bool broken_ = false;  // the driver broke the queue protocol; stop until reset
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_RNG_H_
