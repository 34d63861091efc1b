// Guest RAM: anonymous mmap-backed regions at guest-physical addresses, accessed only through
// bounds-checked calls that return errors (guest addresses are guest-controlled input).
#ifndef MINIVMM_VMM_CORE_GUEST_MEMORY_H_
#define MINIVMM_VMM_CORE_GUEST_MEMORY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace minivmm {

// Transparent huge page size on x86-64; guest RAM is laid out to be backed by such pages.
inline constexpr uint64_t kHugePageSize = 2ull << 20;

struct GuestRegionSpec {
  uint64_t guest_address;
  uint64_t size;
};

class GuestMemory {
 public:
  struct Region {
    uint64_t guest_address;
    uint64_t size;
    uint8_t* host;  // owned mapping of `size` bytes
  };

  // Maps each region with MAP_NORESERVE so memory is allocated lazily, on the guest's first
  // touch, and asks for transparent huge pages (MADV_HUGEPAGE) with the host address congruent
  // to the guest address modulo kHugePageSize. Regions must be page-aligned, non-empty and must
  // not overlap.
  static absl::StatusOr<GuestMemory> Create(std::span<const GuestRegionSpec> specs);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  // Copies guest memory [gpa, gpa + out.size()) into out. The range must lie inside one region.
  absl::Status Read(uint64_t gpa, std::span<uint8_t> out) const;
  absl::Status Write(uint64_t gpa, std::span<const uint8_t> in);

  // Makes [gpa, gpa + length) read as zero. Whole pages are dropped (MADV_DONTNEED) rather
  // than written, so zeroing memory the guest never touched costs no page faults: a kernel's
  // 25 MiB bss is free. Once pinned for DMA they are written instead. The range must lie inside
  // one region.
  absl::Status Zero(uint64_t gpa, uint64_t length);

  // Says that every page is now pinned and mapped for device DMA (VFIO). Dropping a pinned page
  // would give the guest a fresh page while the device kept writing the old one, so from now
  // on Zero writes zeros in place.
  void MarkPinnedForDma() { pinned_for_dma_ = true; }
  bool pinned_for_dma() const { return pinned_for_dma_; }

  // Host view of [gpa, gpa + length), which must lie inside one region. While dirty tracking is
  // on, the whole range is marked dirty when the view is taken: callers use it to write.
  absl::StatusOr<std::span<uint8_t>> Slice(uint64_t gpa, uint64_t length);
  // Read-only host view, for code that holds a const GuestMemory& (e.g. a virtio ChainReader).
  absl::StatusOr<std::span<const uint8_t>> Slice(uint64_t gpa, uint64_t length) const;

  // Migration: while on, every page written through Write, Zero or the mutable Slice is marked
  // dirty (the VMM's own writes, which KVM's dirty log does not see). The mutable Slice marks
  // its whole range: callers use it to write. Note that it marks before the caller writes, so a
  // TakeDirtyPages between the Slice and the write returns the page before it holds the new
  // bytes; the migration's last pass must account for views still in use.
  //
  // Start and Stop are called from one thread (the one that takes the pages); Write, Zero and
  // Slice may run on any thread meanwhile. The bitmaps are allocated by the first Start and kept
  // until destruction, so a writer that saw tracking on never marks a freed bitmap.
  void StartDirtyTracking();
  void StopDirtyTracking();
  bool dirty_tracking() const { return dirty_tracking_.load(); }
  // The pages of region `index` marked since the last call, one bit per 4 KiB page (bit i % 64
  // of word i / 64), cleared as they are taken. Empty when tracking never started (or for an
  // index past the last region).
  std::vector<uint64_t> TakeDirtyPages(size_t region_index);

  template <typename T>
  absl::Status WriteObject(uint64_t gpa, const T& value) {
    return Write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

  const std::vector<Region>& regions() const { return regions_; }
  uint64_t total_size() const;

 private:
  explicit GuestMemory(std::vector<Region> regions) : regions_(std::move(regions)) {}
  const Region* Find(uint64_t gpa, uint64_t length) const;
  // The host bytes of [gpa, gpa + length), without marking them dirty.
  absl::StatusOr<std::span<uint8_t>> HostRange(uint64_t gpa, uint64_t length) const;
  // Zero's work on its host range: partial pages written, whole ones dropped unless pinned.
  absl::Status ZeroRange(uint64_t gpa, std::span<uint8_t> range) const;
  // Marks the pages of [gpa, gpa + length), which lies inside one region, if tracking is on.
  void MarkDirty(uint64_t gpa, uint64_t length);
  void Unmap();

  std::vector<Region> regions_;
  bool pinned_for_dma_ = false;
  // One bitmap per region (parallel to regions_), empty until the first StartDirtyTracking.
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> dirty_pages_;
  std::atomic<bool> dirty_tracking_ = false;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_GUEST_MEMORY_H_
