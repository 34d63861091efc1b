#include "devices/virtio/virtqueue.h"

// The legacy part of the uapi header (vring_init: the pre-1.0 contiguous layout, which we do not
// use) assigns void* without casts and does not compile as C++.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <atomic>
#include <bit>
#include <span>
#include <string>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm::virtio {
namespace {

// Virtio 1.x rings and descriptors are little-endian (§2.7: le16/le32/le64 fields). On the x86
// host the bytes copied out of guest memory are the values, so no conversion is done.
static_assert(std::endian::native == std::endian::little, "virtqueue fields are little-endian");

// Sizes and offsets inside the split rings (§2.7.5, §2.7.6, §2.7.8). The uapi ring structs end
// in flexible arrays, so the trailing event fields' offsets are computed here.
constexpr uint64_t kDescSize = sizeof(vring_desc);
static_assert(kDescSize == 16);
constexpr uint64_t kRingFlagsOffset = 0;    // avail->flags, used->flags
constexpr uint64_t kRingIdxOffset = 2;      // avail->idx, used->idx
constexpr uint64_t kRingEntriesOffset = 4;  // avail->ring[], used->ring[]
constexpr uint64_t kAvailEntrySize = sizeof(uint16_t);
constexpr uint64_t kUsedEntrySize = sizeof(vring_used_elem);
static_assert(kUsedEntrySize == 8);
// Alignment of each area (§2.7, table "Virtqueue Part / Alignment / Size").
constexpr uint64_t kDescTableAlign = VRING_DESC_ALIGN_SIZE;
constexpr uint64_t kAvailRingAlign = VRING_AVAIL_ALIGN_SIZE;
constexpr uint64_t kUsedRingAlign = VRING_USED_ALIGN_SIZE;

// avail: flags, idx, ring[size], used_event. used: flags, idx, ring[size], avail_event.
uint64_t UsedEventOffset(uint16_t size) { return kRingEntriesOffset + kAvailEntrySize * size; }
uint64_t AvailEventOffset(uint16_t size) { return kRingEntriesOffset + kUsedEntrySize * size; }
uint64_t DescTableBytes(uint16_t size) { return kDescSize * size; }
uint64_t AvailRingBytes(uint16_t size) { return UsedEventOffset(size) + sizeof(uint16_t); }
uint64_t UsedRingBytes(uint16_t size) { return AvailEventOffset(size) + sizeof(uint16_t); }

bool IsValidQueueSize(uint16_t size) {
  return size != 0 && size <= kMaxQueueSize && std::has_single_bit(size);
}

// Reads a T at base + offset. base comes from the guest, so the sum is checked for wrapping
// before GuestMemory checks the range. Errors are InvalidArgument: the driver's fault.
template <typename T>
absl::Status ReadField(const GuestMemory& memory, uint64_t base, uint64_t offset, T* value,
                       const char* what) {
  uint64_t address;
  if (__builtin_add_overflow(base, offset, &address) ||
      !memory.Read(address, std::span(reinterpret_cast<uint8_t*>(value), sizeof(T))).ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s at %#x + %#x is outside guest memory", what, base, offset));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status WriteField(GuestMemory& memory, uint64_t base, uint64_t offset, const T& value,
                        const char* what) {
  uint64_t address;
  if (__builtin_add_overflow(base, offset, &address) || !memory.WriteObject(address, value).ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s at %#x + %#x is outside guest memory", what, base, offset));
  }
  return absl::OkStatus();
}

absl::Status CheckArea(const GuestMemory& memory, const char* what, uint64_t address,
                       uint64_t align, uint64_t bytes) {
  if (address % align != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s at %#x is not %d-byte aligned (virtio 1.2 §2.7)", what, address, align));
  }
  if (!memory.Slice(address, bytes).ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s [%#x, +%#x) is not inside one guest memory region", what, address, bytes));
  }
  return absl::OkStatus();
}

// Walks one chain, collecting its buffers. One parser per chain; it holds the state that
// spans the direct and the indirect table (readable-before-writable, byte totals).
class ChainParser {
 public:
  ChainParser(const GuestMemory& memory, bool indirect_allowed)
      : memory_(memory), indirect_allowed_(indirect_allowed) {}

  // Follows the chain from `first` through the table of `count` descriptors at `table`.
  // `count` bounds both the indices and the number of steps, so a loop ends in an error.
  absl::Status WalkTable(uint64_t table, uint32_t count, uint32_t first, bool indirect_table) {
    const std::string where =
        indirect_table ? absl::StrFormat("indirect table at %#x", table) : "descriptor table";
    uint32_t index = first;
    for (uint32_t visited = 0;; ++visited) {
      if (index >= count) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: descriptor index %u is out of range (%u entries)", where, index, count));
      }
      if (visited == count) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: chain is longer than the table's %u entries (a loop?)", where, count));
      }
      vring_desc desc;
      MINIVMM_RETURN_IF_ERROR(ReadField(memory_, table, kDescSize * index, &desc, "descriptor"));
      if (desc.flags & VRING_DESC_F_INDIRECT) {
        if (indirect_table) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s: descriptor %u is INDIRECT inside an indirect table (§2.7.5.3.1)", where, index));
        }
        return WalkIndirect(desc, index);
      }
      MINIVMM_RETURN_IF_ERROR(AddBuffer(desc, where, index));
      if (!(desc.flags & VRING_DESC_F_NEXT)) return absl::OkStatus();
      index = desc.next;
    }
  }

