// The virtio 1.x modern PCI transport (virtio 1.2 §4.1): a PCI function whose BAR 0 holds the
// common configuration, ISR, device configuration, notification and MSI-X areas, described to
// the driver by vendor-specific capabilities. Queue notifications arrive as eventfd signals
// (KVM ioeventfd where available, so a kick costs no exit to userspace) and interrupts leave
// through MSI-X vectors (KVM irqfd) or, before the driver enables MSI-X, the INTx line.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_PCI_FUNCTION_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_PCI_FUNCTION_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_config_space.h"
#include "devices/pci/pci_function.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/virtio_pci_common_config.h"
#include "devices/virtio/virtio_state.pb.h"
#include "vmm/base/event_fd.h"
#include "vmm/core/bus.h"
#include "vmm/core/guest_memory.h"
#include "vmm/core/irq_line.h"
#include "vmm/core/mmio_write_events.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm::virtio {

// Where things live in BAR 0. Each area gets its own 4 KiB page so the driver can map them
// separately (§4.1.4.1 allows any layout the capabilities describe).
struct VirtioPciBarLayout {
  static constexpr uint64_t kCommonConfig = 0x0000;
  static constexpr uint64_t kIsr = 0x1000;
  static constexpr uint64_t kDeviceConfig = 0x2000;
  static constexpr uint64_t kNotify = 0x3000;
  static constexpr uint32_t kNotifyOffMultiplier = 4;  // queue i's doorbell at kNotify + 4 * i
  static constexpr uint64_t kMsixTable = 0x4000;
  static constexpr uint64_t kMsixPba = 0x6000;
  static constexpr uint64_t kAreaSize = 0x1000;
  static constexpr uint64_t kBarSize = 0x8000;
};

struct VirtioPciResources {
  GuestMemory* memory = nullptr;
  Bus* mmio_bus = nullptr;                  // where BAR 0 is decoded
  MmioWriteEvents* write_events = nullptr;  // null: doorbells trap to userspace
  MsiAllocator* msi = nullptr;
  IrqLine* intx = nullptr;   // INTA# of the function's slot
  uint8_t intx_line = 0;     // the GSI, reported in the interrupt line register
  uint64_t bar_address = 0;  // firmware assignment of BAR 0 (64-bit, size kBarSize)
};

class VirtioPciFunction : public PciFunction {
 public:
  static absl::StatusOr<std::shared_ptr<VirtioPciFunction>> Create(
      std::unique_ptr<VirtioDevice> device, const VirtioPciResources& resources);
  ~VirtioPciFunction() override;

  std::string_view Name() const override { return name_; }
  void ReadConfig(uint32_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint32_t offset, std::span<const uint8_t> data) override;

  // BAR 0 accesses (the bus device registered for the BAR forwards here).
  void ReadBar(uint64_t offset, std::span<uint8_t> data);
  void WriteBar(uint64_t offset, std::span<const uint8_t> data);

  // Snapshot and migration, with the vCPUs paused. Quiesce stops the device's queues, so that
  // neither guest memory nor the function's state changes while they are copied; Resume starts
  // them again where they stopped (ActiveQueue::start_index).
  void Quiesce();
  void Resume();
  state::VirtioPciState SaveState();
  // After a restore or an incoming migration, once the state is in: VirtioDevice::AnnounceMove.
  void AnnounceMove() { device_->AnnounceMove(); }
  // On a function just created from the same VM description, after guest memory is restored
  // and before any vCPU runs: the config space (BAR placement, command), the common
  // configuration, the MSI-X table and the ISR; a device whose driver had set DRIVER_OK starts
  // serving its queues at their used rings' indices. A state for another device is refused.
  absl::Status RestoreState(const state::VirtioPciState& state);

 private:
  class BarDevice;
  VirtioPciFunction(std::unique_ptr<VirtioDevice> device, const VirtioPciResources& resources,
                    PciConfigSpace config, std::unique_ptr<MsixTable> msix, uint8_t msix_cap,
                    uint64_t offered);

  absl::Status Init();
  // Keeps BAR 0's bus registration and the doorbell eventfds where the guest put the BAR.
  void UpdateBarMapping() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void UpdateDoorbells() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // resume: the queues continue at their used rings' indices (after Quiesce or a restore)
  // instead of starting at 0.
  void Activate(bool resume = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The used ring's idx of an enabled queue (guest memory), where a resumed queue continues.
  absl::StatusOr<uint16_t> UsedIndex(const QueueLayout& layout) const;
  // Copies the vector numbers the common configuration holds to where worker threads read them.
  void PublishVectors() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void ResetDevice() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void SignalQueue(uint16_t queue);
  void SignalConfigChange();
  void Interrupt(uint8_t isr_bit, uint16_t vector);

  const std::string name_;
  std::unique_ptr<VirtioDevice> device_;
  const VirtioPciResources resources_;
  std::shared_ptr<BarDevice> bar_device_;
  std::vector<EventFd> kick_fds_;  // one per queue

  absl::Mutex mutex_;
  PciConfigSpace config_ ABSL_GUARDED_BY(mutex_);
  VirtioPciCommonConfig common_ ABSL_GUARDED_BY(mutex_);
  const uint8_t msix_cap_;           // config-space offset of the MSI-X capability
  std::unique_ptr<MsixTable> msix_;  // thread-safe itself
  std::optional<uint64_t> mapped_bar_ ABSL_GUARDED_BY(mutex_);
  BusRegistration bar_registration_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::unique_ptr<MmioWriteEvents::Registration>> doorbells_ ABSL_GUARDED_BY(mutex_);
  bool active_ ABSL_GUARDED_BY(mutex_) = false;
  // Set by Quiesce on an active device: Resume activates it again.
  bool quiesced_ ABSL_GUARDED_BY(mutex_) = false;

  // Read by device worker threads when they interrupt, so not under mutex_.
  std::atomic<uint8_t> isr_{0};
  std::atomic<bool> needs_reset_{false};
  std::atomic<bool> intx_disabled_{false};  // command register bit 10, for worker threads
  std::atomic<bool> bus_master_{false};     // command register bit 2, for worker threads
  std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
  std::atomic<uint16_t> config_vector_{kNoMsixVector};
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_PCI_FUNCTION_H_
