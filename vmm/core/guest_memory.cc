#include "vmm/core/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

constexpr uint64_t kPageSize = 4096;

// Words of a dirty bitmap with one bit per page of a region of `size` bytes.
size_t BitmapWords(uint64_t size) { return (size / kPageSize + 63) / 64; }

// Anonymous memory for one region, placed so that host and guest addresses agree modulo
// kHugePageSize. KVM maps a guest 2 MiB page with one nested page-table entry only when the
// host backs it with a 2 MiB page at the same offset; a plain mmap returns any 4 KiB-aligned
// address, and every guest page would then cost its own nested page fault and TLB entry.
absl::StatusOr<uint8_t*> MapRegion(const GuestRegionSpec& spec) {
  const uint64_t slack = kHugePageSize;  // room to slide the region to the wanted offset
  void* raw = ::mmap(nullptr, spec.size + slack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    return ErrnoError(absl::StrFormat("mmap of %d MiB guest memory", spec.size >> 20));
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t wanted = spec.guest_address % kHugePageSize;
  const uintptr_t start = base + (wanted - base % kHugePageSize + kHugePageSize) % kHugePageSize;
  // Give back the slack on both sides; munmap of whole pages inside our own mapping cannot fail.
  if (start > base) ::munmap(raw, start - base);
  if (base + slack > start)
    ::munmap(reinterpret_cast<void*>(start + spec.size), base + slack - start);
  // Transparent huge pages for guest RAM even where the host's policy is "madvise" (the
  // default of many distributions). Best effort: without THP the guest just uses 4 KiB pages.
  ::madvise(reinterpret_cast<void*>(start), spec.size, MADV_HUGEPAGE);
  return reinterpret_cast<uint8_t*>(start);
}

}  // namespace

absl::StatusOr<GuestMemory> GuestMemory::Create(std::span<const GuestRegionSpec> specs) {
  std::vector<GuestRegionSpec> sorted(specs.begin(), specs.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.guest_address < b.guest_address; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const GuestRegionSpec& s = sorted[i];
    if (s.size == 0 || s.guest_address % kPageSize != 0 || s.size % kPageSize != 0 ||
        s.guest_address + s.size < s.guest_address) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest memory region [%#x, +%#x) is empty, unaligned or wraps", s.guest_address, s.size));
    }
    if (i > 0 && sorted[i - 1].guest_address + sorted[i - 1].size > s.guest_address) {
      return absl::InvalidArgumentError(
          absl::StrFormat("guest memory regions overlap at %#x", s.guest_address));
    }
  }
  GuestMemory memory({});
  for (const GuestRegionSpec& s : sorted) {
    MINIVMM_ASSIGN_OR_RETURN(uint8_t * host, MapRegion(s));
    memory.regions_.push_back({s.guest_address, s.size, host});
  }
  return memory;
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : regions_(std::exchange(other.regions_, {})),
      pinned_for_dma_(std::exchange(other.pinned_for_dma_, false)),
      dirty_pages_(std::exchange(other.dirty_pages_, {})),
      dirty_tracking_(other.dirty_tracking_.exchange(false)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    Unmap();
    regions_ = std::exchange(other.regions_, {});
    pinned_for_dma_ = std::exchange(other.pinned_for_dma_, false);
    dirty_pages_ = std::exchange(other.dirty_pages_, {});
    dirty_tracking_.store(other.dirty_tracking_.exchange(false));
  }
  return *this;
}

GuestMemory::~GuestMemory() { Unmap(); }

void GuestMemory::Unmap() {
  for (const Region& r : regions_) ::munmap(r.host, r.size);
  regions_.clear();
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const Region& r : regions_) total += r.size;
  return total;
}

const GuestMemory::Region* GuestMemory::Find(uint64_t gpa, uint64_t length) const {
  for (const Region& r : regions_) {
    // Written so that no addition can overflow: gpa and length are guest-controlled.
    if (gpa >= r.guest_address && gpa - r.guest_address < r.size &&
        length <= r.size - (gpa - r.guest_address)) {
      return &r;
    }
  }
  return nullptr;
}

absl::Status GuestMemory::Read(uint64_t gpa, std::span<uint8_t> out) const {
  const Region* r = Find(gpa, out.size());
  if (r == nullptr) {
    return absl::OutOfRangeError(
        absl::StrFormat("guest memory read [%#x, +%#x) is outside guest RAM", gpa, out.size()));
  }
  std::memcpy(out.data(), r->host + (gpa - r->guest_address), out.size());
  return absl::OkStatus();
}

absl::Status GuestMemory::Write(uint64_t gpa, std::span<const uint8_t> in) {
  const Region* r = Find(gpa, in.size());
  if (r == nullptr) {
    return absl::OutOfRangeError(
        absl::StrFormat("guest memory write [%#x, +%#x) is outside guest RAM", gpa, in.size()));
  }
  std::memcpy(r->host + (gpa - r->guest_address), in.data(), in.size());
  MarkDirty(gpa, in.size());
  return absl::OkStatus();
}

