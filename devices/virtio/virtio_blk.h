// virtio-blk (virtio 1.2 §5.2): one request queue served by a worker thread, so disk I/O never
// runs on a vCPU thread. Request parsing and execution live in virtio_blk_request.h.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_BLK_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_BLK_H_

#include <memory>
#include <optional>
#include <string>

#include "devices/virtio/block_backend.h"
#include "devices/virtio/single_queue_device.h"
#include "devices/virtio/virtio_blk_request.h"

namespace minivmm::virtio {

class VirtioBlk : public SingleQueueDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;

  VirtioBlk(std::shared_ptr<BlockBackend> backend, std::string serial);

  std::string_view Name() const override { return "virtio-blk"; }
  uint16_t device_type() const override;
  uint32_t pci_class_code() const override;
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  size_t config_size() const override { return kBlkConfigSize; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override;

 private:
  const std::shared_ptr<BlockBackend> backend_;
  const std::string serial_;
  const virtio_blk_config config_;

  void OnActivate(uint64_t negotiated_features) override;
  std::optional<uint32_t> HandleChain(GuestMemory& memory, const DescriptorChain& chain) override;

  BlkDeviceInfo info_;  // serial and negotiated features, set on activation
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_BLK_H_
