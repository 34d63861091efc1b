#include "passthrough/vfio_config_virtualizer.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <bit>
#include <bitset>
#include <map>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

// A function's capability list has at most (256 - 64) / 4 entries (PCI 3.0 §6.7: dword aligned,
// after the header); a longer walk means a loop in the list.
constexpr size_t kMaxCapabilities = (kPciLegacyConfigSize - PCI_STD_HEADER_SIZEOF) / 4;

// The ROM BAR decodes at least 2 KiB: bits 10..1 are reserved (PCI 3.0 §6.2.5.2).
constexpr uint64_t kMinRomSize = 2048;
constexpr uint64_t kMaxRomSize = uint64_t{1} << 31;

// MSI Multiple Message Capable/Enable encode up to 32 vectors as log2 (PCI 3.0 §6.8.1.3).
constexpr uint32_t kMaxMsiLog2 = 5;

// A BAR Indicator Register names BAR 0..5; 6 and 7 are reserved (PCI 3.0 §6.8.2.4).
constexpr uint32_t kMaxBir = 5;

uint16_t GetU16(std::span<const uint8_t> bytes, uint32_t at) {
  return static_cast<uint16_t>(bytes[at] | bytes[at + 1] << 8);
}

uint32_t GetU32(std::span<const uint8_t> bytes, uint32_t at) {
  return uint32_t{GetU16(bytes, at)} | uint32_t{GetU16(bytes, at + 2)} << 16;
}

// Offsets inside the MSI capability, which depend on its 64-bit and per-vector-mask flags
// (PCI 3.0 §6.8.1, figures 6-9 to 6-12).
struct MsiLayout {
  bool is_64 = false;
  bool per_vector_mask = false;
  uint32_t data() const { return is_64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32; }
  uint32_t mask() const { return is_64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32; }
  // Rounded to a dword: the upper half of the data dword (Extended Message Data, PCIe Base 4.0
  // §7.7.1.5) is shadowed as 0 too, so the guest never sees it as supported.
  uint32_t size() const { return (is_64 ? 0x10 : 0x0c) + (per_vector_mask ? 8 : 0); }
};

MsiLayout MsiLayoutFor(uint16_t control) {
  return MsiLayout{.is_64 = (control & PCI_MSI_FLAGS_64BIT) != 0,
                   .per_vector_mask = (control & PCI_MSI_FLAGS_MASKBIT) != 0};
}

}  // namespace

VfioConfigVirtualizer::VfioConfigVirtualizer(const PciIds& ids) : header_(ids) {}

