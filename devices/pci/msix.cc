#include "devices/pci/msix.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

static_assert(MsixTable::kEntrySize == PCI_MSIX_ENTRY_SIZE);
static_assert(MsixTable::kMaxVectors == PCI_MSIX_FLAGS_QSIZE + 1);

// Offsets of the capability's fields within its body, i.e. after the ID and next pointer.
constexpr size_t kBodyStart = PCI_CAP_LIST_NEXT + 1;
constexpr size_t kControlInBody = PCI_MSIX_FLAGS - kBodyStart;
constexpr size_t kTableInBody = PCI_MSIX_TABLE - kBodyStart;
constexpr size_t kPbaInBody = PCI_MSIX_PBA - kBodyStart;
static_assert(kPbaInBody + 4 == MsixCapabilityBytes::kSize);

// A function has BARs 0..5 (PCI 3.0 §6.2.5.1); BIR values 6 and 7 are reserved (§6.8.2.4).
constexpr uint8_t kMaxBir = 5;

void PutU16(std::span<uint8_t> bytes, size_t at, uint16_t value) {
  bytes[at] = static_cast<uint8_t>(value);
  bytes[at + 1] = static_cast<uint8_t>(value >> 8);
}

void PutU32(std::span<uint8_t> bytes, size_t at, uint32_t value) {
  PutU16(bytes, at, static_cast<uint16_t>(value));
  PutU16(bytes, at + 2, static_cast<uint16_t>(value >> 16));
}

uint32_t GetU32(std::span<const uint8_t> bytes, size_t at) {
  return uint32_t{bytes[at]} | uint32_t{bytes[at + 1]} << 8 | uint32_t{bytes[at + 2]} << 16 |
         uint32_t{bytes[at + 3]} << 24;
}

}  // namespace

absl::StatusOr<MsixCapabilityBytes> MsixCapabilityBody(uint16_t table_size, uint8_t table_bar,
                                                       uint32_t table_offset, uint8_t pba_bar,
                                                       uint32_t pba_offset) {
  if (table_size == 0 || table_size > MsixTable::kMaxVectors) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MSI-X capability: table size %d out of range 1..%d", table_size, MsixTable::kMaxVectors));
  }
  if (table_bar > kMaxBir || pba_bar > kMaxBir) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MSI-X capability: table BAR %d / PBA BAR %d out of range 0..%d", table_bar,
                        pba_bar, kMaxBir));
  }
  if ((table_offset & PCI_MSIX_TABLE_BIR) != 0 || (pba_offset & PCI_MSIX_PBA_BIR) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MSI-X capability: table offset %#x / PBA offset %#x not qword aligned",
                        table_offset, pba_offset));
  }
  MsixCapabilityBytes cap;
  // Table Size is encoded as N - 1 (§6.8.2.3); Enable and Function Mask start clear.
  PutU16(cap.body, kControlInBody, table_size - 1);
  PutU16(cap.writable_mask, kControlInBody, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  PutU32(cap.body, kTableInBody, table_offset | table_bar);
  PutU32(cap.body, kPbaInBody, pba_offset | pba_bar);
  return cap;
}

absl::StatusOr<std::unique_ptr<MsixTable>> MsixTable::Create(MsiAllocator& allocator,
                                                             uint16_t table_size) {
  if (table_size == 0 || table_size > kMaxVectors) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MSI-X table: size %d out of range 1..%d", table_size, kMaxVectors));
  }
  std::vector<std::unique_ptr<MsiInterrupt>> vectors;
  vectors.reserve(table_size);
  for (uint16_t i = 0; i < table_size; ++i) {
    absl::StatusOr<std::unique_ptr<MsiInterrupt>> vector = allocator.AllocateMsi();
    if (!vector.ok()) {
      return absl::Status(vector.status().code(),
                          absl::StrFormat("MSI-X table: allocating vector %d of %d: %s", i,
                                          table_size, vector.status().message()));
    }
    vectors.push_back(*std::move(vector));
  }
  return std::make_unique<MsixTable>(std::move(vectors));
}

MsixTable::MsixTable(std::vector<std::unique_ptr<MsiInterrupt>> vectors)
    : vectors_(std::move(vectors)),
      entries_(vectors_.size(), Entry{.vector_control = PCI_MSIX_ENTRY_CTRL_MASKBIT}),
      routed_(vectors_.size()),
      pba_((vectors_.size() + 63) / 64),
      effective_masked_(vectors_.size(), true) {}

bool MsixTable::Aligned(uint64_t offset, size_t size, size_t limit) {
  return (size == 4 || size == 8) && offset % size == 0 && offset < limit && size <= limit - offset;
}

MsiMessage MsixTable::Message(const Entry& entry) {
  return MsiMessage{.address = uint64_t{entry.address_high} << 32 | entry.address_low,
                    .data = entry.data};
}

