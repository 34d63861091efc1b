#include "devices/pci/pci_config_space.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <string>

#include "absl/strings/str_format.h"

namespace minivmm {
namespace {

// Header type bit 7: the device has more than one function (PCI 3.0 §6.2.1). Newer uapi headers
// call it PCI_HEADER_TYPE_MFD; Debian 12's do not have it yet.
constexpr uint8_t kHeaderTypeMultiFunction = 0x80;

// Command bits a guest can change (PCI 3.0 §6.2.2). Special cycles, memory-write-and-invalidate,
// VGA palette snooping, stepping and fast back-to-back are optional and hardwired to 0 here.
constexpr uint16_t kCommandWritable = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                      PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                      PCI_COMMAND_INTX_DISABLE;

// Status error bits are "cleared by writing a 1" (PCI 3.0 §6.2.3): bits 15..11 and 8.
constexpr uint16_t kStatusWriteOneToClear =
    PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |
    PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY;

// The capability list lives in the first 256 bytes, after the 64-byte header (PCI 3.0 §6.7).
constexpr uint32_t kCapabilityAreaEnd = 256;

// BAR size limits (PCI 3.0 §6.2.5.1): memory BARs are at least 16 bytes (their low 4 bits hold
// flags), I/O BARs at least 4. A 32-bit memory BAR needs at least its top bit writable, so at most
// 2 GiB; I/O BARs are capped at the 64 KiB x86 port space.
constexpr uint64_t kMinMemoryBarSize = 16;
constexpr uint64_t kMinIoBarSize = 4;
constexpr uint64_t kMaxMemory32BarSize = uint64_t{1} << 31;
constexpr uint64_t kIoSpaceSize = uint64_t{1} << 16;

constexpr uint64_t kMemoryFlagBits = ~static_cast<uint64_t>(PCI_BASE_ADDRESS_MEM_MASK);
constexpr uint64_t kIoFlagBits = ~static_cast<uint64_t>(PCI_BASE_ADDRESS_IO_MASK);

// The read-only type-0 header fields a restore reports by name (PCI 3.0 §6.1, figure 6-1).
struct HeaderField {
  const char* name;
  uint32_t offset;
  uint32_t size;
};
constexpr HeaderField kHeaderFields[] = {
    {"vendor ID", PCI_VENDOR_ID, 2},
    {"device ID", PCI_DEVICE_ID, 2},
    {"status", PCI_STATUS, 2},
    {"revision ID", PCI_REVISION_ID, 1},
    {"class code", PCI_CLASS_PROG, 3},
    {"latency timer", PCI_LATENCY_TIMER, 1},
    {"header type", PCI_HEADER_TYPE, 1},
    {"BIST", PCI_BIST, 1},
    {"subsystem vendor ID", PCI_SUBSYSTEM_VENDOR_ID, 2},
    {"subsystem ID", PCI_SUBSYSTEM_ID, 2},
    {"expansion ROM BAR", PCI_ROM_ADDRESS, 4},
    {"capabilities pointer", PCI_CAPABILITY_LIST, 1},
    {"interrupt pin", PCI_INTERRUPT_PIN, 1},
};

bool InRange(uint32_t offset, size_t size) {
  bool ok = offset <= kPciConfigSpaceSize && size <= kPciConfigSpaceSize - offset;
  assert(ok && "config-space offset out of range");
  return ok;
}

}  // namespace

PciConfigSpace::PciConfigSpace(const PciIds& ids) : next_capability_offset_(PCI_STD_HEADER_SIZEOF) {
  SetU16(PCI_VENDOR_ID, ids.vendor_id);
  SetU16(PCI_DEVICE_ID, ids.device_id);
  SetU32(PCI_CLASS_REVISION, (ids.class_code & 0xffffff) << 8 | ids.revision);
  bytes_[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
  SetU16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystem_vendor_id);
  SetU16(PCI_SUBSYSTEM_ID, ids.subsystem_id);

  SetMaskU16(PCI_COMMAND, kCommandWritable);
  for (uint32_t i = 0; i < 2; ++i) w1c_mask_[PCI_STATUS + i] = kStatusWriteOneToClear >> (8 * i);
  // Cache line size is read/write (PCI 3.0 §6.2.4); Linux writes it and reads it back. The latency
  // timer is hardwired to 0, which the spec allows and PCI Express requires.
  write_mask_[PCI_CACHE_LINE_SIZE] = 0xff;
  // Interrupt line is scratch storage for the guest's routing (PCI 3.0 §6.2.4).
  write_mask_[PCI_INTERRUPT_LINE] = 0xff;
}

uint32_t PciConfigSpace::BarOffset(int index) { return PCI_BASE_ADDRESS_0 + 4 * index; }

bool PciConfigSpace::IsMainBar(int index) const {
  return index >= 0 && index < kNumBars && bars_[index].declared && !bars_[index].upper_half;
}

absl::Status PciConfigSpace::AddBar(int index, PciBarKind kind, uint64_t size, bool prefetchable) {
  bool is_64 = kind == PciBarKind::kMemory64;
  if (index < 0 || index >= kNumBars || (is_64 && index + 1 >= kNumBars)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PCI BAR %d: index out of range (0..%d, a 64-bit BAR takes two slots)",
                        index, kNumBars - 1));
  }
  if (bars_[index].declared || (is_64 && bars_[index + 1].declared)) {
    return absl::AlreadyExistsError(
        absl::StrFormat("PCI BAR %d: slot already taken by another BAR", index));
  }
  uint64_t min_size = kind == PciBarKind::kIo ? kMinIoBarSize : kMinMemoryBarSize;
  uint64_t max_size = kind == PciBarKind::kIo         ? kIoSpaceSize
                      : kind == PciBarKind::kMemory32 ? kMaxMemory32BarSize
                                                      : uint64_t{1} << 63;
  if (!std::has_single_bit(size) || size < min_size || size > max_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PCI BAR %d: size %#x must be a power of two in [%#x, %#x]", index, size,
                        min_size, max_size));
  }
  if (prefetchable && kind == PciBarKind::kIo) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PCI BAR %d: an I/O BAR cannot be prefetchable", index));
  }

  uint32_t flags;
  uint64_t mask = ~(size - 1);
  if (kind == PciBarKind::kIo) {
    flags = PCI_BASE_ADDRESS_SPACE_IO;
    mask &= ~kIoFlagBits;
  } else {
    flags = PCI_BASE_ADDRESS_SPACE_MEMORY |
            (is_64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32) |
            (prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    mask &= ~kMemoryFlagBits;
  }
  bars_[index] = Bar{.declared = true, .upper_half = false, .kind = kind, .size = size};
  SetU32(BarOffset(index), flags);
  // The bits below the size are read-only 0, which is what makes sizing work (§6.2.5.1).
  SetMaskU32(BarOffset(index), static_cast<uint32_t>(mask));
  if (is_64) {
    bars_[index + 1] = Bar{.declared = true, .upper_half = true, .kind = kind, .size = size};
    SetU32(BarOffset(index + 1), 0);
    SetMaskU32(BarOffset(index + 1), static_cast<uint32_t>(mask >> 32));
  }
  return absl::OkStatus();
}

