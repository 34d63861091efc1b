// The device-type half of a virtio device (virtio 1.2 §5): what it offers, its configuration
// space and what it does with its queues. The transport (devices/virtio/virtio_pci_function.h)
// owns feature negotiation, status, queue setup and interrupts, and hands the device its queues
// when the driver sets DRIVER_OK.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_DEVICE_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {

// One queue the driver enabled, as the device gets it on activation.
struct ActiveQueue {
  uint16_t index = 0;
  QueueLayout layout;
  // An eventfd that becomes readable when the driver notifies this queue (read it to clear).
  int kick_fd = -1;
  // Tells the driver the device used buffers of this queue (sets the ISR bit and raises the
  // queue's MSI-X vector or INTx). Thread-safe; call it only when the queue asks for it
  // (SplitVirtqueue::ShouldInterrupt).
  std::function<void()> signal_used;
  // Where the device starts on both rings: 0 when the driver has just set the queue up; after a
  // snapshot is taken or restored, the used ring's idx. Devices return every chain they finish
  // before they stop, so a chain taken but not returned (a receive buffer waiting for a frame)
  // sits at or after that index and is taken again.
  uint16_t start_index = 0;
};

// Whether Bus Master Enable is set (see Activation::bus_master).
inline bool BusMasterEnabled(const std::atomic<bool>* bus_master) {
  return bus_master == nullptr || bus_master->load(std::memory_order_acquire);
}

struct Activation {
  GuestMemory* memory = nullptr;
  uint64_t features = 0;  // negotiated: the device's own bits plus transport/ring bits
  std::vector<ActiveQueue> queues;
  // The driver broke the queue protocol (a malformed ring or chain): the transport sets
  // DEVICE_NEEDS_RESET and tells the driver (§2.1.2). The device stops serving until reset.
  // Thread-safe.
  std::function<void()> report_broken;
  // The function's Bus Master Enable (command register bit 2, PCI 3.0 §6.2.2): while it is
  // clear the device must not touch guest memory, so it leaves its queues alone; the transport
  // kicks every queue when the bit is set again. Null: always set (tests of a bare device).
  const std::atomic<bool>* bus_master = nullptr;
  bool MayAccessMemory() const { return BusMasterEnabled(bus_master); }
  // Tells the driver the device configuration changed (sets the ISR bit and raises the config
  // vector or INTx). Thread-safe. Null in tests of a bare device.
  std::function<void()> signal_config_change;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual std::string_view Name() const = 0;
  // Virtio device ID (virtio 1.2 §5, <linux/virtio_ids.h>); the PCI device ID is 0x1040 + it.
  virtual uint16_t device_type() const = 0;
  // PCI class code (base << 16 | sub << 8 | prog-if) the function reports.
  virtual uint32_t pci_class_code() const = 0;
  // Device-specific feature bits offered; the transport adds VERSION_1 and the ring features.
  virtual uint64_t features() const = 0;
  // Maximum size of each queue; the count is the number of queues.
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  // Device-specific configuration space (§4.1.4.6): reads past config_size() read as zero.
  virtual size_t config_size() const = 0;
  virtual void ReadConfig(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void WriteConfig(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}
  // DRIVER_OK: start serving the queues. An error puts the device into DEVICE_NEEDS_RESET.
  virtual absl::Status Activate(Activation activation) = 0;
  // Device reset (§2.4): stop serving the queues. When this returns, nothing of the device
  // touches guest memory or signals interrupts any more. Safe to call when not active.
  virtual void Reset() = 0;
  // The guest now runs somewhere else (a restore, or the destination of a migration): a device
  // whose peers must learn where it is says so (virtio-net's GUEST_ANNOUNCE). Default: nothing.
  virtual void AnnounceMove() {}
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_DEVICE_H_
