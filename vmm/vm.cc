#include "vmm/vm.h"

#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "devices/legacy/acpi_sleep_control.h"
#include "devices/legacy/boot_debug_port.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_16550.h"
#include "devices/pci/pci_config_io.h"
#include "devices/pci/pci_ecam.h"
#include "devices/pci/pci_host_bridge.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_console.h"
#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtio_pci_function.h"
#include "devices/virtio/virtio_rng.h"
#include "guest-firmware/acpi_tables.h"
#include "guest-firmware/linux_loader.h"
#include "guest-firmware/reset_vector.h"
#include "passthrough/guest_slots.h"
#include "passthrough/vfio_pci_function.h"
#include "vmm/snapshot/memory_file.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/console.h"
#include "vmm/core/memory_layout.h"
#include "vmm/kvm/gsi_router.h"
#include "vmm/kvm/kvm_bar_mapper.h"
#include "vmm/kvm/kvm_irq_line.h"
#include "vmm/kvm/kvm_mmio_write_events.h"
#include "vmm/kvm/kvm_msi.h"
#include "vmm/kvm/kvm_vfio_interrupt_sink.h"
#include "vmm/vcpu/cpuid.h"
#include "vmm/vcpu/vcpu_setup.h"

namespace minivmm {
namespace {

// KVM needs three pages for the VMX real-mode TSS and one for the EPT identity map, somewhere
// the guest never uses; the top of the 32-bit MMIO hole, below the BIOS ROM, is free.
constexpr uint64_t kKvmIdentityMapAddress = 0xfffbc000;
constexpr uint64_t kKvmTssAddress = 0xfffbd000;
// Legacy PC addresses (IBM PC/AT technical reference): COM1 and its IRQ, the RTC.
constexpr uint16_t kCom1Port = 0x3f8;
constexpr int kCom1Irq = 4;
constexpr uint16_t kRtcPort = 0x70;
// I/O ports PCI I/O BARs may use: everything above the legacy ISA range.
constexpr uint64_t kPciIoStart = 0x1000;
constexpr uint64_t kPciIoSize = 0xf000;

// Hands out size-aligned addresses from a window, as firmware assigns BARs.
class WindowAllocator {
 public:
  WindowAllocator(std::string name, uint64_t start, uint64_t size)
      : name_(std::move(name)), next_(start), end_(start + size) {}
  absl::StatusOr<uint64_t> Allocate(uint64_t size) {
    const uint64_t aligned = (next_ + size - 1) & ~(size - 1);
    if (size == 0 || aligned < next_ || aligned + size > end_) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("the PCI %s window has no room for a %#x-byte BAR", name_, size));
    }
    next_ = aligned + size;
    return aligned;
  }

 private:
  std::string name_;
  uint64_t next_;
  uint64_t end_;
};

// KVM memory slots above those of guest RAM are for passed-through BARs.
constexpr uint32_t kFirstBarSlot = 16;
constexpr uint32_t kBarSlots = 256;

AcpiPciHostBridge PciHostBridgeDescription(uint64_t memory_bytes) {
  AcpiPciHostBridge pci;
  pci.ecam_address = layout::kPciEcamAddress;
  pci.end_bus = 0;
  pci.io = {kPciIoStart, kPciIoSize};
  pci.mmio32 = {layout::kPciMmio32Start, layout::kPciMmio32Size};
  pci.mmio64 = {layout::PciMmio64Start(memory_bytes), layout::kPciMmio64Size};
  return pci;
}

}  // namespace

