// The configuration space a guest sees for a passed-through PCI function: which bytes come
// from the real device, which are emulated, and which are hidden. Pure logic, no VFIO calls:
// the owner (passthrough/vfio_pci_function.h) reads the device's bytes when ReadsDevice says
// so, forwards the writes the effect lists, and acts on the changes it reports (BAR moves,
// decode and interrupt-mode switches).
//
// Virtualized (PCI 3.0 §6.1 keeps these the configuring software's business, not the device's):
// - command, cache line size, latency timer, BIST, BARs, CardBus CIS and interrupt line: kept
//   in a PciConfigSpace. BAR sizes come from the VFIO region sizes, BAR types from the host's
//   BAR registers. The memory/I/O/bus-master/INTx-disable command bits are also forwarded to the
//   device by the owner.
// - the expansion ROM BAR (§6.2.5.2), when the host has a ROM.
// - the capability pointer and each capability's next pointer: only PM, PCI Express, MSI and
//   MSI-X are listed (§6.7); the bytes of other capabilities read 0. The extended capability
//   list reads 0 at 0x100, which means "no extended capabilities" (PCIe Base 4.0 §7.6.3).
// - the MSI (§6.8.1) and MSI-X (§6.8.2) capabilities: the guest programs a shadow copy; the
//   owner turns it into VFIO_DEVICE_SET_IRQS calls and KVM routes.
// Everything else (IDs, class, status, header type, subsystem IDs, interrupt pin, the PM and
// PCIe capability registers, device-specific bytes outside the capabilities) is the device's.
//
// Not thread-safe: the owner serializes accesses with its own lock.
#ifndef MINIVMM_PASSTHROUGH_VFIO_CONFIG_VIRTUALIZER_H_
#define MINIVMM_PASSTHROUGH_VFIO_CONFIG_VIRTUALIZER_H_

#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/pci/pci_config_space.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm {

// The bytes of config space that the virtualizer parses: the type-0 header and the capability
// list (PCI 3.0 §6.7 keeps capabilities in the first 256 bytes).
inline constexpr uint32_t kPciLegacyConfigSize = 256;

// What VFIO reports about the function besides its config space.
struct VfioHostFunction {
  // Sizes of VFIO_PCI_BAR0..5_REGION_INDEX (0: no BAR; the upper half of a 64-bit BAR is 0).
  std::array<uint64_t, PciConfigSpace::kNumBars> bar_sizes{};
  uint64_t rom_size = 0;      // VFIO_PCI_ROM_REGION_INDEX; 0: no ROM
  bool intx = false;          // VFIO_PCI_INTX_IRQ_INDEX count > 0
  uint32_t msi_vectors = 0;   // VFIO_PCI_MSI_IRQ_INDEX count
  uint32_t msix_vectors = 0;  // VFIO_PCI_MSIX_IRQ_INDEX count
};

struct VfioBarDescription {
  int index = 0;
  PciBarKind kind = PciBarKind::kMemory32;
  uint64_t size = 0;
  bool prefetchable = false;
};

// Where the MSI-X table and PBA live (PCI 3.0 §6.8.2.4-6.8.2.5).
struct VfioMsixLayout {
  uint16_t table_size = 0;  // entries
  int table_bar = 0;
  uint64_t table_offset = 0;
  int pba_bar = 0;
  uint64_t pba_offset = 0;
  uint64_t table_bytes() const { return uint64_t{table_size} * 16; }  // 16-byte entries
  uint64_t pba_bytes() const { return (uint64_t{table_size} + 63) / 64 * 8; }
};

// MSI as the guest has programmed it (PCI 3.0 §6.8.1).
struct VfioMsiState {
  bool enabled = false;
  // Multiple Message Enable as a count (1, 2, 4, .. 32), clamped to what the device and VFIO
  // offer. Vector i signals `message` with the low log2(vectors) data bits replaced by i
  // (§6.8.1.6).
  uint32_t vectors = 1;
  MsiMessage message;
  uint32_t mask_bits = 0;  // per-vector masks, when the device has them (§6.8.1.7)
  bool operator==(const VfioMsiState&) const = default;
};

// What a guest config write changed, for the owner to act on.
struct VfioConfigWriteEffect {
  // BARs (and the ROM) whose decoded address or decode state changed.
  std::bitset<PciConfigSpace::kNumBars> bars_changed;
  bool rom_changed = false;
  bool command_changed = false;  // the virtual command register changed
  bool msi_changed = false;      // VfioMsiState changed
  bool msix_changed = false;     // MSI-X Enable or Function Mask changed
  // Guest bytes meant for the device's own registers, to be written to its config region.
  struct DeviceWrite {
    uint32_t offset = 0;
    std::vector<uint8_t> data;
  };
  std::vector<DeviceWrite> device_writes;
};

