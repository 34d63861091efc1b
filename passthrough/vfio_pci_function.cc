#include "passthrough/vfio_pci_function.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_format.h"
#include "passthrough/vfio_device_fd.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

// The GSI the function's Interrupt Pin register (1..4 = INTA#..INTD#, PCI 3.0 §6.2.4) is wired
// to, or nullopt when it has no pin (0) or a reserved value.
std::optional<uint32_t> IntxGsi(const VfioConfigVirtualizer& config,
                                const VfioPciResources& resources) {
  const uint8_t pin = config.interrupt_pin();
  if (pin < 1 || pin > resources.intx_gsi_by_pin.size()) return std::nullopt;
  return resources.intx_gsi_by_pin[pin - 1];
}

// Command bits that must reach the device (PCI 3.0 §6.2.2): decode enables (the device answers
// the mmapped BAR accesses itself), Bus Master (the device's DMA) and Interrupt Disable (vfio-pci
// mediates it for INTx masking). Parity/SERR reporting stays virtual.
constexpr uint16_t kForwardedCommandBits =
    PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;

struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;
};

uint64_t AlignDown(uint64_t value, uint64_t alignment) { return value / alignment * alignment; }
uint64_t AlignUp(uint64_t value, uint64_t alignment) {
  return AlignDown(value + alignment - 1, alignment);
}

uint64_t HostPageSize() { return static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)); }

// The page-aligned parts of a BAR's mmap areas that lie outside every hole. Holes (the MSI-X
// table and PBA) grow to whole pages: a KVM memory slot maps pages, and the table must trap.
std::vector<VfioMmapArea> MappableAreas(std::span<const VfioMmapArea> areas, uint64_t bar_size,
                                        std::span<const ByteRange> holes, uint64_t page) {
  std::vector<VfioMmapArea> result;
  for (const VfioMmapArea& area : areas) {
    if (area.offset >= bar_size) continue;
    const uint64_t area_end = area.offset + std::min(area.size, bar_size - area.offset);
    std::vector<ByteRange> pieces = {{AlignUp(area.offset, page), AlignDown(area_end, page)}};
    for (const ByteRange& hole : holes) {
      const uint64_t hole_begin = AlignDown(hole.begin, page);
      const uint64_t hole_end = AlignUp(hole.end, page);
      std::vector<ByteRange> kept;
      for (const ByteRange& piece : pieces) {
        if (piece.begin < hole_begin) {
          kept.push_back({piece.begin, std::min(piece.end, hole_begin)});
        }
        if (piece.end > hole_end) kept.push_back({std::max(piece.begin, hole_end), piece.end});
      }
      pieces = std::move(kept);
    }
    for (const ByteRange& piece : pieces) {
      if (piece.end > piece.begin) result.push_back({piece.begin, piece.end - piece.begin});
    }
  }
  return result;
}

// What Create and DescribeBars learn from the device before building anything.
struct HostSnapshot {
  std::array<uint8_t, kPciLegacyConfigSize> config{};
  VfioHostFunction host;
};

absl::StatusOr<HostSnapshot> ReadHost(VfioDevice& device) {
  HostSnapshot snapshot;
  MINIVMM_RETURN_IF_ERROR(
      WithContext(device.ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, 0, snapshot.config),
                  absl::StrFormat("%s: reading config space", device.name())));
  for (int i = 0; i < PciConfigSpace::kNumBars; ++i) {
    absl::StatusOr<VfioRegionInfo> info = device.GetRegionInfo(VFIO_PCI_BAR0_REGION_INDEX + i);
    if (!info.ok()) {
      return WithContext(info.status(),
                         absl::StrFormat("%s: BAR %d region info", device.name(), i));
    }
    snapshot.host.bar_sizes[i] = info->size;
  }
  // A ROM the kernel cannot describe is simply not offered to the guest.
  absl::StatusOr<VfioRegionInfo> rom = device.GetRegionInfo(VFIO_PCI_ROM_REGION_INDEX);
  if (rom.ok()) {
    snapshot.host.rom_size = rom->readable ? rom->size : 0;
  } else {
    Log(LogLevel::kInfo, "%s: no expansion ROM: %s", device.name(), rom.status().ToString());
  }
  std::array<uint32_t, 3> counts{};
  for (uint32_t index :
       {VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX}) {
    absl::StatusOr<VfioIrqInfo> info = device.GetIrqInfo(index);
    if (!info.ok()) {
      return WithContext(info.status(), absl::StrFormat("%s: %s interrupt info", device.name(),
                                                        VfioPciIrqName(index)));
    }
    counts[index] = info->eventfd ? info->count : 0;
  }
  snapshot.host.intx = counts[VFIO_PCI_INTX_IRQ_INDEX] > 0;
  snapshot.host.msi_vectors = counts[VFIO_PCI_MSI_IRQ_INDEX];
  snapshot.host.msix_vectors = counts[VFIO_PCI_MSIX_IRQ_INDEX];
  return snapshot;
}

