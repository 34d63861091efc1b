// The device side of a split virtqueue (virtio 1.2 §2.7): takes descriptor chains off the
// available ring, returns them on the used ring, and decides when to notify. Everything in the
// rings and descriptor tables is written by the guest, possibly while we read it, so every
// index, length and address is checked before use and guest memory is only touched through
// GuestMemory's bounds-checked calls. No KVM here: the parser and queue are fuzzed directly
// (tests/fuzz/virtqueue_fuzzer.cc).
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTQUEUE_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTQUEUE_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/virtio/descriptor_chain.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {

// Largest split queue size (virtio 1.2 §2.7: "The maximum Queue Size value is 32768").
inline constexpr uint16_t kMaxQueueSize = 32768;

// Most descriptors we accept in one indirect table. The spec bounds an indirect table only by
// its len (len / 16 entries) but lets the device have "a reasonable limit of descriptors it
// will allow in a chain" (§2.7.4.1); without one a 4 GiB table would cost 268M iterations.
inline constexpr uint32_t kMaxIndirectDescriptors = kMaxQueueSize;

// Most bytes a chain may offer in either direction: the driver must not add a chain longer
// than 2^32 bytes (§2.7.5.2), and the used ring's len is 32 bits (§2.7.8).
inline constexpr uint64_t kMaxChainBytes = 0xffff'ffff;

// What the driver programmed for one queue through the common configuration (virtio 1.2
// §4.1.4.3).
struct QueueLayout {
  uint16_t size = 0;
  uint64_t desc_table = 0;
  uint64_t avail_ring = 0;
  uint64_t used_ring = 0;
};

// Checks size is a power of two in [1, 32768], the three areas are aligned (16/2/4 bytes,
// §2.7) and each lies entirely inside one guest memory region (sizes 16*n, 6+2*n and 6+8*n,
// trailing event fields included whether or not VIRTIO_F_EVENT_IDX is negotiated).
absl::Status ValidateQueueLayout(const GuestMemory& memory, const QueueLayout& layout);

// Pure parser: follows the chain starting at `head` through the descriptor table and, when
// indirect_allowed (VIRTIO_F_INDIRECT_DESC negotiated), through one indirect table (§2.7.5.3).
// Rejects with InvalidArgument, naming the problem:
//  - head or next >= the table's size (queue size, or len / 16 for an indirect table);
//  - more descriptors than the table holds (which is how loops are caught);
//  - a buffer [addr, addr + len) that wraps or is not inside one guest memory region;
//  - an indirect descriptor when not negotiated, with NEXT set, inside an indirect table, or
//    whose table is empty, not a multiple of 16 bytes, over kMaxIndirectDescriptors entries or
//    not inside guest memory (its own WRITE flag is ignored, §2.7.5.3.2);
//  - a device-readable descriptor after a device-writable one (§2.7.4.2);
//  - readable or writable bytes totalling more than kMaxChainBytes.
// Zero-length descriptors are accepted (the spec does not forbid them) but contribute no buffer
// and their address is not checked; they still count towards the length bound and the
// readable-before-writable rule.
absl::StatusOr<DescriptorChain> ParseDescriptorChain(const GuestMemory& memory,
                                                     const QueueLayout& layout, uint16_t head,
                                                     bool indirect_allowed);

// One split virtqueue's device-side state: the next available entry to consume and the next
// used entry to fill. Not thread-safe: a queue is served by one thread at a time.
//
// The layout is not trusted: every call checks the queue size and computes ring addresses
// without overflow, so a queue the caller forgot to validate fails cleanly. Call
// ValidateQueueLayout when the driver enables the queue (§4.1.4.3) to report the error early.
class SplitVirtqueue {
 public:
  // start_index: where both rings continue (0 for a queue the driver just set up; the used
  // ring's idx for one resumed after a snapshot, see ActiveQueue::start_index).
  SplitVirtqueue(const QueueLayout& layout, bool event_idx, bool indirect_allowed,
                 uint16_t start_index = 0);

  // The next available chain (advancing last_avail_idx), or nullopt when the ring is empty.
  // An error means the driver broke the protocol (avail idx more than queue size ahead, bad
  // head, bad chain): the caller marks the device NEEDS_RESET. last_avail_idx does not advance
  // past a chain that fails to parse, so calling again returns the same error.
  absl::StatusOr<std::optional<DescriptorChain>> PopAvailable(GuestMemory& memory);

  // Returns the chain `head` to the driver with `written` bytes written (§2.7.8): the used
  // element, then a release fence, then used->idx. Device bugs fail without touching the ring:
  // head >= queue size (InvalidArgument), or more used entries than chains popped
  // (FailedPrecondition), which would overwrite entries the driver has not read yet.
  absl::Status PushUsed(GuestMemory& memory, uint16_t head, uint32_t written);

  // Whether the driver wants a used buffer notification for the entries pushed since the last
  // call (§2.7.7): false when none were pushed; otherwise, without EVENT_IDX, unless avail->flags
  // has VRING_AVAIL_F_NO_INTERRUPT; with EVENT_IDX, when used->idx passed used_event
  // (vring_need_event).
  absl::StatusOr<bool> ShouldInterrupt(GuestMemory& memory);

  // Available buffer notification suppression (§2.7.10). With EVENT_IDX, enabling writes
  // avail_event = last_avail_idx, so the driver notifies for its next buffer, and disabling
  // leaves avail_event behind (no notification until the index wraps back to it); without
  // EVENT_IDX, clears or sets VRING_USED_F_NO_NOTIFY. Ends with a full fence: after enabling, the
  // caller must poll PopAvailable once more, or a buffer added just before would go unnoticed.
  absl::Status EnableNotifications(GuestMemory& memory, bool enable);

  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint16_t used_idx() const { return used_idx_; }
  const QueueLayout& layout() const { return layout_; }

 private:
  absl::Status CheckSize() const;

  QueueLayout layout_;
  bool event_idx_;
  bool indirect_allowed_;
  uint16_t last_avail_idx_ = 0;  // next avail->ring entry to consume (free-running, §2.7.6)
  uint16_t used_idx_ = 0;        // our copy of used->idx (free-running, §2.7.8)
  uint16_t signalled_used_ = 0;  // used_idx_ at the last ShouldInterrupt call
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTQUEUE_H_
