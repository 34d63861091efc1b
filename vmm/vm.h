// One running guest: KVM VM, guest RAM, buses, devices and vCPU threads, wired explicitly.
// A guest reboot with on_reboot = "restart" builds a new Vm from the same images.
#ifndef MINIVMM_VMM_VM_H_
#define MINIVMM_VMM_VM_H_

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmm/boot/boot_images.h"
#include "vmm/config/config.h"
#include "vmm/core/bus.h"
#include "vmm/core/guest_memory.h"
#include "vmm/core/irq_line.h"
#include "vmm/core/shared_irq_line.h"
#include "vmm/core/stop_request.h"
#include "vmm/host_backends.h"
#include "vmm/kvm/kvm.h"
#include "vmm/vcpu/vcpu_thread.h"

namespace minivmm {

class Console;
class Serial16550;
class BootDebugPort;
class GsiRouter;
class KvmMsiAllocator;
class KvmMmioWriteEvents;
class PciRoot;
class PciFunction;
class KvmBarMapper;
class KvmVfioInterruptSink;
class VfioContainer;
namespace virtio {
class VirtioConsole;
}

class Vm {
 public:
  static absl::StatusOr<std::unique_ptr<Vm>> Create(const KvmSystem& kvm, const VmConfig& config,
                                                    const BootImages& images,
                                                    const HostBackends& backends, Console* console,
                                                    StopRequest* stop, absl::Time vmm_start);
  ~Vm();

  void Start();
  // Stops and joins every vCPU thread; the VM cannot be restarted afterwards.
  void Stop();
  // Holds every vCPU out of KVM_RUN / lets them run again (see VcpuThread::Pause).
  void Pause();
  void Resume();
  bool paused() const { return paused_; }
  // Guest memory pinned for DMA: all of it with a passed-through function, else none.
  uint64_t pinned_bytes() const;
  // Hands console input to the guest's console device (UART or virtio-console, per [console]);
  // returns how many bytes it took.
  size_t SendConsoleInput(std::span<const uint8_t> bytes);
  ExitCounts TotalExitCounts() const;
  // When the guest wrote the boot marker (port 0x80), measured from minivmm's start.
  std::optional<absl::Duration> InitStartedAfter() const;

 private:
  Vm() = default;
  absl::Status CreateDevices(Console* console, absl::Time vmm_start);
  // The PCI host bridge, its config mechanisms and the virtio functions.
  absl::Status CreatePciDevices(const VmConfig& config, const HostBackends& backends,
                                Console* console);
  // The full-reservation rule: pins and DMA-maps every RAM region (prefaulting it).
  absl::Status ReserveMemoryForDma(VfioContainer* container);
  // A new source on GSI `gsi`'s line, for one device; the Vm keeps both.
  IrqLine* AddIrqSource(uint32_t gsi);
  absl::Status CreateVcpus(const KvmSystem& kvm, uint32_t count, const struct LinuxEntry& entry);

  // Members are destroyed bottom-up: vCPU threads are joined first, then bus registrations
  // drop the devices, then the VM fd goes, and guest memory is unmapped last.
  StopRequest* stop_ = nullptr;
  std::optional<GuestMemory> memory_;
  std::unique_ptr<KvmVm> kvm_vm_;
  Bus pio_bus_{"port I/O"};
  Bus mmio_bus_{"MMIO"};
  // Interrupt lines by GSI, each ORing the devices on it (slots s and s + 8 share one), and
  // the devices' sources on them.
  std::map<uint32_t, std::unique_ptr<SharedIrqLine>> irq_lines_;
  std::vector<std::unique_ptr<IrqLine>> irq_sources_;
  std::shared_ptr<Serial16550> serial_;
  std::shared_ptr<BootDebugPort> debug_port_;
  // PCI: functions go before the interrupt plumbing they use (MSI vectors, INTx lines).
  std::unique_ptr<GsiRouter> gsi_router_;
  std::unique_ptr<KvmMsiAllocator> msi_allocator_;
  std::unique_ptr<KvmMmioWriteEvents> write_events_;
  // Passthrough: guest RAM stays DMA-mapped (pinned) while dma_container_ is set.
  VfioContainer* dma_container_ = nullptr;
  std::unique_ptr<KvmBarMapper> bar_mapper_;
  std::unique_ptr<KvmVfioInterruptSink> vfio_interrupts_;
  std::unique_ptr<PciRoot> pci_root_;
  // Set when [console] device = "virtio": it takes console input instead of the UART.
  virtio::VirtioConsole* virtio_console_ = nullptr;
  std::vector<BusRegistration> registrations_;
  std::vector<std::unique_ptr<VcpuThread>> vcpus_;
  bool paused_ = false;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_VM_H_