// A host mmap of part of a BAR; munmapped on destruction.
class HostMapping {
 public:
  HostMapping(void* address, uint64_t size) : address_(address), size_(size) {}
  HostMapping(HostMapping&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), size_(other.size_) {}
  HostMapping& operator=(HostMapping&&) = delete;
  ~HostMapping() {
    if (address_ != nullptr) ::munmap(address_, size_);
  }
  void* get() const { return address_; }

 private:
  void* address_;
  uint64_t size_;
};

}  // namespace

struct VfioPciFunction::Bar {
  struct Area {
    uint64_t offset;  // in the BAR
    uint64_t size;
    HostMapping host;
  };

  ~Bar() {
    // The guest must stop reaching the host mapping before it goes away.
    guest_mappings.clear();
    registration = BusRegistration();
  }

  // Fixed at Init.
  VfioBarDescription description;
  uint32_t region = 0;  // VFIO_PCI_BARn_REGION_INDEX
  std::vector<Area> areas;
  std::optional<ByteRange> msix_table;  // where the MSI-X structures are, offsets in the BAR
  std::optional<ByteRange> msix_pba;
  std::shared_ptr<BarDevice> device;

  // Guarded by the function's mutex_.
  std::optional<uint64_t> mapped_at;
  BusRegistration registration;
  std::vector<std::unique_ptr<BarMemoryMapper::Mapping>> guest_mappings;
};

// The trapped parts of a BAR as a bus device. Holds the function weakly: the function drops
// the registration before it goes away.
class VfioPciFunction::BarDevice : public BusDevice {
 public:
  BarDevice(VfioPciFunction* function, const Bar* bar) : function_(function), bar_(bar) {}
  std::string_view Name() const override { return function_->Name(); }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    function_->ReadBar(*bar_, offset, data);
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    function_->WriteBar(*bar_, offset, data);
  }

 private:
  VfioPciFunction* const function_;
  const Bar* const bar_;
};

class VfioPciFunction::RomDevice : public BusDevice {
 public:
  explicit RomDevice(VfioPciFunction* function) : function_(function) {}
  std::string_view Name() const override { return function_->Name(); }
  void Read(uint64_t offset, std::span<uint8_t> data) override { function_->ReadRom(offset, data); }
  // A ROM ignores writes (PCI 3.0 §6.3.1).
  void Write(uint64_t, std::span<const uint8_t>) override {}

 private:
  VfioPciFunction* const function_;
};

// The MsiInterrupt behind one emulated MSI-X table entry: routing it allocates (on first use)
// and programs the entry's VfioVector. MsixTable calls it only from WriteTable and SetControl,
// which this function calls with mutex_ held.
class VfioPciFunction::MsixVector : public MsiInterrupt {
 public:
  MsixVector(VfioPciFunction* function, uint16_t index) : function_(function), index_(index) {}
  absl::Status SetMessage(const MsiMessage& message) override {
    function_->mutex_.AssertHeld();
    return function_->interrupts_->RouteMsixVector(index_, message);
  }
  void Trigger() override {
    function_->mutex_.AssertHeld();
    function_->interrupts_->TriggerMsixVector(index_);
  }
  void SetMasked(bool masked) override {
    function_->mutex_.AssertHeld();
    if (absl::Status status = function_->interrupts_->MaskMsixVector(index_, masked);
        !status.ok()) {
      Log(LogLevel::kWarning, "%s: %s", function_->name_, status.ToString());
    }
  }
  bool HoldsInterrupt() const override {
    function_->mutex_.AssertHeld();
    return function_->interrupts_->MsixVectorHoldsInterrupt(index_);
  }

