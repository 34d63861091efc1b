// MSI-X (PCI Local Bus 3.0 §6.8.2): the capability a function places in config space, and the
// vector table and pending-bit array (PBA) it exposes in a BAR. Each table entry is backed by an
// MsiInterrupt; the table keeps the interrupt's message in step with what the guest programs and
// decides, per Notify, between delivering the vector and latching its pending bit.
#ifndef MINIVMM_DEVICES_PCI_MSIX_H_
#define MINIVMM_DEVICES_PCI_MSIX_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/pci/pci_state.pb.h"
#include "vmm/core/msi_interrupt.h"

namespace minivmm {

// The MSI-X capability after its ID and next-pointer bytes (PCI 3.0 §6.8.2.1-6.8.2.5): Message
// Control (2 bytes), Table Offset/BIR (4), PBA Offset/BIR (4). Pass both arrays to
// PciConfigSpace::AddCapability with id PCI_CAP_ID_MSIX.
struct MsixCapabilityBytes {
  static constexpr size_t kSize = 10;
  std::array<uint8_t, kSize> body{};
  // Only Message Control's MSI-X Enable (bit 15) and Function Mask (bit 14) are writable.
  std::array<uint8_t, kSize> writable_mask{};
};

// Builds the capability for a table of table_size entries (1..2048) at table_offset in BAR
// table_bar and a PBA at pba_offset in BAR pba_bar. Offsets must be qword aligned: their low three
// bits hold the BAR indicator (§6.8.2.4). Fails on out-of-range arguments.
absl::StatusOr<MsixCapabilityBytes> MsixCapabilityBody(uint16_t table_size, uint8_t table_bar,
                                                       uint32_t table_offset, uint8_t pba_bar,
                                                       uint32_t pba_offset);

class MsixTable {
 public:
  // Size of one table entry: address low, address high, data, vector control (§6.8.2.6).
  static constexpr size_t kEntrySize = 16;
  // Message Control's Table Size field has 11 bits (§6.8.2.3).
  static constexpr size_t kMaxVectors = 2048;

  // Allocates table_size (1..kMaxVectors) vectors from allocator and builds the table.
  static absl::StatusOr<std::unique_ptr<MsixTable>> Create(MsiAllocator& allocator,
                                                           uint16_t table_size);
  // vectors[i] backs table entry i; vectors.size() is the table size (1..kMaxVectors, matching
  // the capability). Entries start masked with a zero message (§6.8.2.9).
  explicit MsixTable(std::vector<std::unique_ptr<MsiInterrupt>> vectors);

  size_t table_size() const { return vectors_.size(); }
  size_t table_bytes() const { return vectors_.size() * kEntrySize; }
  // One pending bit per vector, in qwords (§6.8.2.10).
  size_t pba_bytes() const { return (vectors_.size() + 63) / 64 * 8; }

  // MMIO accesses to the table and the PBA, offsets relative to their starts. Only aligned
  // 4- and 8-byte accesses inside the structure are honoured (§6.8.2: other accesses are
  // undefined); others are logged, reads of them return zeros. Writing an entry stores it; the
  // entry's MsiInterrupt is pointed at its message when the entry becomes unmasked and when its
  // message changes while unmasked. Unmasking a vector whose pending bit is set delivers it and
  // clears the bit. The PBA is read-only: writes to it are the owner's to ignore.
  void ReadTable(uint64_t offset, std::span<uint8_t> data);
  void WriteTable(uint64_t offset, std::span<const uint8_t> data);
  void ReadPba(uint64_t offset, std::span<uint8_t> data);

  // Mirrors Message Control's MSI-X Enable and Function Mask bits; the owner calls this after
  // each config write that touches them. With MSI-X enabled and the function unmasked, pending
  // vectors whose entries are unmasked are delivered.
  void SetControl(bool enabled, bool function_masked);

  // The device raises vector `index`. With MSI-X enabled it is delivered, or latched in the PBA
  // while the function or the entry is masked (§6.8.2.9). With MSI-X disabled nothing happens
  // (the device signals INTx instead). Out-of-range indexes are ignored. Thread-safe: device
  // threads call this while vCPU threads access the table.
  void Notify(uint16_t index);

  bool enabled() const;

  // Snapshot and restore of the table, the PBA and the Message Control bits. RestoreState checks
  // the whole message first (entry and PBA counts match this table, reserved bits clear) and,
  // on a bad field, changes nothing and names the field. It then leaves every MsiInterrupt
  // routed and masked as if the guest had written the same entries and control bits: entries
  // whose mask bit is clear are routed to their message, masked ones keep their route, and each
  // vector is told its effective mask. A pending vector stays latched while anything masks it;
  // one that nothing masks is delivered and cleared, as unmasking it would (§6.8.2.9). Like
  // SetControl, it does not touch config space: the owner restores Message Control there.
  state::MsixTableState SaveState() const;
  absl::Status RestoreState(const state::MsixTableState& s);

 private:
  struct Entry {
    uint32_t address_low = 0;
    uint32_t address_high = 0;
    uint32_t data = 0;
    uint32_t vector_control;
  };

  static bool Aligned(uint64_t offset, size_t size, size_t limit);
  static MsiMessage Message(const Entry& entry);
  static bool Masked(const Entry& entry);
  // RestoreState's validation: the message fits this table (reads only its fixed size).
  absl::Status CheckState(const state::MsixTableState& s) const;
  uint32_t ReadTableDword(size_t dword) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void WriteTableDword(size_t dword, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool pending(size_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void set_pending(size_t index, bool pending) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Points vector `index` at its entry's message unless it already is. Runs under mutex_ so that
  // routes reach the interrupt in the order the guest wrote them; MsiInterrupt never calls back.
  // Tells the vector when its effective mask (entry, function mask, enable) changes.
  void UpdateMask(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Route(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Delivers vector `index` if it is pending and nothing masks it any more.
  void DeliverIfPending(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Fixed at construction, so reading the pointers needs no lock.
  const std::vector<std::unique_ptr<MsiInterrupt>> vectors_;

  mutable absl::Mutex mutex_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mutex_);
  // The message each vector was last successfully pointed at, to skip redundant route updates
  // (each costs the VMM a KVM_SET_GSI_ROUTING).
  std::vector<std::optional<MsiMessage>> routed_ ABSL_GUARDED_BY(mutex_);
  std::vector<uint64_t> pba_ ABSL_GUARDED_BY(mutex_);
  // What each vector was last told by SetMasked; entries start masked (§6.8.2.9).
  std::vector<bool> effective_masked_ ABSL_GUARDED_BY(mutex_);
  bool enabled_ ABSL_GUARDED_BY(mutex_) = false;
  bool function_masked_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_PCI_MSIX_H_