uint64_t PciConfigSpace::BarAddressMask(int index) const {
  uint64_t mask = ReadU32Mask(BarOffset(index));
  if (bars_[index].kind == PciBarKind::kMemory64) {
    mask |= uint64_t{ReadU32Mask(BarOffset(index + 1))} << 32;
  }
  return mask;
}

absl::Status PciConfigSpace::SetBarAddress(int index, uint64_t address) {
  if (!IsMainBar(index)) {
    return absl::NotFoundError(absl::StrFormat("PCI BAR %d: not declared", index));
  }
  const Bar& bar = bars_[index];
  uint64_t limit = bar.kind == PciBarKind::kIo         ? kIoSpaceSize
                   : bar.kind == PciBarKind::kMemory32 ? uint64_t{1} << 32
                                                       : 0;
  if (address % bar.size != 0 || (limit != 0 && (address >= limit || limit - address < bar.size))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PCI BAR %d: address %#x is not aligned to its size %#x or out of the BAR's reach", index,
        address, bar.size));
  }
  uint64_t mask = BarAddressMask(index);
  uint32_t offset = BarOffset(index);
  uint32_t low_mask = static_cast<uint32_t>(mask);
  SetU32(offset, (ReadU32(offset) & ~low_mask) | (static_cast<uint32_t>(address) & low_mask));
  if (bar.kind == PciBarKind::kMemory64) SetU32(offset + 4, static_cast<uint32_t>(address >> 32));
  return absl::OkStatus();
}