  DescriptorChain& chain() { return chain_; }

 private:
  absl::Status WalkIndirect(const vring_desc& desc, uint32_t index) {
    // §2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC, and never together with NEXT, which makes
    // the indirect descriptor the last of the direct chain (§2.7.5.3.2 allows direct ones
    // before it). Its WRITE flag is ignored (§2.7.5.3.2).
    if (!indirect_allowed_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "descriptor %u is INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated", index));
    }
    if (desc.flags & VRING_DESC_F_NEXT) {
      return absl::InvalidArgumentError(
          absl::StrFormat("descriptor %u has both INDIRECT and NEXT (§2.7.5.3.1)", index));
    }
    if (desc.len == 0 || desc.len % kDescSize != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "indirect table at %#x has length %u, not a nonzero multiple of 16 (§2.7.5.3)", desc.addr,
          desc.len));
    }
    const uint32_t count = desc.len / kDescSize;
    if (count > kMaxIndirectDescriptors) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "indirect table at %#x has %u entries, more than the %u we accept (§2.7.4.1)", desc.addr,
          count, kMaxIndirectDescriptors));
    }
    if (!memory_.Slice(desc.addr, desc.len).ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "indirect table [%#x, +%#x) is not inside one guest memory region", desc.addr, desc.len));
    }
    return WalkTable(desc.addr, count, 0, /*indirect_table=*/true);
  }

  absl::Status AddBuffer(const vring_desc& desc, const std::string& where, uint32_t index) {
    const bool writable = desc.flags & VRING_DESC_F_WRITE;
    if (!writable && seen_writable_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: descriptor %u is device-readable but follows a device-writable one (§2.7.4.2)",
          where, index));
    }
    seen_writable_ |= writable;
    if (desc.len == 0) return absl::OkStatus();  // nothing to access; see the header
    uint64_t end;
    if (__builtin_add_overflow(desc.addr, uint64_t{desc.len}, &end)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: descriptor %u's buffer [%#x, +%#x) wraps past 2^64", where, index,
                          desc.addr, desc.len));
    }
    if (!memory_.Slice(desc.addr, desc.len).ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: descriptor %u's buffer [%#x, +%#x) is not inside one guest "
                          "memory region",
                          where, index, desc.addr, desc.len));
    }
    // At most 2 * 32768 descriptors of < 2^32 bytes each: the sums cannot overflow 64 bits.
    uint64_t& total = writable ? chain_.writable_bytes : chain_.readable_bytes;
    total += desc.len;
    if (total > kMaxChainBytes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: chain's %s bytes exceed %#x (§2.7.5.2)", where,
                          writable ? "writable" : "readable", kMaxChainBytes));
    }
    chain_.buffers.push_back({desc.addr, desc.len, writable});
    return absl::OkStatus();
  }

  const GuestMemory& memory_;
  const bool indirect_allowed_;
  bool seen_writable_ = false;
  DescriptorChain chain_;
};

}  // namespace