 private:
  VfioPciFunction* const function_;
  const uint16_t index_;
};

absl::StatusOr<VfioPciFunction::BarLayout> VfioPciFunction::DescribeBars(VfioDevice& device) {
  MINIVMM_ASSIGN_OR_RETURN(HostSnapshot snapshot, ReadHost(device));
  absl::StatusOr<VfioConfigVirtualizer> config =
      VfioConfigVirtualizer::Create(snapshot.config, snapshot.host);
  if (!config.ok()) return WithContext(config.status(), device.name());
  return BarLayout{.bars = config->bars(), .rom_size = config->rom_size()};
}

absl::StatusOr<std::shared_ptr<VfioPciFunction>> VfioPciFunction::Create(
    std::unique_ptr<VfioDevice> device, const VfioPciResources& resources) {
  if (device == nullptr || resources.mmio_bus == nullptr || resources.pio_bus == nullptr ||
      resources.memory_mapper == nullptr || resources.interrupts == nullptr) {
    return absl::InvalidArgumentError("VFIO PCI function: missing device, bus, mapper or sink");
  }
  // Start from a clean device: whatever the host or a previous user left behind (pending
  // interrupts, DMA, enabled decoders) must not leak into the guest.
  if (device->supports_reset()) {
    if (absl::Status status = device->Reset(); !status.ok()) {
      Log(LogLevel::kWarning, "%s: reset before use failed, continuing: %s", device->name(),
          status.ToString());
    }
  }
  MINIVMM_ASSIGN_OR_RETURN(HostSnapshot snapshot, ReadHost(*device));
  absl::StatusOr<VfioConfigVirtualizer> config =
      VfioConfigVirtualizer::Create(snapshot.config, snapshot.host);
  if (!config.ok()) return WithContext(config.status(), device->name());
  for (const VfioBarDescription& bar : config->bars()) {
    if (static_cast<size_t>(bar.index) >= resources.bar_addresses.size()) continue;
    const uint64_t address = resources.bar_addresses[bar.index];
    if (address == 0) continue;
    if (absl::Status status = config->SetBarAddress(bar.index, address); !status.ok()) {
      return WithContext(status, device->name());
    }
  }
  if (resources.rom_address != 0 && config->rom_size() != 0) {
    if (absl::Status status = config->SetRomAddress(resources.rom_address); !status.ok()) {
      return WithContext(status, device->name());
    }
  }
  // The interrupt line register is 8 bits (PCI 3.0 §6.2.4); GSIs beyond it, and a function
  // without INTx, are reported as "unknown" (0xff), which guests using ACPI routing ignore.
  const std::optional<uint32_t> intx_gsi = IntxGsi(*config, resources);
  config->SetInterruptLine(intx_gsi && *intx_gsi <= 0xfe ? *intx_gsi : 0xff);

  std::shared_ptr<VfioPciFunction> function(
      new VfioPciFunction(std::move(device), resources, *std::move(config)));
  MINIVMM_RETURN_IF_ERROR(function->Init());
  return function;
}

VfioPciFunction::VfioPciFunction(std::unique_ptr<VfioDevice> device,
                                 const VfioPciResources& resources, VfioConfigVirtualizer config)
    : device_(std::move(device)),
      name_("vfio " + device_->name()),
      resources_(resources),
      config_(std::move(config)) {}