std::optional<uint64_t> PciConfigSpace::BarAddress(int index) const {
  if (!IsMainBar(index)) return std::nullopt;
  uint32_t offset = BarOffset(index);
  switch (bars_[index].kind) {
    case PciBarKind::kIo:
      return ReadU32(offset) & ~kIoFlagBits;
    case PciBarKind::kMemory32:
      return ReadU32(offset) & ~kMemoryFlagBits;
    case PciBarKind::kMemory64:
      return (ReadU32(offset) & ~kMemoryFlagBits) | uint64_t{ReadU32(offset + 4)} << 32;
  }
  return std::nullopt;
}

std::optional<uint64_t> PciConfigSpace::BarSize(int index) const {
  if (!IsMainBar(index)) return std::nullopt;
  return bars_[index].size;
}

std::optional<PciBarKind> PciConfigSpace::BarKind(int index) const {
  if (!IsMainBar(index)) return std::nullopt;
  return bars_[index].kind;
}

bool PciConfigSpace::BarDecoding(int index) const {
  if (!IsMainBar(index)) return false;
  uint16_t enable = bars_[index].kind == PciBarKind::kIo ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
  if ((command() & enable) == 0) return false;
  // Software sizes a BAR by writing all-ones to each of its dwords in turn and restoring the old
  // value (PCI 3.0 §6.2.5.1), usually but not always with decoding disabled (Linux keeps it on
  // for some host bridges). A dword whose address bits are all set is therefore the sizing
  // pattern, not an address to map: for the low dword it would place the BAR in the last
  // size-aligned slot below a 4 GiB boundary, for the high dword above any physical address.
  int dwords = bars_[index].kind == PciBarKind::kMemory64 ? 2 : 1;
  for (int i = 0; i < dwords; ++i) {
    uint32_t offset = BarOffset(index + i);
    uint32_t mask = ReadU32Mask(offset);
    if (mask != 0 && (ReadU32(offset) & mask) == mask) return false;
  }
  return true;
}

PciConfigSpace::BarMapping PciConfigSpace::Mapping(int index) const {
  if (!BarDecoding(index)) return std::nullopt;
  return BarAddress(index);
}

absl::StatusOr<uint8_t> PciConfigSpace::AddCapability(uint8_t id, std::span<const uint8_t> body,
                                                      std::span<const uint8_t> writable_mask) {
  if (!writable_mask.empty() && writable_mask.size() != body.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PCI capability %#x: writable mask has %d bytes, body has %d", id,
                        writable_mask.size(), body.size()));
  }
  uint32_t offset = next_capability_offset_;
  size_t length = PCI_CAP_LIST_NEXT + 1 + body.size();
  if (offset >= kCapabilityAreaEnd || length > kCapabilityAreaEnd - offset) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "PCI capability %#x: %d bytes at offset %#x do not fit in the first %d bytes of config "
        "space (PCI 3.0 §6.7)",
        id, length, offset, kCapabilityAreaEnd));
  }
  // ID and next pointer are read-only (write_mask_ is 0 there): the guest walks the list but
  // never edits it.
  bytes_[offset + PCI_CAP_LIST_ID] = id;
  bytes_[offset + PCI_CAP_LIST_NEXT] = 0;
  uint32_t body_offset = offset + PCI_CAP_LIST_NEXT + 1;
  std::copy(body.begin(), body.end(), bytes_.begin() + body_offset);
  if (!writable_mask.empty()) SetMask(body_offset, writable_mask);

  uint32_t link =
      last_capability_ == 0 ? PCI_CAPABILITY_LIST : last_capability_ + PCI_CAP_LIST_NEXT;
  bytes_[link] = static_cast<uint8_t>(offset);
  last_capability_ = static_cast<uint8_t>(offset);
  SetU16(PCI_STATUS, ReadU16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
  // Capabilities are dword aligned: the bottom two bits of every pointer are reserved (§6.7).
  next_capability_offset_ = (offset + length + 3) & ~uint32_t{3};
  return static_cast<uint8_t>(offset);
}