bool MsixTable::Masked(const Entry& entry) {
  return (entry.vector_control & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
}

void MsixTable::ReadTable(uint64_t offset, std::span<uint8_t> data) {
  if (!Aligned(offset, data.size(), table_bytes())) {
    MINIVMM_LOG_GUEST_ERROR("msix: %d-byte table read at offset %#x ignored", data.size(), offset);
    std::fill(data.begin(), data.end(), 0);
    return;
  }
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < data.size(); i += 4) {
    PutU32(data, i, ReadTableDword((offset + i) / 4));
  }
}

void MsixTable::WriteTable(uint64_t offset, std::span<const uint8_t> data) {
  if (!Aligned(offset, data.size(), table_bytes())) {
    MINIVMM_LOG_GUEST_ERROR("msix: %d-byte table write at offset %#x ignored", data.size(), offset);
    return;
  }
  // An aligned access never crosses an entry (entries are 16 bytes), so one entry changes, and
  // a qword write of address or data+control takes effect as one update, not two.
  size_t index = offset / kEntrySize;
  absl::MutexLock lock(&mutex_);
  const Entry before = entries_[index];
  for (size_t i = 0; i < data.size(); i += 4) WriteTableDword((offset + i) / 4, GetU32(data, i));
  const Entry& after = entries_[index];
  UpdateMask(index);
  if (Masked(after)) return;
  // The spec leaves changing an unmasked entry undefined (§6.8.2.9); following the guest's
  // writes keeps Linux's unmasked affinity updates working.
  if (Masked(before) || Message(before) != Message(after)) Route(index);
  if (Masked(before)) DeliverIfPending(index);
}

void MsixTable::ReadPba(uint64_t offset, std::span<uint8_t> data) {
  if (!Aligned(offset, data.size(), pba_bytes())) {
    MINIVMM_LOG_GUEST_ERROR("msix: %d-byte PBA read at offset %#x ignored", data.size(), offset);
    std::fill(data.begin(), data.end(), 0);
    return;
  }
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < data.size(); i += 4) {
    const size_t dword = (offset + i) / 4;
    uint32_t bits = static_cast<uint32_t>(pba_[dword / 2] >> (32 * (dword % 2)));
    // A passed-through device's masked vector holds what it raised in the vector itself.
    for (size_t bit = 0; bit < 32; ++bit) {
      const size_t index = dword * 32 + bit;
      if (index >= vectors_.size() || !vectors_[index] || !effective_masked_[index]) continue;
      if (vectors_[index]->HoldsInterrupt()) bits |= 1u << bit;
    }
    PutU32(data, i, bits);
  }
}

void MsixTable::SetControl(bool enabled, bool function_masked) {
  absl::MutexLock lock(&mutex_);
  enabled_ = enabled;
  function_masked_ = function_masked;
  for (size_t index = 0; index < vectors_.size(); ++index) UpdateMask(index);
  // Pending bits outlive a disable: the spec does not clear them, and a spurious MSI after
  // re-enabling is harmless where a lost one is not.
  if (!enabled_ || function_masked_) return;
  for (size_t word = 0; word < pba_.size(); ++word) {
    if (pba_[word] == 0) continue;
    for (size_t bit = 0; bit < 64; ++bit) DeliverIfPending(word * 64 + bit);
  }
}

void MsixTable::Notify(uint16_t index) {
  if (index >= vectors_.size()) return;
  absl::MutexLock lock(&mutex_);
  if (!enabled_) return;
  if (function_masked_ || Masked(entries_[index])) {
    set_pending(index, true);
    return;
  }
  // Trigger only signals an eventfd, so calling it under the lock cannot deadlock.
  if (vectors_[index]) vectors_[index]->Trigger();
}

state::MsixTableState MsixTable::SaveState() const {
  absl::MutexLock lock(&mutex_);
  state::MsixTableState s;
  for (const Entry& entry : entries_) {
    state::MsixEntry* saved = s.add_entries();
    saved->set_address_low(entry.address_low);
    saved->set_address_high(entry.address_high);
    saved->set_data(entry.data);
    saved->set_vector_control(entry.vector_control);
  }
  // A passed-through vector's held interrupt (see ReadPba) stays in the device, not here.
  for (uint64_t word : pba_) s.add_pba(word);
  s.set_enabled(enabled_);
  s.set_function_masked(function_masked_);
  return s;
}