class VfioConfigVirtualizer {
 public:
  // host_config: the first kPciLegacyConfigSize (or more) bytes of the device's config space.
  // Fails for a function that is not a type-0 header, a BAR whose size or type VFIO and the
  // header disagree on, or a short config read. An MSI/MSI-X capability VFIO cannot drive, or
  // whose table lies outside its BAR, is hidden rather than failing.
  static absl::StatusOr<VfioConfigVirtualizer> Create(std::span<const uint8_t> host_config,
                                                      const VfioHostFunction& host);

  // Guest accesses; the host bridge guarantees size 1, 2 or 4, aligned, inside config space.
  // ReadsDevice says whether any byte of the access is the device's; if so the caller fills data
  // from the device's config region first, and Read overlays the virtual bytes.
  bool ReadsDevice(uint32_t offset, size_t size) const;
  void Read(uint32_t offset, std::span<uint8_t> data) const;
  VfioConfigWriteEffect Write(uint32_t offset, std::span<const uint8_t> data);

  // Firmware-style assignment before the guest runs (see PciConfigSpace::SetBarAddress).
  absl::Status SetBarAddress(int index, uint64_t address);
  // Address for the expansion ROM: aligned to the ROM size, below 4 GiB. Left disabled.
  absl::Status SetRomAddress(uint64_t address);
  void SetInterruptLine(uint8_t line);

  const std::vector<VfioBarDescription>& bars() const { return bars_; }
  // The BAR's guest address while the guest has it decoding (and the function is in D0), else
  // nullopt.
  std::optional<uint64_t> BarMapping(int index) const;
  uint64_t rom_size() const { return rom_size_; }
  // The ROM's guest address while enabled, memory decoding is on (PCI 3.0 §6.2.5.2) and the
  // function is in D0.
  std::optional<uint64_t> RomMapping() const;
  uint16_t command() const { return header_.command(); }
  uint8_t interrupt_pin() const { return header_.raw()[0x3d]; }
  // The power state the guest last put the function in through its PM capability (0: D0, 3:
  // D3hot). Outside D0 a function decodes no BAR (PCI PM 1.2 §5.4), and since Linux 5.19
  // vfio-pci faults BAR mmaps in D3hot: guest slots over them would make KVM_RUN fail.
  uint8_t power_state() const { return power_state_; }

  // The MSI-X structures, if the capability is exposed.
  const std::optional<VfioMsixLayout>& msix() const { return msix_layout_; }
  bool msix_enabled() const;
  bool msix_function_masked() const;
  // The MSI state (disabled when the capability is not exposed).
  VfioMsiState msi() const;

  // IDs of the capabilities the guest sees, in list order (for diagnostics).
  std::vector<uint8_t> visible_capabilities() const;

 private:
  // Where each of the first 256 bytes comes from; bytes past 256 read 0.
  enum class Source : uint8_t {
    kDevice,          // read from the device, writes forwarded
    kDeviceReadOnly,  // read from the device, writes dropped
    kHeader,          // header_, through its write masks
    kRom,             // rom_register_
    kShadow,          // shadow_, through shadow_mask_
    kZero,            // hidden: reads 0, writes dropped
  };
  struct Capability {
    uint8_t id = 0;
    uint8_t offset = 0;
  };

  explicit VfioConfigVirtualizer(const PciIds& ids);
  absl::Status AddBars(std::span<const uint8_t> config, const VfioHostFunction& host);
  void AddCapabilities(std::span<const uint8_t> config, const VfioHostFunction& host);
  // Exposes the MSI / MSI-X capability at `offset` (whose bytes end before `end`) as a shadow;
  // false if it must stay hidden.
  bool ShadowMsi(std::span<const uint8_t> config, uint8_t offset, uint32_t end,
                 const VfioHostFunction& host);
  bool ShadowMsix(std::span<const uint8_t> config, uint8_t offset, uint32_t end,
                  const VfioHostFunction& host);
  void SetSource(uint32_t begin, uint32_t end, Source source);
  void SetShadow(uint32_t offset, uint32_t value, uint32_t mask, int bytes);
  uint32_t Shadow(uint32_t offset, int bytes) const;
  uint32_t RomWriteMask() const;
  void WriteRun(Source source, uint32_t offset, std::span<const uint8_t> data,
                VfioConfigWriteEffect& effect);

  PciConfigSpace header_;
  std::vector<VfioBarDescription> bars_;
  std::array<Source, kPciLegacyConfigSize> source_{};
  std::array<uint8_t, kPciLegacyConfigSize> shadow_{};
  std::array<uint8_t, kPciLegacyConfigSize> shadow_mask_{};
  std::vector<Capability> visible_;
  uint64_t rom_size_ = 0;
  uint32_t rom_register_ = 0;
  std::optional<uint8_t> msi_offset_;
  uint32_t msi_max_vectors_ = 1;
  std::optional<uint8_t> msix_offset_;
  std::optional<VfioMsixLayout> msix_layout_;
  std::optional<uint8_t> pm_offset_;
  uint8_t power_state_ = 0;  // PCI_PM_CTRL_STATE_MASK bits of the guest's last PMCSR write
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_CONFIG_VIRTUALIZER_H_