void PciConfigSpace::SetInterruptPin(uint8_t pin) {
  assert(pin <= 4 && "interrupt pin must be 0 (none) or 1..4 (INTA#..INTD#)");
  if (pin <= 4) bytes_[PCI_INTERRUPT_PIN] = pin;
}

void PciConfigSpace::SetMultiFunction(bool multi_function) {
  bytes_[PCI_HEADER_TYPE] = (bytes_[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) |
                            (multi_function ? kHeaderTypeMultiFunction : 0);
}

uint16_t PciConfigSpace::command() const { return ReadU16(PCI_COMMAND); }

void PciConfigSpace::Read(uint32_t offset, std::span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < kPciConfigSpaceSize ? bytes_[offset + i] : 0xff;
  }
}

PciConfigSpace::WriteEffect PciConfigSpace::Write(uint32_t offset, std::span<const uint8_t> data) {
  std::array<BarMapping, kNumBars> before;
  for (int i = 0; i < kNumBars; ++i) before[i] = Mapping(i);
  uint16_t old_command = command();

  for (size_t i = 0; i < data.size() && offset + i < kPciConfigSpaceSize; ++i) {
    size_t at = offset + i;
    uint8_t value = data[i];
    uint8_t kept = bytes_[at] & ~write_mask_[at];
    bytes_[at] = (kept | (value & write_mask_[at])) & ~(value & w1c_mask_[at]);
  }

  WriteEffect effect;
  for (int i = 0; i < kNumBars; ++i) effect.bars_changed[i] = Mapping(i) != before[i];
  effect.command_changed = command() != old_command;
  return effect;
}

state::PciConfigSpaceState PciConfigSpace::SaveState() const {
  state::PciConfigSpaceState s;
  s.set_bytes(std::string(bytes_.begin(), bytes_.end()));
  return s;
}

absl::Status PciConfigSpace::RestoreState(const state::PciConfigSpaceState& s) {
  const std::string function =
      absl::StrFormat("PCI function %04x:%04x", ReadU16(PCI_VENDOR_ID), ReadU16(PCI_DEVICE_ID));
  if (s.bytes().size() != kPciConfigSpaceSize) {
    return absl::InvalidArgumentError(absl::StrFormat("%s state: bytes holds %d bytes, expected %d",
                                                      function, s.bytes().size(),
                                                      kPciConfigSpaceSize));
  }
  const auto saved = [&s](uint32_t at) { return static_cast<uint8_t>(s.bytes()[at]); };
  if (saved(PCI_VENDOR_ID) != bytes_[PCI_VENDOR_ID] ||
      saved(PCI_VENDOR_ID + 1) != bytes_[PCI_VENDOR_ID + 1] ||
      saved(PCI_DEVICE_ID) != bytes_[PCI_DEVICE_ID] ||
      saved(PCI_DEVICE_ID + 1) != bytes_[PCI_DEVICE_ID + 1]) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s state: saved from a %02x%02x:%02x%02x function (vendor ID/device ID differ; the "
        "device description changed since the snapshot)",
        function, saved(PCI_VENDOR_ID + 1), saved(PCI_VENDOR_ID), saved(PCI_DEVICE_ID + 1),
        saved(PCI_DEVICE_ID)));
  }
  for (uint32_t at = 0; at < kPciConfigSpaceSize; ++at) {
    // The bits the guest cannot set come from the construction, so they must match.
    const uint8_t read_only = ~(write_mask_[at] | w1c_mask_[at]);
    if (((saved(at) ^ bytes_[at]) & read_only) == 0) continue;
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s state: read-only bits %#04x of byte %#x (%s) are %#04x, this function has %#04x "
        "(the device description changed since the snapshot)",
        function, read_only, at, FieldName(at), saved(at) & read_only, bytes_[at] & read_only));
  }
  std::copy(s.bytes().begin(), s.bytes().end(), bytes_.begin());
  return absl::OkStatus();
}