absl::StatusOr<VfioConfigVirtualizer> VfioConfigVirtualizer::Create(
    std::span<const uint8_t> host_config, const VfioHostFunction& host) {
  if (host_config.size() < kPciLegacyConfigSize) {
    return absl::InvalidArgumentError(absl::StrFormat("config space: %d bytes, need the first %d",
                                                      host_config.size(), kPciLegacyConfigSize));
  }
  const uint16_t vendor = GetU16(host_config, PCI_VENDOR_ID);
  if (vendor == 0xffff || vendor == 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("config space: vendor ID %#06x, no function responds", vendor));
  }
  const uint8_t header_type = host_config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
  if (header_type != PCI_HEADER_TYPE_NORMAL) {
    return absl::UnimplementedError(absl::StrFormat(
        "config space: header type %d; only endpoints (type 0) can be passed through (PCI 3.0 "
        "§6.1)",
        header_type));
  }
  const PciIds ids{
      .vendor_id = vendor,
      .device_id = GetU16(host_config, PCI_DEVICE_ID),
      .subsystem_vendor_id = GetU16(host_config, PCI_SUBSYSTEM_VENDOR_ID),
      .subsystem_id = GetU16(host_config, PCI_SUBSYSTEM_ID),
      .revision = host_config[PCI_REVISION_ID],
      .class_code = GetU32(host_config, PCI_CLASS_REVISION) >> 8,
  };
  VfioConfigVirtualizer v(ids);

  // The type-0 header (PCI 3.0 §6.1, figure 6-1). Bytes 0x40-0xff start as the device's:
  // device-specific registers outside any capability stay reachable.
  v.SetSource(0, kPciLegacyConfigSize, Source::kDevice);
  v.SetSource(PCI_VENDOR_ID, PCI_COMMAND, Source::kDeviceReadOnly);
  v.SetSource(PCI_COMMAND, PCI_STATUS, Source::kHeader);
  v.SetSource(PCI_CLASS_REVISION, PCI_CACHE_LINE_SIZE, Source::kDeviceReadOnly);
  v.SetSource(PCI_CACHE_LINE_SIZE, PCI_HEADER_TYPE, Source::kHeader);  // and latency timer
  v.SetSource(PCI_HEADER_TYPE, PCI_BIST, Source::kDeviceReadOnly);     // multi-function bit too
  // BIST stays 0 ("not capable", §6.2.4): a self-test must not run behind the host's back.
  v.SetSource(PCI_BIST, PCI_SUBSYSTEM_VENDOR_ID, Source::kHeader);  // BARs, CardBus CIS
  v.SetSource(PCI_SUBSYSTEM_VENDOR_ID, PCI_ROM_ADDRESS, Source::kDeviceReadOnly);
  v.SetSource(PCI_ROM_ADDRESS, PCI_CAPABILITY_LIST, Source::kRom);
  v.SetSource(PCI_CAPABILITY_LIST, PCI_CAPABILITY_LIST + 1, Source::kShadow);
  v.SetSource(PCI_CAPABILITY_LIST + 1, PCI_INTERRUPT_LINE, Source::kZero);  // reserved
  v.SetSource(PCI_INTERRUPT_LINE, PCI_MIN_GNT, Source::kHeader);            // line and pin
  v.SetSource(PCI_MIN_GNT, PCI_STD_HEADER_SIZEOF, Source::kDeviceReadOnly);

  MINIVMM_RETURN_IF_ERROR(v.AddBars(host_config, host));
  if (host.rom_size != 0) {
    if (std::has_single_bit(host.rom_size) && host.rom_size >= kMinRomSize &&
        host.rom_size <= kMaxRomSize) {
      v.rom_size_ = host.rom_size;
    } else {
      Log(LogLevel::kWarning, "config space: ROM of %#x bytes is not a valid ROM BAR size; hidden",
          host.rom_size);
    }
  }
  const uint8_t pin = host_config[PCI_INTERRUPT_PIN];
  v.header_.SetInterruptPin(host.intx && pin <= 4 ? pin : 0);
  v.AddCapabilities(host_config, host);
  return v;
}