absl::Status VfioPciFunction::Init() {
  absl::MutexLock lock(&mutex_);
  for (const VfioBarDescription& bar : config_.bars()) MINIVMM_RETURN_IF_ERROR(InitBar(bar));
  if (config_.rom_size() != 0) rom_device_ = std::make_shared<RomDevice>(this);
  const uint16_t msix_size = config_.msix() ? config_.msix()->table_size : 0;
  MINIVMM_ASSIGN_OR_RETURN(interrupts_,
                           VfioInterrupts::Create(device_.get(), resources_.interrupts,
                                                  IntxGsi(config_, resources_), msix_size));
  if (msix_size != 0) {
    std::vector<std::unique_ptr<MsiInterrupt>> adapters;
    for (uint16_t i = 0; i < msix_size; ++i) {
      adapters.push_back(std::make_unique<MsixVector>(this, i));
    }
    msix_table_ = std::make_unique<MsixTable>(std::move(adapters));
  }
  // The guest starts with decoding and bus mastering off, whatever the host left on.
  MINIVMM_RETURN_IF_ERROR(SyncCommand());
  UpdateMappings(/*command_changed=*/false);
  return UpdateInterrupts();
}

absl::Status VfioPciFunction::InitBar(const VfioBarDescription& description) {
  auto bar = std::make_unique<Bar>();
  bar->description = description;
  bar->region = VFIO_PCI_BAR0_REGION_INDEX + description.index;
  if (const std::optional<VfioMsixLayout>& msix = config_.msix()) {
    if (msix->table_bar == description.index) {
      bar->msix_table = ByteRange{msix->table_offset, msix->table_offset + msix->table_bytes()};
    }
    if (msix->pba_bar == description.index) {
      bar->msix_pba = ByteRange{msix->pba_offset, msix->pba_offset + msix->pba_bytes()};
    }
  }
  if (description.kind != PciBarKind::kIo) {
    absl::StatusOr<VfioRegionInfo> info = device_->GetRegionInfo(bar->region);
    if (!info.ok()) {
      return WithContext(info.status(),
                         absl::StrFormat("%s: BAR %d region info", name_, description.index));
    }
    std::vector<ByteRange> holes;
    if (bar->msix_table) holes.push_back(*bar->msix_table);
    if (bar->msix_pba) holes.push_back(*bar->msix_pba);
    for (const VfioMmapArea& area :
         MappableAreas(info->mmap_areas, description.size, holes, HostPageSize())) {
      absl::StatusOr<void*> host = device_->MmapRegion(bar->region, area.offset, area.size);
      if (!host.ok()) {
        // Correct, only slower: the bus registration covers the whole BAR.
        Log(LogLevel::kWarning, "%s: BAR %d [%#x, +%#x) will trap, mmap failed: %s", name_,
            description.index, area.offset, area.size, host.status().ToString());
        continue;
      }
      bar->areas.push_back(Bar::Area{area.offset, area.size, HostMapping(*host, area.size)});
    }
  }
  bar->device = std::make_shared<BarDevice>(this, bar.get());
  bars_.push_back(std::move(bar));
  return absl::OkStatus();
}

VfioPciFunction::~VfioPciFunction() {
  absl::MutexLock lock(&mutex_);
  // The interrupts go first: VFIO must stop signalling eventfds that are about to be closed,
  // and a reset with MSI-X still enabled would leave the host's vectors allocated.
  if (interrupts_ != nullptr) {
    if (absl::Status status = interrupts_->Disable(); !status.ok()) {
      Log(LogLevel::kWarning, "%s: %s", name_, status.ToString());
    }
  }
  for (const std::unique_ptr<Bar>& bar : bars_) {
    bar->guest_mappings.clear();
    bar->registration = BusRegistration();
    bar->mapped_at.reset();
  }
  rom_registration_ = BusRegistration();
  if (device_->supports_reset()) {
    if (absl::Status status = device_->Reset(); !status.ok()) {
      Log(LogLevel::kWarning, "%s: reset on release failed: %s", name_, status.ToString());
    }
    return;
  }
  // No reset: at least stop the device's DMA and decoding before the host gets it back.
  config_.Write(PCI_COMMAND, std::array<uint8_t, 2>{0, 0});
  if (absl::Status status = SyncCommand(); !status.ok()) {
    Log(LogLevel::kWarning, "%s: %s", name_, status.ToString());
  }
}