std::string PciConfigSpace::FieldName(uint32_t offset) const {
  for (const HeaderField& field : kHeaderFields) {
    if (offset >= field.offset && offset < field.offset + field.size) return field.name;
  }
  if (offset >= PCI_BASE_ADDRESS_0 && offset < BarOffset(kNumBars)) {
    const int index = static_cast<int>(offset - PCI_BASE_ADDRESS_0) / 4;
    return absl::StrFormat("BAR %d type or size", index);
  }
  if (offset < PCI_STD_HEADER_SIZEOF) return "header";
  // The capability that starts last at or before the offset holds it (they are laid out in
  // order by AddCapability).
  uint8_t holder = 0;
  for (uint8_t at = bytes_[PCI_CAPABILITY_LIST]; at != 0 && at <= offset;
       at = bytes_[at + PCI_CAP_LIST_NEXT]) {
    holder = at;
  }
  if (holder != 0 && offset < next_capability_offset_) {
    return absl::StrFormat("capability %#x at %#x", bytes_[holder + PCI_CAP_LIST_ID], holder);
  }
  return "outside any capability";
}

uint16_t PciConfigSpace::ReadU16(uint32_t offset) const {
  if (!InRange(offset, 2)) return 0;
  return static_cast<uint16_t>(bytes_[offset] | bytes_[offset + 1] << 8);
}

uint32_t PciConfigSpace::ReadU32(uint32_t offset) const {
  if (!InRange(offset, 4)) return 0;
  return uint32_t{ReadU16(offset)} | uint32_t{ReadU16(offset + 2)} << 16;
}

void PciConfigSpace::SetU16(uint32_t offset, uint16_t value) {
  if (!InRange(offset, 2)) return;
  bytes_[offset] = static_cast<uint8_t>(value);
  bytes_[offset + 1] = static_cast<uint8_t>(value >> 8);
}

void PciConfigSpace::SetU32(uint32_t offset, uint32_t value) {
  SetU16(offset, static_cast<uint16_t>(value));
  SetU16(offset + 2, static_cast<uint16_t>(value >> 16));
}

uint32_t PciConfigSpace::ReadU32Mask(uint32_t offset) const {
  uint32_t mask = 0;
  for (int i = 0; i < 4; ++i) mask |= uint32_t{write_mask_[offset + i]} << (8 * i);
  return mask;
}

void PciConfigSpace::SetMask(uint32_t offset, std::span<const uint8_t> mask) {
  std::copy(mask.begin(), mask.end(), write_mask_.begin() + offset);
}

void PciConfigSpace::SetMaskU16(uint32_t offset, uint16_t mask) {
  write_mask_[offset] = static_cast<uint8_t>(mask);
  write_mask_[offset + 1] = static_cast<uint8_t>(mask >> 8);
}

void PciConfigSpace::SetMaskU32(uint32_t offset, uint32_t mask) {
  SetMaskU16(offset, static_cast<uint16_t>(mask));
  SetMaskU16(offset + 2, static_cast<uint16_t>(mask >> 16));
}

}  // namespace minivmm
