// virtio-rng / entropy device (virtio 1.2 §5.4): fills every buffer the driver offers with
// bytes from the host's getrandom(). One request queue, no configuration, no features.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_RNG_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_RNG_H_

#include <memory>
#include <optional>

#include "devices/virtio/single_queue_device.h"

namespace minivmm::virtio {

class VirtioRng : public SingleQueueDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;

  std::string_view Name() const override { return "virtio-rng"; }
  uint16_t device_type() const override;
  uint32_t pci_class_code() const override;
  uint64_t features() const override { return 0; }
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  size_t config_size() const override { return 0; }
  void ReadConfig(uint64_t, std::span<uint8_t>) override {}

 private:
  std::optional<uint32_t> HandleChain(GuestMemory& memory, const DescriptorChain& chain) override;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_RNG_H_
