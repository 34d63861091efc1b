#include "devices/virtio/virtio_blk.h"

#include <endian.h>
#include <linux/virtio_ids.h>

#include <algorithm>
#include <cstring>

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

void VirtioBlk::OnActivate(uint64_t negotiated_features) {
  info_ = {.serial = serial_,
           .negotiated_features = negotiated_features,
           .seg_max = le32toh(config_.seg_max)};
}

std::optional<uint32_t> VirtioBlk::HandleChain(GuestMemory& memory, const DescriptorChain& chain) {
  const BlkRequestResult result = ExecuteBlkRequest(memory, chain, *backend_, info_);
  if (result.needs_reset) return std::nullopt;
  return result.used_len;
}

}  // namespace minivmm::virtio