absl::Status MsixTable::CheckState(const state::MsixTableState& s) const {
  if (static_cast<size_t>(s.entries_size()) != table_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MSI-X table state: entries holds %d entries, this table has %d",
                        s.entries_size(), table_size()));
  }
  for (int i = 0; i < s.entries_size(); ++i) {
    // Bits 31:1 of Vector Control are reserved and read 0 (§6.8.2.9).
    if ((s.entries(i).vector_control() & ~uint32_t{PCI_MSIX_ENTRY_CTRL_MASKBIT}) != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("MSI-X table state: entries[%d].vector_control = %#x sets reserved bits",
                          i, s.entries(i).vector_control()));
    }
  }
  if (static_cast<size_t>(s.pba_size()) != pba_bytes() / 8) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MSI-X table state: pba holds %d qwords, this table has %d", s.pba_size(),
                        pba_bytes() / 8));
  }
  // Pending bits past the last vector do not exist (§6.8.2.10: they read 0).
  const size_t used_bits = table_size() % 64;
  if (used_bits != 0 && (s.pba(s.pba_size() - 1) >> used_bits) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MSI-X table state: pba[%d] = %#x has bits past the table's %d vectors",
                        s.pba_size() - 1, s.pba(s.pba_size() - 1), table_size()));
  }
  return absl::OkStatus();
}

absl::Status MsixTable::RestoreState(const state::MsixTableState& s) {
  MINIVMM_RETURN_IF_ERROR(CheckState(s));
  absl::MutexLock lock(&mutex_);
  for (size_t index = 0; index < entries_.size(); ++index) {
    const state::MsixEntry& saved = s.entries(static_cast<int>(index));
    entries_[index] = Entry{.address_low = saved.address_low(),
                            .address_high = saved.address_high(),
                            .data = saved.data(),
                            .vector_control = saved.vector_control()};
  }
  std::copy(s.pba().begin(), s.pba().end(), pba_.begin());
  enabled_ = s.enabled();
  function_masked_ = s.function_masked();
  for (size_t index = 0; index < entries_.size(); ++index) {
    // WriteTable's order: the effective mask first (routing on unmask), then the entry's own
    // route, which follows the message whenever the entry's mask bit is clear.
    UpdateMask(index);
    if (Masked(entries_[index])) continue;
    Route(index);
    DeliverIfPending(index);
  }
  return absl::OkStatus();
}

bool MsixTable::enabled() const {
  absl::MutexLock lock(&mutex_);
  return enabled_;
}

uint32_t MsixTable::ReadTableDword(size_t dword) const {
  const Entry& entry = entries_[dword / 4];
  switch (dword % 4 * 4) {
    case PCI_MSIX_ENTRY_LOWER_ADDR:
      return entry.address_low;
    case PCI_MSIX_ENTRY_UPPER_ADDR:
      return entry.address_high;
    case PCI_MSIX_ENTRY_DATA:
      return entry.data;
    default:
      return entry.vector_control;
  }
}

void MsixTable::WriteTableDword(size_t dword, uint32_t value) {
  Entry& entry = entries_[dword / 4];
  switch (dword % 4 * 4) {
    case PCI_MSIX_ENTRY_LOWER_ADDR:
      entry.address_low = value;
      break;
    case PCI_MSIX_ENTRY_UPPER_ADDR:
      entry.address_high = value;
      break;
    case PCI_MSIX_ENTRY_DATA:
      entry.data = value;
      break;
    default:
      // Bits 31:1 of Vector Control are reserved and read 0 (§6.8.2.9).
      entry.vector_control = value & PCI_MSIX_ENTRY_CTRL_MASKBIT;
      break;
  }
}

bool MsixTable::pending(size_t index) const { return (pba_[index / 64] >> (index % 64)) & 1; }

void MsixTable::set_pending(size_t index, bool pending) {
  uint64_t bit = uint64_t{1} << (index % 64);
  if (pending) {
    pba_[index / 64] |= bit;
  } else {
    pba_[index / 64] &= ~bit;
  }
}

void MsixTable::UpdateMask(size_t index) {
  const bool masked = !enabled_ || function_masked_ || Masked(entries_[index]);
  if (effective_masked_[index] == masked || !vectors_[index]) return;
  effective_masked_[index] = masked;
  // On unmask the vector is routed first (WriteTable/DeliverIfPending run after this only for
  // the table's own pending bits), so route before letting held interrupts through.
  if (!masked) Route(index);
  vectors_[index]->SetMasked(masked);
}

void MsixTable::Route(size_t index) {
  MsiMessage message = Message(entries_[index]);
  if (routed_[index] == message || !vectors_[index]) return;
  absl::Status status = vectors_[index]->SetMessage(message);
  Log(LogLevel::kDebug, "msix: vector %d -> address %#x data %#x: %s", index, message.address,
      message.data, status.ToString());
  if (status.ok()) {
    routed_[index] = message;
    return;
  }
  // The old route stays in place; forget it so that the next unmask or change retries.
  routed_[index].reset();
  static LogBudget budget(20);
  if (budget.Take()) {
    Log(LogLevel::kWarning, "msix: vector %d: routing to address %#x data %#x: %s", index,
        message.address, message.data, status.ToString());
  }
}

void MsixTable::DeliverIfPending(size_t index) {
  if (index >= vectors_.size() || !pending(index)) return;
  if (!enabled_ || function_masked_ || Masked(entries_[index])) return;
  set_pending(index, false);
  if (vectors_[index]) vectors_[index]->Trigger();
}

}  // namespace minivmm