absl::Status ValidateQueueLayout(const GuestMemory& memory, const QueueLayout& layout) {
  if (!IsValidQueueSize(layout.size)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("queue size %u is not a power of two in [1, %u] (virtio 1.2 §2.7)",
                        layout.size, kMaxQueueSize));
  }
  MINIVMM_RETURN_IF_ERROR(CheckArea(memory, "descriptor table", layout.desc_table, kDescTableAlign,
                                    DescTableBytes(layout.size)));
  MINIVMM_RETURN_IF_ERROR(CheckArea(memory, "available ring", layout.avail_ring, kAvailRingAlign,
                                    AvailRingBytes(layout.size)));
  return CheckArea(memory, "used ring", layout.used_ring, kUsedRingAlign,
                   UsedRingBytes(layout.size));
}

absl::StatusOr<DescriptorChain> ParseDescriptorChain(const GuestMemory& memory,
                                                     const QueueLayout& layout, uint16_t head,
                                                     bool indirect_allowed) {
  if (!IsValidQueueSize(layout.size)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("queue size %u is not a power of two in [1, %u] (virtio 1.2 §2.7)",
                        layout.size, kMaxQueueSize));
  }
  if (head >= layout.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("chain head %u is not below the queue size %u", head, layout.size));
  }
  ChainParser parser(memory, indirect_allowed);
  MINIVMM_RETURN_IF_ERROR(
      parser.WalkTable(layout.desc_table, layout.size, head, /*indirect_table=*/false));
  parser.chain().head = head;
  return std::move(parser.chain());
}

SplitVirtqueue::SplitVirtqueue(const QueueLayout& layout, bool event_idx, bool indirect_allowed,
                               uint16_t start_index)
    : layout_(layout),
      event_idx_(event_idx),
      indirect_allowed_(indirect_allowed),
      last_avail_idx_(start_index),
      used_idx_(start_index),
      signalled_used_(start_index) {}

absl::Status SplitVirtqueue::CheckSize() const {
  // Ring positions are taken modulo the size; an unchecked size of 0 would divide by zero.
  if (!IsValidQueueSize(layout_.size)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("queue size %u is not a power of two in [1, %u] (virtio 1.2 §2.7)",
                        layout_.size, kMaxQueueSize));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<DescriptorChain>> SplitVirtqueue::PopAvailable(GuestMemory& memory) {
  MINIVMM_RETURN_IF_ERROR(CheckSize());
  uint16_t avail_idx;
  MINIVMM_RETURN_IF_ERROR(
      ReadField(memory, layout_.avail_ring, kRingIdxOffset, &avail_idx, "avail->idx"));
  // Both indices run freely and wrap at 2^16 (§2.7.13.3); the driver can be at most one full
  // ring ahead of us (§2.7.13: the ring has as many entries as the descriptor table).
  const uint16_t pending = avail_idx - last_avail_idx_;
  if (pending == 0) return std::nullopt;
  if (pending > layout_.size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "avail->idx %u is %u entries ahead of the device's %u, more than the queue size %u",
        avail_idx, pending, last_avail_idx_, layout_.size));
  }
  // Pairs with the driver's barrier before its idx update (§2.7.13.3.1): the ring entry and the
  // descriptors it names are read only after idx.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint16_t slot = last_avail_idx_ % layout_.size;
  uint16_t head;
  MINIVMM_RETURN_IF_ERROR(ReadField(memory, layout_.avail_ring,
                                    kRingEntriesOffset + kAvailEntrySize * slot, &head,
                                    "avail->ring entry"));
  absl::StatusOr<DescriptorChain> chain =
      ParseDescriptorChain(memory, layout_, head, indirect_allowed_);
  if (!chain.ok()) {
    return WithContext(chain.status(),
                       absl::StrFormat("avail->ring[%u] (avail idx %u)", slot, last_avail_idx_));
  }
  ++last_avail_idx_;
  return std::move(*chain);
}