void VfioPciFunction::ReadConfig(uint32_t offset, std::span<uint8_t> data) {
  absl::MutexLock lock(&mutex_);
  if (config_.ReadsDevice(offset, data.size())) {
    absl::Status status = device_->ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, offset, data);
    if (!status.ok()) {
      // What a read of an absent function returns (PCI 3.0 §6.1).
      std::fill(data.begin(), data.end(), 0xff);
      MINIVMM_LOG_GUEST_ERROR("%s: config read at %#x: %s", name_, offset, status.ToString());
    }
  }
  config_.Read(offset, data);
}

void VfioPciFunction::WriteConfig(uint32_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mutex_);
  const VfioConfigWriteEffect effect = config_.Write(offset, data);
  const bool mappings_changed =
      effect.bars_changed.any() || effect.rom_changed || effect.command_changed;
  // Mappings that end go before the device hears of the write: a KVM slot over a BAR the
  // device no longer decodes (memory decode off; a D-state other than D0, where vfio-pci
  // faults BAR mmaps) would make the guest's next access fail KVM_RUN.
  if (mappings_changed) UnmapStale();
  for (const VfioConfigWriteEffect::DeviceWrite& write : effect.device_writes) {
    absl::Status status =
        device_->WriteRegion(VFIO_PCI_CONFIG_REGION_INDEX, write.offset, write.data);
    if (!status.ok()) {
      MINIVMM_LOG_GUEST_ERROR("%s: config write at %#x: %s", name_, write.offset,
                              status.ToString());
    }
  }
  if (mappings_changed) UpdateMappings(effect.command_changed);
  if (effect.msi_changed || effect.msix_changed) {
    if (absl::Status status = UpdateInterrupts(); !status.ok()) {
      Log(LogLevel::kWarning, "%s: %s", name_, status.ToString());
    }
  }
  // After VFIO's side is set up, so that pending vectors the table delivers reach the guest.
  if (effect.msix_changed && msix_table_ != nullptr) {
    msix_table_->SetControl(config_.msix_enabled(), config_.msix_function_masked());
  }
}

void VfioPciFunction::UpdateMappings(bool command_changed) {
  // Down first: a KVM slot over a BAR whose decoding the device has turned off would fault
  // (vfio-pci refuses mmap faults while memory decode is off).
  UnmapStale();
  if (command_changed) {
    if (absl::Status status = SyncCommand(); !status.ok()) {
      Log(LogLevel::kWarning, "%s: %s", name_, status.ToString());
    }
  }
  for (const std::unique_ptr<Bar>& bar : bars_) {
    const std::optional<uint64_t> wanted = config_.BarMapping(bar->description.index);
    if (wanted && !bar->mapped_at) MapBar(*bar, *wanted);
  }
  UpdateRom();
}

void VfioPciFunction::UnmapStale() {
  for (const std::unique_ptr<Bar>& bar : bars_) {
    if (bar->mapped_at == config_.BarMapping(bar->description.index)) continue;
    bar->guest_mappings.clear();
    bar->registration = BusRegistration();
    bar->mapped_at.reset();
  }
  if (rom_mapped_ != config_.RomMapping()) {
    rom_registration_ = BusRegistration();
    rom_mapped_.reset();
  }
}

void VfioPciFunction::MapBar(Bar& bar, uint64_t address) {
  const bool io = bar.description.kind == PciBarKind::kIo;
  Bus* bus = io ? resources_.pio_bus : resources_.mmio_bus;
  absl::StatusOr<BusRegistration> registration =
      bus->Register(address, bar.description.size, bar.device);
  if (!registration.ok()) {
    MINIVMM_LOG_GUEST_ERROR("%s: BAR %d not mapped: %s", name_, bar.description.index,
                            registration.status().ToString());
    return;
  }
  bar.registration = *std::move(registration);
  bar.mapped_at = address;
  for (const Bar::Area& area : bar.areas) {
    absl::StatusOr<std::unique_ptr<BarMemoryMapper::Mapping>> mapping =
        resources_.memory_mapper->Map(address + area.offset, area.size, area.host.get());
    if (!mapping.ok()) {
      // The bus registration still covers the area: accesses trap and are forwarded.
      MINIVMM_LOG_GUEST_ERROR("%s: BAR %d at %#x + %#x will trap: %s", name_, bar.description.index,
                              address, area.offset, mapping.status().ToString());
      continue;
    }
    bar.guest_mappings.push_back(*std::move(mapping));
  }
}

