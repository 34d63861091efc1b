// One running guest: KVM VM, guest RAM, buses, devices and vCPU threads, wired explicitly.
// A guest reboot with on_reboot = "restart" builds a new Vm from the same images.
#ifndef MINIVMM_VMM_VM_H_
#define MINIVMM_VMM_VM_H_

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "guest-firmware/linux_loader.h"
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
#include "vmm/vm_state.pb.h"

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
class I8042;
class CmosRtc;
namespace virtio {
class VirtioConsole;
class VirtioPciFunction;
}  // namespace virtio

class Vm {
 public:
  static absl::StatusOr<std::unique_ptr<Vm>> Create(const KvmSystem& kvm, const VmConfig& config,
                                                    const BootImages& images,
                                                    const HostBackends& backends, Console* console,
                                                    StopRequest* stop, absl::Time vmm_start);
  // A VM that continues a snapshot: built from the description saved with it, its memory
  // mapped from `memory_file`, every device and vCPU set to `state`. It runs from where the
  // snapshot stopped once started.
  static absl::StatusOr<std::unique_ptr<Vm>> Restore(const KvmSystem& kvm, const VmConfig& config,
                                                     const HostBackends& backends,
                                                     Console* console, StopRequest* stop,
                                                     absl::Time vmm_start,
                                                     const state::VmState& state,
                                                     const std::filesystem::path& memory_file);
  // A VM that a migration fills: built from the source's description with empty memory; the
  // caller writes the pages it receives into memory() and then calls RestoreState.
  static absl::StatusOr<std::unique_ptr<Vm>> CreateForIncoming(
      const KvmSystem& kvm, const VmConfig& config, const HostBackends& backends,
      Console* console, StopRequest* stop, absl::Time vmm_start);
  // Every device and vCPU set to `state` (memory must hold the guest's pages already).
  absl::Status RestoreState(const KvmSystem& kvm, const VmConfig& config,
                            const state::VmState& state);
  ~Vm();

  void Start();
  // Stops and joins every vCPU thread; the VM cannot be restarted afterwards.
  void Stop();
  // Holds every vCPU out of KVM_RUN / lets them run again (see VcpuThread::Pause).
  void Pause();
  void Resume();
  bool paused() const { return paused_; }
  // Snapshot and migration, with the VM paused: QuiesceDevices stops the virtio queues (guest
  // memory and device state hold still), SaveState reads everything but memory, and
  // ResumeDevices lets the queues run again.
  void QuiesceDevices();
  absl::StatusOr<state::VmState> SaveState();
  void ResumeDevices();
  const GuestMemory& memory() const { return *memory_; }
  GuestMemory& memory() { return *memory_; }
  // Migration: KVM's dirty log on every RAM slot plus GuestMemory's record of the VMM's own
  // writes, each a bit per 4 KiB page of region `index`, cleared as they are taken.
  absl::Status StartDirtyLog();
  void StopDirtyLog();
  struct DirtyPages {
    std::vector<uint64_t> by_guest;  // KVM_GET_DIRTY_LOG
    std::vector<uint64_t> by_vmm;    // device emulation (GuestMemory::TakeDirtyPages)
  };
  absl::StatusOr<DirtyPages> TakeDirtyPages(size_t index);
  // The CPUID vCPU 0 gives the guest (what a migration destination must support).
  absl::StatusOr<CpuidList> GuestCpuid();
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
  // KVM VM, memory (from `memory_file` when not empty) and every device; no vCPUs yet.
  static absl::StatusOr<std::unique_ptr<Vm>> CreateMachine(
      const KvmSystem& kvm, const VmConfig& config, const HostBackends& backends,
      Console* console, StopRequest* stop, absl::Time vmm_start,
      const std::filesystem::path& memory_file);
  // A fresh boot: ACPI tables, the reset vector, the kernel and its boot data in memory.
  absl::StatusOr<LinuxEntry> LoadGuest(const VmConfig& config, const BootImages& images);
  absl::Status RestoreDeviceState(const state::VmState& state);
  absl::Status CreateDevices(Console* console, absl::Time vmm_start);
  // The PCI host bridge, its config mechanisms and the virtio functions.
  absl::Status CreatePciDevices(const VmConfig& config, const HostBackends& backends,
                                Console* console);
  // The full-reservation rule: pins and DMA-maps every RAM region (prefaulting it).
  absl::Status ReserveMemoryForDma(VfioContainer* container);
  // A new source on GSI `gsi`'s line, for one device; the Vm keeps both.
  IrqLine* AddIrqSource(uint32_t gsi);
  // entry: where the boot vCPU starts (null: a restore sets every register).
  absl::Status CreateVcpus(const KvmSystem& kvm, uint32_t count, const LinuxEntry* entry);

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
  std::shared_ptr<I8042> i8042_;
  std::shared_ptr<CmosRtc> rtc_;
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
  // The virtio functions by PCI slot (owned by pci_root_), for their state.
  struct VirtioSlot {
    uint8_t slot;
    virtio::VirtioPciFunction* function;
  };
  std::vector<VirtioSlot> virtio_functions_;
  // Set when [console] device = "virtio": it takes console input instead of the UART.
  virtio::VirtioConsole* virtio_console_ = nullptr;
  std::vector<BusRegistration> registrations_;
  std::vector<std::unique_ptr<VcpuThread>> vcpus_;
  // KVM_GET_MSR_INDEX_LIST: the MSRs a snapshot saves (those each vCPU can read back).
  std::vector<uint32_t> msr_index_list_;
  bool paused_ = false;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_VM_H_
