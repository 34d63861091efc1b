// The configuration space of a type-0 (endpoint) PCI function as the guest sees it: 4096 bytes
// with a per-byte write mask and write-1-to-clear mask, BAR sizing, and a capability list.
// Every PCI function (virtio, VFIO) keeps one and forwards the guest's config accesses to it; the
// function learns from Write's result when a BAR moves or its decoding turns on or off.
//
// Not thread-safe: the owning function serializes accesses with its own lock.
#ifndef MINIVMM_DEVICES_PCI_PCI_CONFIG_SPACE_H_
#define MINIVMM_DEVICES_PCI_PCI_CONFIG_SPACE_H_

#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/pci/pci_function.h"
#include "devices/pci/pci_state.pb.h"

namespace minivmm {

enum class PciBarKind { kMemory32, kMemory64, kIo };

struct PciIds {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
  uint8_t revision = 0;
  // 24 bits: base class << 16 | sub-class << 8 | programming interface (PCI 3.0 §6.2.1).
  uint32_t class_code = 0;
};

class PciConfigSpace {
 public:
  // Number of BAR slots in a type-0 header (PCI 3.0 §6.2.5.1).
  static constexpr int kNumBars = 6;

  // Which BARs' effective mapping (decoded address, or whether it decodes at all) changed in a
  // guest write, so that the owner can move or remove its mappings.
  struct WriteEffect {
    std::bitset<kNumBars> bars_changed;
    bool command_changed = false;
  };

  // Header type 0, everything zero except the IDs; the status register gains the
  // capabilities-list bit when the first capability is added.
  explicit PciConfigSpace(const PciIds& ids);

  // Declares BAR `index` (0..5); a 64-bit memory BAR also takes index + 1. size must be a power
  // of two, at least 16 for memory (PCI 3.0 §6.2.5.1) and at least 4 for I/O; at most 2 GiB for a
  // 32-bit memory BAR and 64 KiB for I/O (the x86 port space). prefetchable applies to memory only.
  // Fails for a bad index or size or a slot already taken by a declared BAR.
  absl::Status AddBar(int index, PciBarKind kind, uint64_t size, bool prefetchable = false);
  // Firmware-style assignment of a declared BAR's address: aligned to its size and reachable with
  // the BAR's width.
  absl::Status SetBarAddress(int index, uint64_t address);

  // The BAR's base as currently programmed (flag bits masked off; both halves of a 64-bit BAR),
  // or nullopt if index is not a declared BAR or is the upper half of a 64-bit one. Same for
  // BarSize and BarKind.
  std::optional<uint64_t> BarAddress(int index) const;
  std::optional<uint64_t> BarSize(int index) const;
  std::optional<PciBarKind> BarKind(int index) const;
  // Whether the function decodes the BAR now: the command register enables the BAR's space
  // (PCI 3.0 §6.2.2) and no dword of the BAR holds the all-ones sizing pattern.
  bool BarDecoding(int index) const;

  // Appends a capability to the list (PCI 3.0 §6.7). body is the capability after its ID and
  // next-pointer bytes; writable_mask marks the guest-writable bits of body (same length, or
  // empty for a read-only capability). Returns the capability's offset: dword aligned, >= 0x40.
  // Fails if the capability does not fit in the first 256 bytes.
  absl::StatusOr<uint8_t> AddCapability(uint8_t id, std::span<const uint8_t> body,
                                        std::span<const uint8_t> writable_mask);

  // Interrupt pin (PCI 3.0 §6.2.4): 0 = none, 1..4 = INTA#..INTD#. Other values are ignored.
  // The interrupt line register stays guest-writable either way.
  void SetInterruptPin(uint8_t pin);
  // Header type bit 7 (PCI 3.0 §6.2.1): set on function 0 of a multi-function device.
  void SetMultiFunction(bool multi_function);
  uint16_t command() const;

  // Guest accesses. The host bridge guarantees data.size() is 1, 2 or 4, offset is aligned to it
  // and the access lies within kPciConfigSpaceSize.
  void Read(uint32_t offset, std::span<uint8_t> data) const;
  // Applies the write through the masks: read-only bits keep their value, write-1-to-clear bits
  // clear where a 1 is written, the BAR bits below the size read back as 0 (so writing all-ones
  // and reading back yields the size, PCI 3.0 §6.2.5.1). The expansion ROM BAR is not
  // implemented: it reads 0 and ignores writes, which the spec defines as "no ROM" (§6.2.5.2).
  WriteEffect Write(uint32_t offset, std::span<const uint8_t> data);

  // Snapshot and restore of the 4096 guest-visible bytes. The masks, BAR sizes and capability
  // list are not saved: they follow from the construction, which a restore repeats. So every
  // bit that is neither guest-writable nor write-1-to-clear (IDs, class code, header type, BAR
  // type and size bits, capability IDs, pointers and read-only fields) must equal this space's:
  // otherwise the function's description changed since the snapshot and RestoreState refuses,
  // naming the function and the field, and changes nothing. The owner re-derives its BAR
  // mappings and interrupt state from the restored bytes (Write's WriteEffect is not reported).
  state::PciConfigSpaceState SaveState() const;
  absl::Status RestoreState(const state::PciConfigSpaceState& s);

  // Direct access for the owner, bypassing the masks (e.g. a capability's fields the device
  // updates). Offsets out of range are a programming error.
  std::span<uint8_t> raw() { return bytes_; }
  std::span<const uint8_t> raw() const { return bytes_; }
  uint16_t ReadU16(uint32_t offset) const;
  uint32_t ReadU32(uint32_t offset) const;
  void SetU16(uint32_t offset, uint16_t value);
  void SetU32(uint32_t offset, uint32_t value);

 private:
  struct Bar {
    bool declared = false;
    bool upper_half = false;  // the high dword of the 64-bit BAR at index - 1
    PciBarKind kind = PciBarKind::kMemory32;
    uint64_t size = 0;
  };
  // What the owner has mapped for a BAR: the address while decoding, nothing otherwise.
  using BarMapping = std::optional<uint64_t>;

  static uint32_t BarOffset(int index);
  bool IsMainBar(int index) const;
  // The BAR's writable address bits, as a 64-bit value for 64-bit BARs.
  uint64_t BarAddressMask(int index) const;
  BarMapping Mapping(int index) const;
  uint32_t ReadU32Mask(uint32_t offset) const;
  // The header field or capability that holds byte `offset`, for error messages.
  std::string FieldName(uint32_t offset) const;
  void SetMask(uint32_t offset, std::span<const uint8_t> mask);
  void SetMaskU16(uint32_t offset, uint16_t mask);
  void SetMaskU32(uint32_t offset, uint32_t mask);

  std::array<uint8_t, kPciConfigSpaceSize> bytes_{};
  std::array<uint8_t, kPciConfigSpaceSize> write_mask_{};
  std::array<uint8_t, kPciConfigSpaceSize> w1c_mask_{};
  std::array<Bar, kNumBars> bars_{};
  // Offset of the last capability in the list, or 0 while the list is empty.
  uint8_t last_capability_ = 0;
  // Where the next capability may start (dword aligned).
  uint32_t next_capability_offset_;
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_PCI_CONFIG_SPACE_H_
