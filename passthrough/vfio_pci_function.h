// A host PCI function passed through to the guest with VFIO. Config space is virtualized by a
// VfioConfigVirtualizer; this class does the plumbing behind it:
// - BARs: the mmap-able parts of memory BARs are mapped into guest-physical space (a KVM memory
//   slot per area, through BarMemoryMapper) while the guest has them decoding, so guest accesses
//   reach the device without exits. The rest of each BAR (parts VFIO will not mmap, the pages
//   holding the MSI-X table and PBA, sub-page BARs) is trapped on the MMIO bus and forwarded
//   with VfioDevice::ReadRegion/WriteRegion; I/O BARs likewise on the port-I/O bus. The
//   expansion ROM is trapped (reads are rare: option ROM scans and driver probes).
// - interrupts (passthrough/vfio_interrupts.h): eventfds KVM injects directly; the MSI-X table
//   is emulated (devices/pci/msix.h) and trapped, its entries' routes go to per-entry vectors.
// - reset: the device is reset when created and again, after its interrupts are torn down, when
//   destroyed, so that it returns to the host clean.
#ifndef MINIVMM_PASSTHROUGH_VFIO_PCI_FUNCTION_H_
#define MINIVMM_PASSTHROUGH_VFIO_PCI_FUNCTION_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_function.h"
#include "passthrough/bar_memory_mapper.h"
#include "passthrough/vfio_config_virtualizer.h"
#include "passthrough/vfio_device.h"
#include "passthrough/vfio_interrupts.h"
#include "vmm/core/bus.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm {

struct VfioPciResources {
  Bus* mmio_bus = nullptr;  // trapped parts of memory BARs, the MSI-X table and PBA, the ROM
  Bus* pio_bus = nullptr;   // I/O BARs
  BarMemoryMapper* memory_mapper = nullptr;
  VfioInterruptSink* interrupts = nullptr;
  // The GSIs INTA#..INTD# of the function's slot are wired to (the ACPI _PRT's swizzle). The
  // function's own Interrupt Pin register picks one (a GPU's audio function is often INTB#);
  // the interrupt line register reports it.
  std::array<uint32_t, 4> intx_gsi_by_pin{};
  // Firmware-style BAR assignment, by BAR index (see VfioPciFunction::DescribeBars for sizes
  // and types). A missing or zero entry leaves that BAR for the guest to assign.
  std::vector<uint64_t> bar_addresses;
  uint64_t rom_address = 0;  // 0: left for the guest
};

class VfioPciFunction : public PciFunction {
 public:
  // The device's BARs and ROM size as the guest will see them, so the VMM can assign addresses
  // before calling Create.
  struct BarLayout {
    std::vector<VfioBarDescription> bars;
    uint64_t rom_size = 0;
  };
  static absl::StatusOr<BarLayout> DescribeBars(VfioDevice& device);

  // Resets the device (if it can be), reads its config space, mmaps its BARs and sets up INTx.
  // The buses, mapper and sink must outlive the function.
  static absl::StatusOr<std::shared_ptr<VfioPciFunction>> Create(std::unique_ptr<VfioDevice> device,
                                                                 const VfioPciResources& resources);
  // Disables the device's interrupts, unmaps its BARs from the guest and resets it.
  ~VfioPciFunction() override;

  std::string_view Name() const override { return name_; }
  void ReadConfig(uint32_t offset, std::span<uint8_t> data) override;
  void WriteConfig(uint32_t offset, std::span<const uint8_t> data) override;

 private:
  class BarDevice;
  class RomDevice;
  class MsixVector;
  struct Bar;

  VfioPciFunction(std::unique_ptr<VfioDevice> device, const VfioPciResources& resources,
                  VfioConfigVirtualizer config);
  absl::Status Init();
  absl::Status InitBar(const VfioBarDescription& description) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Trapped BAR and ROM accesses, offsets relative to the BAR.
  void ReadBar(const Bar& bar, uint64_t offset, std::span<uint8_t> data);
  void WriteBar(const Bar& bar, uint64_t offset, std::span<const uint8_t> data);
  void ReadRom(uint64_t offset, std::span<uint8_t> data);

  // Brings the BAR/ROM mappings in line with the virtual config: mappings that changed come
  // down before the device's decode bits are updated, new ones go up after.
  void UpdateMappings(bool command_changed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The first half of that: drops the mappings the virtual config no longer wants.
  void UnmapStale() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void MapBar(Bar& bar, uint64_t address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void UpdateRom() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Copies the guest's memory/I/O/bus-master/INTx-disable command bits to the device.
  absl::Status SyncCommand() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Puts VFIO in the interrupt mode the guest's config asks for.
  absl::Status UpdateInterrupts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Declared first so that it is destroyed last: BAR mmaps and eventfds go before its fd.
  const std::unique_ptr<VfioDevice> device_;
  const std::string name_;
  const VfioPciResources resources_;

  absl::Mutex mutex_;
  VfioConfigVirtualizer config_ ABSL_GUARDED_BY(mutex_);
  // Fixed after Init, so the bus devices read them without the lock; each Bar's mapping state
  // is guarded by mutex_.
  std::vector<std::unique_ptr<Bar>> bars_;
  std::shared_ptr<RomDevice> rom_device_;
  BusRegistration rom_registration_ ABSL_GUARDED_BY(mutex_);
  std::optional<uint64_t> rom_mapped_ ABSL_GUARDED_BY(mutex_);

  std::unique_ptr<VfioInterrupts> interrupts_ ABSL_GUARDED_BY(mutex_);
  // The emulated table; its vectors are MsixVector adapters onto interrupts_. Thread-safe
  // itself; the calls that route vectors (WriteTable, SetControl) are made under mutex_.
  std::unique_ptr<MsixTable> msix_table_;
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_PCI_FUNCTION_H_