Vm::~Vm() {
  Stop();
  // The functions go first (reset, interrupts off), then the DMA mappings of guest RAM.
  pci_root_.reset();
  if (dma_container_ != nullptr) {
    for (const GuestMemory::Region& region : memory_->regions()) {
      if (absl::Status status = dma_container_->UnmapDma(region.guest_address, region.size);
          !status.ok()) {
        Log(LogLevel::kError, "%s", status.ToString());
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::Create(const KvmSystem& kvm, const VmConfig& config,
                                               const BootImages& images,
                                               const HostBackends& backends, Console* console,
                                               StopRequest* stop, absl::Time vmm_start) {
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<Vm> vm,
                           CreateMachine(kvm, config, backends, console, stop, vmm_start,
                                         /*memory_file=*/{}));
  MINIVMM_ASSIGN_OR_RETURN(const LinuxEntry entry, vm->LoadGuest(config, images));
  MINIVMM_RETURN_IF_ERROR(vm->CreateVcpus(kvm, config.vcpus, &entry));
  return vm;
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::CreateMachine(
    const KvmSystem& kvm, const VmConfig& config, const HostBackends& backends, Console* console,
    StopRequest* stop, absl::Time vmm_start, const std::filesystem::path& memory_file) {
  std::unique_ptr<Vm> vm(new Vm());
  vm->stop_ = stop;
  MINIVMM_ASSIGN_OR_RETURN(vm->msr_index_list_, kvm.GetMsrIndexList());
  MINIVMM_ASSIGN_OR_RETURN(vm->kvm_vm_, kvm.CreateVm());
  KvmVm& kvm_vm = *vm->kvm_vm_;
  MINIVMM_RETURN_IF_ERROR(kvm_vm.SetIdentityMapAddress(kKvmIdentityMapAddress));
  MINIVMM_RETURN_IF_ERROR(kvm_vm.SetTssAddress(kKvmTssAddress));
  MINIVMM_RETURN_IF_ERROR(kvm_vm.CreateIrqchip());
  MINIVMM_RETURN_IF_ERROR(kvm_vm.CreatePit());

  const std::vector<GuestRegionSpec> ram = layout::RamRegions(config.memory_mib << 20);
  MINIVMM_ASSIGN_OR_RETURN(GuestMemory memory, GuestMemory::Create(ram));
  vm->memory_.emplace(std::move(memory));
  // A restore maps the snapshot's memory over the fresh regions before KVM sees them.
  if (!memory_file.empty()) MINIVMM_RETURN_IF_ERROR(LoadMemoryFile(memory_file, *vm->memory_));
  uint32_t slot = 0;
  for (const GuestMemory::Region& region : vm->memory_->regions()) {
    MINIVMM_RETURN_IF_ERROR(
        kvm_vm.SetUserMemoryRegion(slot++, region.guest_address, region.size, region.host));
  }
  MINIVMM_RETURN_IF_ERROR(vm->CreateDevices(
      config.console_device == ConsoleDevice::kSerial ? console : nullptr, vmm_start));
  MINIVMM_RETURN_IF_ERROR(vm->CreatePciDevices(config, backends, console));
  return vm;
}

absl::StatusOr<LinuxEntry> Vm::LoadGuest(const VmConfig& config, const BootImages& images) {
  AcpiMachine machine;
  machine.num_cpus = config.vcpus;
  machine.base_address = layout::kAcpiTablesAddress;
  machine.sleep_control_port = kAcpiSleepControlPort;
  machine.s5_sleep_type = kAcpiSleepTypeS5;
  machine.lapic_address = layout::kLapicAddress;
  machine.ioapic_address = layout::kIoapicAddress;
  machine.legacy_devices = {
      {"COM1", "PNP0501", 0, kCom1Port, Serial16550::kPortSpan, kCom1Irq},
      // The RTC raises no interrupt here (no alarms); described so rtc_cmos binds through PNP.
      {"RTC_", "PNP0B00", 0, kRtcPort, CmosRtc::kPortSpan, -1},
  };
  machine.pci = PciHostBridgeDescription(config.memory_mib << 20);
  const AcpiTables acpi = BuildAcpiTables(machine);
  if (acpi.blob.size() > layout::kAcpiTablesMaxSize) {
    return absl::InternalError(absl::StrFormat("ACPI tables (%d bytes) exceed their %d-byte area",
                                               acpi.blob.size(), layout::kAcpiTablesMaxSize));
  }
  MINIVMM_RETURN_IF_ERROR(memory_->Write(layout::kAcpiTablesAddress, acpi.blob));
  MINIVMM_RETURN_IF_ERROR(memory_->Write(kResetVectorAddress, kResetVectorStub));

  LinuxBootInputs boot;
  boot.kernel = &images.kernel;
  boot.initramfs = images.initramfs;
  boot.cmdline = config.cmdline;
  boot.rsdp_address = acpi.rsdp_address;
  // Linux trusts the MCFG area only if the firmware reserved it (arch/x86/pci/mmconfig-shared.c).
  boot.reserved_ranges = {{layout::kPciEcamAddress, layout::kPciEcamSize}};
  const absl::Time load_start = absl::Now();
  MINIVMM_ASSIGN_OR_RETURN(LinuxEntry entry, LoadLinux(*memory_, boot));
  Log(LogLevel::kDebug, "kernel, initramfs and boot data loaded into guest memory in %.3f s",
      absl::ToDoubleSeconds(absl::Now() - load_start));
  if (entry.randomized) {
    Log(LogLevel::kInfo, "kernel: placed and relocated at random addresses (KASLR)");
  } else if (!entry.kaslr_skipped.empty()) {
    Log(LogLevel::kWarning, "kernel %s: booting at its link address without KASLR: %s",
        images.kernel.name, entry.kaslr_skipped);
  }
  return entry;
}

IrqLine* Vm::AddIrqSource(uint32_t gsi) {
  std::unique_ptr<SharedIrqLine>& line = irq_lines_[gsi];
  if (line == nullptr) {
    line = std::make_unique<SharedIrqLine>(std::make_unique<KvmIrqLine>(kvm_vm_.get(), gsi));
  }
  irq_sources_.push_back(line->AddSource());
  return irq_sources_.back().get();
}

absl::Status Vm::CreateDevices(Console* console, absl::Time vmm_start) {
  auto add = [this](uint64_t base, uint64_t length, std::shared_ptr<BusDevice> device) {
    absl::StatusOr<BusRegistration> registration =
        pio_bus_.Register(base, length, std::move(device));
    if (!registration.ok()) return registration.status();
    registrations_.push_back(std::move(*registration));
    return absl::OkStatus();
  };
  // Without a console (it went to virtio-console) the UART still exists, as on real hardware,
  // and what the guest writes to it is dropped.
  Serial16550::OutputSink sink;
  if (console != nullptr) {
    sink = [console](std::span<const uint8_t> bytes) { console->Write(bytes); };
  }
  serial_ = std::make_shared<Serial16550>(AddIrqSource(kCom1Irq), std::move(sink));
  MINIVMM_RETURN_IF_ERROR(add(kCom1Port, Serial16550::kPortSpan, serial_));

  StopRequest* stop = stop_;
  i8042_ = std::make_shared<I8042>([stop] { stop->Request(StopReason::kReset); });
  MINIVMM_RETURN_IF_ERROR(add(I8042::kBasePort, I8042::kPortSpan, i8042_));
  rtc_ = std::make_shared<CmosRtc>();
  MINIVMM_RETURN_IF_ERROR(add(kRtcPort, CmosRtc::kPortSpan, rtc_));
  MINIVMM_RETURN_IF_ERROR(add(kAcpiSleepControlPort, 1, std::make_shared<AcpiSleepControl>([stop] {
                                stop->Request(StopReason::kPowerOff);
                              })));
  debug_port_ = std::make_shared<BootDebugPort>(vmm_start, [](absl::Duration elapsed) {
    Log(LogLevel::kInfo, "boot marker: guest init started %.3f s after minivmm started",
        absl::ToDoubleSeconds(elapsed));
  });
  return add(kBootDebugPort, 1, debug_port_);
}

absl::Status Vm::CreatePciDevices(const VmConfig& config, const HostBackends& backends,
                                  Console* console) {
  KvmVm* kvm_vm = kvm_vm_.get();
  gsi_router_ =
      std::make_unique<GsiRouter>([kvm_vm](std::span<const kvm_irq_routing_entry> routes) {
        return kvm_vm->SetGsiRouting(routes);
      });
  msi_allocator_ = std::make_unique<KvmMsiAllocator>(kvm_vm, gsi_router_.get());
  write_events_ = std::make_unique<KvmMmioWriteEvents>(kvm_vm);
  pci_root_ = std::make_unique<PciRoot>();
  MINIVMM_RETURN_IF_ERROR(pci_root_->AddFunction(0, 0, std::make_shared<PciHostBridge>()));
  for (auto [bus, base, length, device] :
       {std::tuple<Bus*, uint64_t, uint64_t, std::shared_ptr<BusDevice>>{
            &pio_bus_, PciConfigIo::kBasePort, PciConfigIo::kPortSpan,
            std::make_shared<PciConfigIo>(pci_root_.get())},
        {&mmio_bus_, layout::kPciEcamAddress, layout::kPciEcamSize,
         std::make_shared<PciEcam>(pci_root_.get())}}) {
    MINIVMM_ASSIGN_OR_RETURN(BusRegistration registration,
                             bus->Register(base, length, std::move(device)));
    registrations_.push_back(std::move(registration));
  }

  // BARs are placed like firmware would, size-aligned in the host bridge's windows; the guest
  // keeps them there (it only moves BARs that lie outside the windows).
  WindowAllocator mmio64("64-bit memory", layout::PciMmio64Start(config.memory_mib << 20),
                         layout::kPciMmio64Size);
  WindowAllocator mmio32("32-bit memory", layout::kPciMmio32Start, layout::kPciMmio32Size);
  WindowAllocator io("I/O", kPciIoStart, kPciIoSize);
  auto add_virtio = [&](std::unique_ptr<virtio::VirtioDevice> device) -> absl::Status {
    MINIVMM_ASSIGN_OR_RETURN(uint8_t slot, pci_root_->FreeSlot());
    const uint32_t gsi = PciIntxGsi(slot, 0);
    virtio::VirtioPciResources resources;
    resources.memory = &*memory_;
    resources.mmio_bus = &mmio_bus_;
    resources.write_events = write_events_.get();
    resources.msi = msi_allocator_.get();
    resources.intx = AddIrqSource(gsi);
    resources.intx_line = static_cast<uint8_t>(gsi);
    MINIVMM_ASSIGN_OR_RETURN(resources.bar_address,
                             mmio64.Allocate(virtio::VirtioPciBarLayout::kBarSize));
    const std::string name(device->Name());
    MINIVMM_ASSIGN_OR_RETURN(std::shared_ptr<virtio::VirtioPciFunction> function,
                             virtio::VirtioPciFunction::Create(std::move(device), resources));
    Log(LogLevel::kDebug, "PCI 00:%02x.0: %s, INTx GSI %d", slot, name, gsi);
    virtio_functions_.push_back({slot, function.get()});
    return pci_root_->AddFunction(slot, 0, std::move(function));
  };
  for (const DiskBackend& disk : backends.disks) {
    MINIVMM_RETURN_IF_ERROR(
        add_virtio(std::make_unique<virtio::VirtioBlk>(disk.backend, disk.serial)));
  }
  for (const NetBackendAndMac& net : backends.nets) {
    MINIVMM_RETURN_IF_ERROR(add_virtio(std::make_unique<virtio::VirtioNet>(net.backend, net.mac)));
  }
  if (config.rng) MINIVMM_RETURN_IF_ERROR(add_virtio(std::make_unique<virtio::VirtioRng>()));
  if (backends.vfio != nullptr) {
    MINIVMM_RETURN_IF_ERROR(ReserveMemoryForDma(backends.vfio.get()));
    bar_mapper_ = std::make_unique<KvmBarMapper>(kvm_vm, kFirstBarSlot, kBarSlots);
    vfio_interrupts_ = std::make_unique<KvmVfioInterruptSink>(kvm_vm, msi_allocator_.get());
  }
  std::vector<std::string> host_addresses;
  for (const PassthroughConfig& passthrough : config.passthrough) {
    host_addresses.push_back(passthrough.address);
  }
  MINIVMM_ASSIGN_OR_RETURN(std::vector<GuestPciFunction> placement,
                           PlanGuestFunctions(host_addresses, [this](uint8_t slot) {
                             return pci_root_->SlotEmpty(slot);
                           }));
  for (size_t i = 0; i < config.passthrough.size(); ++i) {
    const PassthroughConfig& passthrough = config.passthrough[i];
    const auto [slot, function_number] = placement[i];
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<VfioDevice> device,
                             backends.vfio->OpenDevice(passthrough.address));
    MINIVMM_ASSIGN_OR_RETURN(VfioPciFunction::BarLayout bars,
                             VfioPciFunction::DescribeBars(*device));
    VfioPciResources resources;
    resources.mmio_bus = &mmio_bus_;
    resources.pio_bus = &pio_bus_;
    resources.memory_mapper = bar_mapper_.get();
    resources.interrupts = vfio_interrupts_.get();
    for (uint8_t pin = 0; pin < resources.intx_gsi_by_pin.size(); ++pin) {
      resources.intx_gsi_by_pin[pin] = PciIntxGsi(slot, pin);
    }
    resources.bar_addresses.assign(6, 0);
    for (const VfioBarDescription& bar : bars.bars) {
      WindowAllocator& window = bar.kind == PciBarKind::kIo         ? io
                                : bar.kind == PciBarKind::kMemory64 ? mmio64
                                                                    : mmio32;
      MINIVMM_ASSIGN_OR_RETURN(resources.bar_addresses[bar.index], window.Allocate(bar.size));
    }
    if (bars.rom_size != 0) {
      MINIVMM_ASSIGN_OR_RETURN(resources.rom_address, mmio32.Allocate(bars.rom_size));
    }
    MINIVMM_ASSIGN_OR_RETURN(std::shared_ptr<VfioPciFunction> function,
                             VfioPciFunction::Create(std::move(device), resources));
    Log(LogLevel::kInfo, "passthrough: host %s is guest PCI 00:%02x.0", passthrough.address, slot);
    MINIVMM_RETURN_IF_ERROR(pci_root_->AddFunction(slot, 0, std::move(function)));
  }
  if (config.console_device == ConsoleDevice::kVirtio) {
    auto device = std::make_unique<virtio::VirtioConsole>(
        [console](std::span<const uint8_t> bytes) { console->Write(bytes); });
    virtio_console_ = device.get();  // owned by its PCI function, which outlives the vCPUs
    MINIVMM_RETURN_IF_ERROR(add_virtio(std::move(device)));
  }
  return absl::OkStatus();
}

absl::Status Vm::ReserveMemoryForDma(VfioContainer* container) {
  const absl::Time start = absl::Now();
  for (const GuestMemory::Region& region : memory_->regions()) {
    // VFIO_IOMMU_MAP_DMA pins every page, faulting it in: after this the guest's memory is
    // resident and the device can DMA anywhere in it (guest-physical = IOVA).
    if (absl::Status status = container->MapDma(region.guest_address, region.size, region.host);
        !status.ok()) {
      for (const GuestMemory::Region& done : memory_->regions()) {
        if (done.guest_address == region.guest_address) break;
        container->UnmapDma(done.guest_address, done.size).IgnoreError();
      }
      return status;
    }
  }
  dma_container_ = container;
  memory_->MarkPinnedForDma();
  Log(LogLevel::kInfo,
      "passthrough: memory reservation: all %d MiB of guest memory prefaulted and pinned for "
      "DMA in %.2f s",
      memory_->total_size() >> 20, absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status Vm::CreateVcpus(const KvmSystem& kvm, uint32_t count, const LinuxEntry* entry) {
  MINIVMM_ASSIGN_OR_RETURN(CpuidList supported, kvm.GetSupportedCpuid());
  for (uint32_t id = 0; id < count; ++id) {
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<KvmVcpu> vcpu, kvm_vm_->CreateVcpu(id));
    MINIVMM_RETURN_IF_ERROR(vcpu->SetCpuid(CpuidForVcpu(supported, id, count)));
    MINIVMM_RETURN_IF_ERROR(SetupVcpuCommon(*vcpu));
    if (id == 0 && entry != nullptr) MINIVMM_RETURN_IF_ERROR(SetupBootVcpu(*vcpu, *entry));
    vcpus_.push_back(std::make_unique<VcpuThread>(std::move(vcpu), &pio_bus_, &mmio_bus_, stop_));
  }
  return absl::OkStatus();
}

void Vm::Start() {
  for (auto& vcpu : vcpus_) vcpu->Start();
}

void Vm::Stop() {
  // Every vCPU is told before any is joined: one may be waiting in a device for something
  // another vCPU holds, and only its own stop request gets it out of KVM_RUN.
  for (auto& vcpu : vcpus_) vcpu->RequestStop();
  for (auto& vcpu : vcpus_) vcpu->Join();
}

uint64_t Vm::pinned_bytes() const { return dma_container_ != nullptr ? memory_->total_size() : 0; }

void Vm::Pause() {
  if (paused_) return;
  for (auto& vcpu : vcpus_) vcpu->Pause();
  for (auto& vcpu : vcpus_) {
    absl::Status noted = vcpu->vcpu().NoteGuestPaused();
    if (!noted.ok() && !absl::IsInvalidArgument(noted)) {
      Log(LogLevel::kDebug, "%s", noted.message());
    }
  }
  paused_ = true;
}

void Vm::Resume() {
  if (!paused_) return;
  for (auto& vcpu : vcpus_) vcpu->Resume();
  paused_ = false;
}

size_t Vm::SendConsoleInput(std::span<const uint8_t> bytes) {
  return virtio_console_ != nullptr ? virtio_console_->SendInput(bytes)
                                    : serial_->EnqueueInput(bytes);
}

std::optional<absl::Duration> Vm::InitStartedAfter() const {
  return debug_port_->init_started_after();
}

ExitCounts Vm::TotalExitCounts() const {
  ExitCounts total{};
  for (const auto& vcpu : vcpus_) {
    for (size_t i = 0; i < total.size(); ++i) total[i] += vcpu->exit_counts()[i];
  }
  return total;
}

}  // namespace minivmm