absl::Status GuestMemory::Zero(uint64_t gpa, uint64_t length) {
  if (length == 0) return absl::OkStatus();  // e.g. a segment without bss ending at RAM's end
  MINIVMM_ASSIGN_OR_RETURN(std::span<uint8_t> range, HostRange(gpa, length));
  absl::Status status = ZeroRange(gpa, range);
  // Marked once the bytes read as zero, and even on failure: the partial pages were written.
  MarkDirty(gpa, length);
  return status;
}

absl::Status GuestMemory::ZeroRange(uint64_t gpa, std::span<uint8_t> range) const {
  // Regions are page aligned on the host as in the guest, so guest page boundaries are host
  // page boundaries.
  const uint64_t first_page = (gpa + kPageSize - 1) & ~(kPageSize - 1);
  const uint64_t end = gpa + range.size();
  const uint64_t last_page = end & ~(kPageSize - 1);
  if (first_page >= last_page || pinned_for_dma_) {
    std::fill(range.begin(), range.end(), 0);
    return absl::OkStatus();
  }
  std::fill(range.begin(), range.begin() + (first_page - gpa), 0);
  std::fill(range.begin() + (last_page - gpa), range.end(), 0);
  if (::madvise(range.data() + (first_page - gpa), last_page - first_page, MADV_DONTNEED) != 0) {
    return ErrnoError(absl::StrFormat("madvise(DONTNEED, guest [%#x, +%#x))", first_page,
                                      last_page - first_page));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::span<uint8_t>> GuestMemory::Slice(uint64_t gpa, uint64_t length) {
  MINIVMM_ASSIGN_OR_RETURN(std::span<uint8_t> range, HostRange(gpa, length));
  MarkDirty(gpa, length);
  return range;
}

absl::StatusOr<std::span<uint8_t>> GuestMemory::HostRange(uint64_t gpa, uint64_t length) const {
  const Region* r = Find(gpa, length);
  if (r == nullptr) {
    return absl::OutOfRangeError(
        absl::StrFormat("guest memory range [%#x, +%#x) is outside guest RAM", gpa, length));
  }
  return std::span<uint8_t>(r->host + (gpa - r->guest_address), length);
}

absl::StatusOr<std::span<const uint8_t>> GuestMemory::Slice(uint64_t gpa, uint64_t length) const {
  const Region* r = Find(gpa, length);
  if (r == nullptr) {
    return absl::OutOfRangeError(
        absl::StrFormat("guest memory range [%#x, +%#x) is outside guest RAM", gpa, length));
  }
  return std::span<const uint8_t>(r->host + (gpa - r->guest_address), length);
}

void GuestMemory::StartDirtyTracking() {
  if (dirty_pages_.empty()) {
    // Allocated before the flag is published, so a writer that sees tracking on sees the
    // bitmaps. make_unique<T[]> value-initializes: every word starts 0.
    for (const Region& r : regions_) {
      dirty_pages_.push_back(std::make_unique<std::atomic<uint64_t>[]>(BitmapWords(r.size)));
    }
  }
  dirty_tracking_.store(true);
}

void GuestMemory::StopDirtyTracking() { dirty_tracking_.store(false); }

std::vector<uint64_t> GuestMemory::TakeDirtyPages(size_t region_index) {
  if (region_index >= dirty_pages_.size()) return {};
  std::vector<uint64_t> bits(BitmapWords(regions_[region_index].size));
  std::atomic<uint64_t>* words = dirty_pages_[region_index].get();
  for (size_t i = 0; i < bits.size(); ++i) {
    // acquire: the bytes written before a page was marked are visible to whoever copies it.
    bits[i] = words[i].exchange(0, std::memory_order_acquire);
  }
  return bits;
}

void GuestMemory::MarkDirty(uint64_t gpa, uint64_t length) {
  // The one check every write pays while tracking is off: a plain load on x86.
  if (length == 0 || !dirty_tracking_.load()) return;
  const Region* r = Find(gpa, length);  // callers checked the range: never null
  std::atomic<uint64_t>* words = dirty_pages_[r - regions_.data()].get();
  const uint64_t first = (gpa - r->guest_address) / kPageSize;
  const uint64_t last = (gpa - r->guest_address + length - 1) / kPageSize;  // inside r: no wrap
  // Word by word, so that zeroing a 25 MiB bss is a hundred atomic ors, not six thousand.
  for (uint64_t word = first / 64; word <= last / 64; ++word) {
    const uint64_t low = word == first / 64 ? first % 64 : 0;
    const uint64_t high = word == last / 64 ? last % 64 : 63;
    const uint64_t mask = (~uint64_t{0} >> (63 - high)) & (~uint64_t{0} << low);
    // release: pairs with TakeDirtyPages' acquire, publishing the bytes written before.
    words[word].fetch_or(mask, std::memory_order_release);
  }
}

}  // namespace minivmm