void VfioPciFunction::UpdateRom() {
  const std::optional<uint64_t> wanted = config_.RomMapping();
  if (!wanted || rom_mapped_) return;
  absl::StatusOr<BusRegistration> registration =
      resources_.mmio_bus->Register(*wanted, config_.rom_size(), rom_device_);
  if (!registration.ok()) {
    MINIVMM_LOG_GUEST_ERROR("%s: ROM not mapped: %s", name_, registration.status().ToString());
    return;
  }
  rom_registration_ = *std::move(registration);
  rom_mapped_ = wanted;
}

absl::Status VfioPciFunction::SyncCommand() {
  std::array<uint8_t, 2> bytes{};
  MINIVMM_RETURN_IF_ERROR(
      WithContext(device_->ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, bytes),
                  absl::StrFormat("%s: reading the command register", name_)));
  const uint16_t device_command = static_cast<uint16_t>(bytes[0] | bytes[1] << 8);
  const uint16_t command =
      (device_command & ~kForwardedCommandBits) | (config_.command() & kForwardedCommandBits);
  if (command == device_command) return absl::OkStatus();
  bytes = {static_cast<uint8_t>(command), static_cast<uint8_t>(command >> 8)};
  return WithContext(device_->WriteRegion(VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, bytes),
                     absl::StrFormat("%s: writing command %#06x", name_, command));
}

void VfioPciFunction::ReadBar(const Bar& bar, uint64_t offset, std::span<uint8_t> data) {
  if (bar.msix_table && offset >= bar.msix_table->begin && offset < bar.msix_table->end) {
    msix_table_->ReadTable(offset - bar.msix_table->begin, data);
    return;
  }
  // Pending bits are the emulated table's and the held interrupts of masked vectors (their
  // eventfds): the device's own PBA reflects the host's masking, not the guest's.
  if (bar.msix_pba && offset >= bar.msix_pba->begin && offset < bar.msix_pba->end) {
    absl::MutexLock lock(&mutex_);  // the vectors' HoldsInterrupt reads interrupts_
    msix_table_->ReadPba(offset - bar.msix_pba->begin, data);
    return;
  }
  if (absl::Status status = device_->ReadRegion(bar.region, offset, data); !status.ok()) {
    std::fill(data.begin(), data.end(), 0xff);
    MINIVMM_LOG_GUEST_ERROR("%s: BAR %d read at %#x: %s", name_, bar.description.index, offset,
                            status.ToString());
  }
}

void VfioPciFunction::WriteBar(const Bar& bar, uint64_t offset, std::span<const uint8_t> data) {
  if (bar.msix_table && offset >= bar.msix_table->begin && offset < bar.msix_table->end) {
    absl::MutexLock lock(&mutex_);
    msix_table_->WriteTable(offset - bar.msix_table->begin, data);
    return;
  }
  if (bar.msix_pba && offset >= bar.msix_pba->begin && offset < bar.msix_pba->end) {
    MINIVMM_LOG_GUEST_ERROR("%s: write to the read-only MSI-X PBA at %#x ignored", name_, offset);
    return;
  }
  if (absl::Status status = device_->WriteRegion(bar.region, offset, data); !status.ok()) {
    MINIVMM_LOG_GUEST_ERROR("%s: BAR %d write at %#x: %s", name_, bar.description.index, offset,
                            status.ToString());
  }
}

void VfioPciFunction::ReadRom(uint64_t offset, std::span<uint8_t> data) {
  absl::Status status = device_->ReadRegion(VFIO_PCI_ROM_REGION_INDEX, offset, data);
  if (!status.ok()) {
    std::fill(data.begin(), data.end(), 0xff);
    MINIVMM_LOG_GUEST_ERROR("%s: ROM read at %#x: %s", name_, offset, status.ToString());
  }
}

absl::Status VfioPciFunction::UpdateInterrupts() {
  return interrupts_->Update(config_.msix_enabled(), config_.msi());
}

}  // namespace minivmm