absl::Status SplitVirtqueue::PushUsed(GuestMemory& memory, uint16_t head, uint32_t written) {
  MINIVMM_RETURN_IF_ERROR(CheckSize());
  if (head >= layout_.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("used head %u is not below the queue size %u", head, layout_.size));
  }
  // More used entries than chains taken would overwrite used entries the driver has not seen.
  if (used_idx_ == last_avail_idx_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("PushUsed(%u) with no chain in flight (used idx %u)", head, used_idx_));
  }
  const uint16_t slot = used_idx_ % layout_.size;
  const vring_used_elem element = {.id = head, .len = written};
  MINIVMM_RETURN_IF_ERROR(WriteField(memory, layout_.used_ring,
                                     kRingEntriesOffset + kUsedEntrySize * slot, element,
                                     "used->ring entry"));
  // §2.7.8.2: len (and the buffer contents) must be visible before the idx update.
  std::atomic_thread_fence(std::memory_order_release);
  const uint16_t new_idx = used_idx_ + 1;
  MINIVMM_RETURN_IF_ERROR(
      WriteField(memory, layout_.used_ring, kRingIdxOffset, new_idx, "used->idx"));
  used_idx_ = new_idx;
  return absl::OkStatus();
}

absl::StatusOr<bool> SplitVirtqueue::ShouldInterrupt(GuestMemory& memory) {
  MINIVMM_RETURN_IF_ERROR(CheckSize());
  // Our used->idx store must be visible before we read the driver's suppression fields, or we
  // could miss the driver re-enabling interrupts after it last looked at the used ring.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_idx = signalled_used_;
  const uint16_t new_idx = used_idx_;
  if (old_idx == new_idx) return false;
  bool notify;
  if (event_idx_) {
    // §2.7.7.2: notify when the entries written since the last check include index used_event.
    uint16_t used_event;
    MINIVMM_RETURN_IF_ERROR(ReadField(memory, layout_.avail_ring, UsedEventOffset(layout_.size),
                                      &used_event, "avail->used_event"));
    notify = vring_need_event(used_event, new_idx, old_idx);
  } else {
    uint16_t flags;
    MINIVMM_RETURN_IF_ERROR(
        ReadField(memory, layout_.avail_ring, kRingFlagsOffset, &flags, "avail->flags"));
    notify = !(flags & VRING_AVAIL_F_NO_INTERRUPT);
  }
  signalled_used_ = new_idx;
  return notify;
}

absl::Status SplitVirtqueue::EnableNotifications(GuestMemory& memory, bool enable) {
  MINIVMM_RETURN_IF_ERROR(CheckSize());
  if (event_idx_) {
    // §2.7.10.2: the device keeps used->flags 0 and steers with avail_event alone.
    if (enable) {
      MINIVMM_RETURN_IF_ERROR(WriteField(memory, layout_.used_ring, AvailEventOffset(layout_.size),
                                         last_avail_idx_, "used->avail_event"));
    }
  } else {
    const uint16_t flags = enable ? 0 : VRING_USED_F_NO_NOTIFY;
    MINIVMM_RETURN_IF_ERROR(
        WriteField(memory, layout_.used_ring, kRingFlagsOffset, flags, "used->flags"));
  }
  // Orders the store above before the caller's next read of avail->idx; the driver has the
  // matching barrier between its idx update and reading our fields (§2.7.13.4.1).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return absl::OkStatus();
}

}  // namespace minivmm::virtio