absl::Status VfioConfigVirtualizer::AddBars(std::span<const uint8_t> config,
                                            const VfioHostFunction& host) {
  for (int i = 0; i < PciConfigSpace::kNumBars; ++i) {
    const uint64_t size = host.bar_sizes[i];
    if (size == 0) continue;
    // The type bits are the device's (PCI 3.0 §6.2.5.1); VFIO reports them in its virtualized
    // BAR registers.
    const uint32_t reg = GetU32(config, PCI_BASE_ADDRESS_0 + 4 * i);
    VfioBarDescription bar{.index = i};
    bar.size = size;
    if ((reg & PCI_BASE_ADDRESS_SPACE) == PCI_BASE_ADDRESS_SPACE_IO) {
      bar.kind = PciBarKind::kIo;
    } else {
      bar.kind = (reg & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64
                     ? PciBarKind::kMemory64
                     : PciBarKind::kMemory32;
      bar.prefetchable = (reg & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0;
    }
    if (absl::Status status = header_.AddBar(i, bar.kind, bar.size, bar.prefetchable);
        !status.ok()) {
      return WithContext(status, absl::StrFormat("config space: BAR %d (register %#010x)", i, reg));
    }
    bars_.push_back(bar);
    if (bar.kind == PciBarKind::kMemory64) ++i;  // the upper half is not a BAR of its own
  }
  return absl::OkStatus();
}

void VfioConfigVirtualizer::AddCapabilities(std::span<const uint8_t> config,
                                            const VfioHostFunction& host) {
  std::vector<Capability> list;
  if ((GetU16(config, PCI_STATUS) & PCI_STATUS_CAP_LIST) != 0) {
    std::bitset<kPciLegacyConfigSize> seen;
    // Pointers are dword aligned; the bottom two bits are reserved (PCI 3.0 §6.7).
    uint32_t at = config[PCI_CAPABILITY_LIST] & ~3u;
    while (at >= PCI_STD_HEADER_SIZEOF && !seen[at] && list.size() < kMaxCapabilities) {
      seen[at] = true;
      list.push_back({config[at + PCI_CAP_LIST_ID], static_cast<uint8_t>(at)});
      at = config[at + PCI_CAP_LIST_NEXT] & ~3u;
    }
  }
  // A capability's length is not in its header; like QEMU, take everything up to the next
  // capability (in address order) or the end of the legacy space as its own.
  std::map<uint32_t, uint32_t> end_of;
  std::vector<uint32_t> starts;
  for (const Capability& cap : list) starts.push_back(cap.offset);
  std::sort(starts.begin(), starts.end());
  for (size_t i = 0; i < starts.size(); ++i) {
    end_of[starts[i]] = i + 1 < starts.size() ? starts[i + 1] : kPciLegacyConfigSize;
  }

  for (const Capability& cap : list) {
    const uint32_t end = end_of[cap.offset];
    bool keep = false;
    switch (cap.id) {
      case PCI_CAP_ID_PM:  // D-state changes: vfio-pci mediates them; BARs follow them here
        // Only a capability whose bytes reach PMCSR can change the power state.
        if (end >= cap.offset + PCI_PM_CTRL + 2u) pm_offset_ = cap.offset;
        keep = true;
        break;
      case PCI_CAP_ID_EXP:  // device control/status: vfio-pci virtualizes what it must
        keep = true;
        break;
      case PCI_CAP_ID_MSI:
        keep = ShadowMsi(config, cap.offset, end, host);
        break;
      case PCI_CAP_ID_MSIX:
        keep = ShadowMsix(config, cap.offset, end, host);
        break;
      default:
        break;
    }
    if (!keep) {
      SetSource(cap.offset, end, Source::kZero);
      continue;
    }
    SetSource(cap.offset + PCI_CAP_LIST_ID, cap.offset + PCI_CAP_LIST_NEXT,
              Source::kDeviceReadOnly);
    SetSource(cap.offset + PCI_CAP_LIST_NEXT, cap.offset + PCI_CAP_LIST_NEXT + 1, Source::kShadow);
    visible_.push_back(cap);
  }
  // Relink the visible capabilities so that the hidden ones are skipped.
  uint32_t link = PCI_CAPABILITY_LIST;
  for (const Capability& cap : visible_) {
    SetShadow(link, cap.offset, 0, 1);
    link = cap.offset + PCI_CAP_LIST_NEXT;
  }
  SetShadow(link, 0, 0, 1);
}

bool VfioConfigVirtualizer::ShadowMsi(std::span<const uint8_t> config, uint8_t offset, uint32_t end,
                                      const VfioHostFunction& host) {
  const uint16_t control = GetU16(config, offset + PCI_MSI_FLAGS);
  const MsiLayout layout = MsiLayoutFor(control);
  if (host.msi_vectors == 0 || offset + layout.size() > end) {
    Log(LogLevel::kWarning, "config space: MSI capability at %#x hidden (VFIO vectors %d)", offset,
        host.msi_vectors);
    return false;
  }
  uint32_t log2 = std::min<uint32_t>((control & PCI_MSI_FLAGS_QMASK) >> 1, kMaxMsiLog2);
  while (log2 > 0 && (1u << log2) > host.msi_vectors) --log2;
  msi_max_vectors_ = 1u << log2;
  msi_offset_ = offset;

  SetSource(offset + PCI_MSI_FLAGS, offset + layout.size(), Source::kShadow);
  // Message Control: Enable and Multiple Message Enable are the guest's; the capability bits
  // are the device's, with Multiple Message Capable cut to what VFIO can deliver. Reserved and
  // Extended Message Data bits read 0.
  const uint16_t flags = (control & (PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT)) | log2 << 1;
  SetShadow(offset + PCI_MSI_FLAGS, flags, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE, 2);
  // Message Address bits 1:0 are reserved (§6.8.1.4).
  SetShadow(offset + PCI_MSI_ADDRESS_LO, 0, 0xfffffffc, 4);
  if (layout.is_64) SetShadow(offset + PCI_MSI_ADDRESS_HI, 0, 0xffffffff, 4);
  SetShadow(offset + layout.data(), 0, 0xffff, 2);
  if (layout.per_vector_mask) {
    // One mask bit per capable vector; the rest are reserved (§6.8.1.7). Pending bits read 0.
    const uint32_t mask = msi_max_vectors_ == 32 ? 0xffffffff : (1u << msi_max_vectors_) - 1;
    SetShadow(offset + layout.mask(), 0, mask, 4);
  }
  return true;
}

bool VfioConfigVirtualizer::ShadowMsix(std::span<const uint8_t> config, uint8_t offset,
                                       uint32_t end, const VfioHostFunction& host) {
  // The 12-byte capability must fit before the next one (and inside the 256 bytes) before any
  // of it is read: one at 0xf8 or 0xfc would otherwise read past the buffer.
  if (offset + uint32_t{PCI_CAP_MSIX_SIZEOF} > end) {
    Log(LogLevel::kWarning, "config space: MSI-X capability at %#x hidden (only %d bytes to %#x)",
        offset, end - offset, end);
    return false;
  }
  const uint32_t table = GetU32(config, offset + PCI_MSIX_TABLE);
  const uint32_t pba = GetU32(config, offset + PCI_MSIX_PBA);
  VfioMsixLayout layout;
  layout.table_size = static_cast<uint16_t>(std::min<uint32_t>(
      (GetU16(config, offset + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1, host.msix_vectors));
  layout.table_bar = static_cast<int>(table & PCI_MSIX_TABLE_BIR);
  layout.table_offset = table & PCI_MSIX_TABLE_OFFSET;
  layout.pba_bar = static_cast<int>(pba & PCI_MSIX_PBA_BIR);
  layout.pba_offset = pba & PCI_MSIX_PBA_OFFSET;
  // Both structures must lie inside a memory BAR (§6.8.2.4-6.8.2.5) for us to trap them.
  auto inside = [this](uint32_t bar, uint64_t at, uint64_t length) {
    std::optional<PciBarKind> kind = header_.BarKind(static_cast<int>(bar));
    std::optional<uint64_t> size = header_.BarSize(static_cast<int>(bar));
    return bar <= kMaxBir && kind && *kind != PciBarKind::kIo && at <= *size &&
           length <= *size - at;
  };
  if (layout.table_size == 0 || !inside(layout.table_bar, layout.table_offset, layout.table_bytes()) ||
      !inside(layout.pba_bar, layout.pba_offset, layout.pba_bytes())) {
    Log(LogLevel::kWarning,
        "config space: MSI-X capability at %#x hidden (table BAR %d + %#x, PBA BAR %d + %#x, "
        "%d VFIO vectors)",
        offset, layout.table_bar, layout.table_offset, layout.pba_bar, layout.pba_offset,
        host.msix_vectors);
    return false;
  }
  msix_offset_ = offset;
  msix_layout_ = layout;
  SetSource(offset + PCI_MSIX_FLAGS, offset + PCI_CAP_MSIX_SIZEOF, Source::kShadow);
  // Table Size is N - 1 (§6.8.2.3); Enable and Function Mask are the guest's.
  SetShadow(offset + PCI_MSIX_FLAGS, layout.table_size - 1u,
            PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
  SetShadow(offset + PCI_MSIX_TABLE, table, 0, 4);
  SetShadow(offset + PCI_MSIX_PBA, pba, 0, 4);
  return true;
}

void VfioConfigVirtualizer::SetSource(uint32_t begin, uint32_t end, Source source) {
  for (uint32_t at = begin; at < end && at < kPciLegacyConfigSize; ++at) source_[at] = source;
}

void VfioConfigVirtualizer::SetShadow(uint32_t offset, uint32_t value, uint32_t mask, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    shadow_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
    shadow_mask_[offset + i] = static_cast<uint8_t>(mask >> (8 * i));
  }
}

uint32_t VfioConfigVirtualizer::Shadow(uint32_t offset, int bytes) const {
  uint32_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint32_t{shadow_[offset + i]} << (8 * i);
  return value;
}

bool VfioConfigVirtualizer::ReadsDevice(uint32_t offset, size_t size) const {
  for (uint32_t at = offset; at < offset + size && at < kPciLegacyConfigSize; ++at) {
    if (source_[at] == Source::kDevice || source_[at] == Source::kDeviceReadOnly) return true;
  }
  return false;
}

void VfioConfigVirtualizer::Read(uint32_t offset, std::span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint32_t at = offset + static_cast<uint32_t>(i);
    if (at >= kPciLegacyConfigSize) {
      data[i] = 0;  // extended config space: no extended capabilities (PCIe Base 4.0 §7.6.3)
      continue;
    }
    switch (source_[at]) {
      case Source::kDevice:
      case Source::kDeviceReadOnly:
        // Status bit 4 says whether there is a capability list at all (PCI 3.0 §6.2.3).
        if (at == PCI_STATUS) {
          data[i] = (data[i] & ~PCI_STATUS_CAP_LIST) | (visible_.empty() ? 0 : PCI_STATUS_CAP_LIST);
        }
        break;
      case Source::kHeader:
        data[i] = header_.raw()[at];
        break;
      case Source::kRom:
        data[i] = static_cast<uint8_t>(rom_register_ >> (8 * (at - PCI_ROM_ADDRESS)));
        break;
      case Source::kShadow:
        data[i] = shadow_[at];
        break;
      case Source::kZero:
        data[i] = 0;
        break;
    }
  }
}

VfioConfigWriteEffect VfioConfigVirtualizer::Write(uint32_t offset, std::span<const uint8_t> data) {
  std::array<std::optional<uint64_t>, PciConfigSpace::kNumBars> bars_before;
  for (int i = 0; i < PciConfigSpace::kNumBars; ++i) bars_before[i] = BarMapping(i);
  const std::optional<uint64_t> rom_before = RomMapping();
  const uint16_t command_before = command();
  const VfioMsiState msi_before = msi();
  const bool msix_enabled_before = msix_enabled();
  const bool msix_masked_before = msix_function_masked();

  VfioConfigWriteEffect effect;
  // Consecutive bytes with the same source go together, so that e.g. a dword write to the
  // device's registers reaches it as one write.
  size_t run_start = 0;
  for (size_t i = 1; i <= data.size(); ++i) {
    const uint32_t at = offset + static_cast<uint32_t>(i);
    const uint32_t start = offset + static_cast<uint32_t>(run_start);
    if (start >= kPciLegacyConfigSize) break;  // extended config space: writes dropped
    if (i < data.size() && at < kPciLegacyConfigSize && source_[at] == source_[start]) continue;
    WriteRun(source_[start], start, data.subspan(run_start, i - run_start), effect);
    run_start = i;
  }

  // The PowerState field is PMCSR's low two bits (PCI PM 1.2 §3.2.4); the write itself went
  // to the device above.
  if (pm_offset_) {
    const uint32_t pmcsr = *pm_offset_ + PCI_PM_CTRL;
    if (offset <= pmcsr && pmcsr < offset + data.size()) {
      power_state_ = data[pmcsr - offset] & PCI_PM_CTRL_STATE_MASK;
    }
  }
  for (int i = 0; i < PciConfigSpace::kNumBars; ++i) {
    effect.bars_changed[i] = BarMapping(i) != bars_before[i];
  }
  effect.rom_changed = RomMapping() != rom_before;
  effect.command_changed = command() != command_before;
  effect.msi_changed = msi() != msi_before;
  effect.msix_changed =
      msix_enabled() != msix_enabled_before || msix_function_masked() != msix_masked_before;
  return effect;
}

void VfioConfigVirtualizer::WriteRun(Source source, uint32_t offset, std::span<const uint8_t> data,
                                     VfioConfigWriteEffect& effect) {
  switch (source) {
    case Source::kDevice:
      effect.device_writes.push_back({offset, std::vector<uint8_t>(data.begin(), data.end())});
      break;
    case Source::kHeader:
      header_.Write(offset, data);
      break;
    case Source::kRom:
      for (size_t i = 0; i < data.size(); ++i) {
        const uint32_t shift = 8 * (offset + static_cast<uint32_t>(i) - PCI_ROM_ADDRESS);
        const uint32_t mask = RomWriteMask() & (0xffu << shift);
        rom_register_ = (rom_register_ & ~mask) | (uint32_t{data[i]} << shift & mask);
      }
      break;
    case Source::kShadow:
      for (size_t i = 0; i < data.size(); ++i) {
        const uint8_t mask = shadow_mask_[offset + i];
        shadow_[offset + i] = (shadow_[offset + i] & ~mask) | (data[i] & mask);
      }
      break;
    case Source::kDeviceReadOnly:
    case Source::kZero:
      break;
  }
}

absl::Status VfioConfigVirtualizer::SetBarAddress(int index, uint64_t address) {
  return header_.SetBarAddress(index, address);
}

uint32_t VfioConfigVirtualizer::RomWriteMask() const {
  if (rom_size_ == 0) return 0;  // no ROM: the register is read-only 0 (§6.2.5.2)
  return (static_cast<uint32_t>(~(rom_size_ - 1)) & PCI_ROM_ADDRESS_MASK) | PCI_ROM_ADDRESS_ENABLE;
}

absl::Status VfioConfigVirtualizer::SetRomAddress(uint64_t address) {
  if (rom_size_ == 0) return absl::NotFoundError("expansion ROM: the device has none");
  if (address % rom_size_ != 0 || address >= uint64_t{1} << 32 ||
      (uint64_t{1} << 32) - address < rom_size_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expansion ROM: address %#x not aligned to its size %#x or above 4 GiB",
                        address, rom_size_));
  }
  rom_register_ = static_cast<uint32_t>(address);
  return absl::OkStatus();
}

void VfioConfigVirtualizer::SetInterruptLine(uint8_t line) {
  header_.raw()[PCI_INTERRUPT_LINE] = line;
}

std::optional<uint64_t> VfioConfigVirtualizer::BarMapping(int index) const {
  if (power_state_ != 0 || !header_.BarDecoding(index)) return std::nullopt;
  return header_.BarAddress(index);
}

std::optional<uint64_t> VfioConfigVirtualizer::RomMapping() const {
  // The ROM decodes only with both its own enable bit and Memory Space set (§6.2.5.2).
  if (rom_size_ == 0 || power_state_ != 0 || (rom_register_ & PCI_ROM_ADDRESS_ENABLE) == 0 ||
      (command() & PCI_COMMAND_MEMORY) == 0) {
    return std::nullopt;
  }
  // All address bits set is the sizing pattern, not a place to map (as for BARs, §6.2.5.1).
  const uint32_t address_mask = RomWriteMask() & PCI_ROM_ADDRESS_MASK;
  if ((rom_register_ & address_mask) == address_mask) return std::nullopt;
  return rom_register_ & address_mask;
}

bool VfioConfigVirtualizer::msix_enabled() const {
  return msix_offset_ && (Shadow(*msix_offset_ + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE) != 0;
}

bool VfioConfigVirtualizer::msix_function_masked() const {
  return msix_offset_ && (Shadow(*msix_offset_ + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_MASKALL) != 0;
}

VfioMsiState VfioConfigVirtualizer::msi() const {
  VfioMsiState state;
  if (!msi_offset_) return state;
  const uint32_t cap = *msi_offset_;
  const uint16_t control = static_cast<uint16_t>(Shadow(cap + PCI_MSI_FLAGS, 2));
  const MsiLayout layout = MsiLayoutFor(control);
  state.enabled = (control & PCI_MSI_FLAGS_ENABLE) != 0;
  // Enabling more vectors than capable is undefined (§6.8.1.3); give the guest what there is.
  const uint32_t log2 = std::min<uint32_t>((control & PCI_MSI_FLAGS_QSIZE) >> 4, kMaxMsiLog2);
  state.vectors = std::min(1u << log2, msi_max_vectors_);
  state.message.address = Shadow(cap + PCI_MSI_ADDRESS_LO, 4);
  if (layout.is_64) state.message.address |= uint64_t{Shadow(cap + PCI_MSI_ADDRESS_HI, 4)} << 32;
  state.message.data = Shadow(cap + layout.data(), 2);
  if (layout.per_vector_mask) state.mask_bits = Shadow(cap + layout.mask(), 4);
  return state;
}

std::vector<uint8_t> VfioConfigVirtualizer::visible_capabilities() const {
  std::vector<uint8_t> ids;
  for (const Capability& cap : visible_) ids.push_back(cap.id);
  return ids;
}

}  // namespace minivmm
