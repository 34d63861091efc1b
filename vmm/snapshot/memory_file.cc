#include "vmm/snapshot/memory_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unique_fd.h"
#include "vmm/snapshot/remove_unless_kept.h"

namespace minivmm {
namespace {

// x86-64's base page: the granularity of holes in the file, and of mmap offsets into it.
// GuestMemory regions are multiples of it, so every region starts at an aligned file offset.
constexpr uint64_t kPageSize = 4096;
// Consecutive non-zero pages go out in one pwrite of up to this much: few system calls, while
// the pages just scanned are still in the cache.
constexpr uint64_t kMaxWriteBatch = 8ull << 20;



absl::Status PwriteAll(int fd, const uint8_t* data, uint64_t size, uint64_t offset,
                       const std::string& what) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrFormat("pwrite(%s, offset %#x)", what, offset));
    data += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// Writes the non-zero pages of one region at file_offset; zero pages are skipped, so in a new
// file they stay holes.
absl::Status WriteRegion(int fd, const GuestMemory::Region& region, uint64_t file_offset,
                         const std::string& what) {
  uint64_t page = 0;
  while (page < region.size) {
    if (IsZeroPage(region.host + page)) {
      page += kPageSize;
      continue;
    }
    const uint64_t start = page;
    page += kPageSize;
    while (page < region.size && page - start < kMaxWriteBatch && !IsZeroPage(region.host + page))
      page += kPageSize;
    MINIVMM_RETURN_IF_ERROR(
        PwriteAll(fd, region.host + start, page - start, file_offset + start, what));
  }
  return absl::OkStatus();
}

// Opens the memory file for reading and checks it is a regular file of the expected size.
absl::StatusOr<UniqueFd> OpenAndCheck(const std::filesystem::path& path, uint64_t expected_size) {
  const std::string what = path.string();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrCat("cannot open memory file ", what));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(absl::StrCat("fstat(", what, ")"));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("memory file %s is not a regular file", what));
  }
  if (static_cast<uint64_t>(st.st_size) != expected_size) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is %d bytes, the state file describes %d bytes of guest memory: the two files are "
        "not from the same snapshot, or the copy was cut short",
        what, st.st_size, expected_size));
  }
  return fd;
}

}  // namespace

bool IsZeroPage(const uint8_t* page) {
  alignas(64) static constexpr uint8_t kZeroPage[kPageSize] = {};
  return std::memcmp(page, kZeroPage, kPageSize) == 0;
}

absl::Status WriteMemoryFile(const std::filesystem::path& path, const GuestMemory& memory) {
  const std::string what = path.string();
  // O_EXCL: never overwrite another snapshot; and only a new file has holes where we skip.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError(absl::StrCat("cannot create memory file ", what));
  RemoveUnlessKept remove(path);
  uint64_t offset = 0;
  for (const GuestMemory::Region& region : memory.regions()) {
    MINIVMM_RETURN_IF_ERROR(WriteRegion(fd.get(), region, offset, what));
    offset += region.size;
  }
  // Trailing zero pages were never written: extend the file over them (as a hole).
  if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
    return ErrnoError(absl::StrFormat("ftruncate(%s, %d)", what, offset));
  }
  if (::fsync(fd.get()) != 0) return ErrnoError(absl::StrCat("fsync(", what, ")"));
  if (::close(fd.Release()) != 0) return ErrnoError(absl::StrCat("close(", what, ")"));
  remove.Keep();
  return absl::OkStatus();
}

absl::Status CheckMemoryFile(const std::filesystem::path& path, uint64_t expected_size) {
  return OpenAndCheck(path, expected_size).status();
}

absl::Status LoadMemoryFile(const std::filesystem::path& path, GuestMemory& memory) {
  const std::string what = path.string();
  // A device keeps DMA-ing into the pages VFIO pinned; replacing the mapping would hand the
  // guest new pages the device never sees.
  if (memory.pinned_for_dma()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot load %s: guest memory is already pinned for device DMA (load the memory file "
        "before passthrough devices map guest memory)",
        what));
  }
  MINIVMM_ASSIGN_OR_RETURN(UniqueFd fd, OpenAndCheck(path, memory.total_size()));
  uint64_t offset = 0;
  for (const GuestMemory::Region& region : memory.regions()) {
    if (offset % kPageSize != 0 || reinterpret_cast<uintptr_t>(region.host) % kPageSize != 0) {
      return absl::InternalError(absl::StrFormat(
          "guest memory region at %#x is not page aligned in %s", region.guest_address, what));
    }
    // MAP_PRIVATE: pages load lazily on first touch, and the guest's writes go to private
    // copies, never to the file. The mapping keeps its own reference; fd may close after.
    void* mapped =
        ::mmap(region.host, region.size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd.get(), static_cast<off_t>(offset));
    if (mapped == MAP_FAILED) {
      const int err = errno;
      // A failed MAP_FIXED may have unmapped the old range already; put anonymous memory back
      // so the region stays valid for GuestMemory (its contents are lost either way).
      ::mmap(region.host, region.size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      return ErrnoError(absl::StrFormat("mmap(%s, offset %#x, %d MiB) over guest RAM at %#x", what,
                                        offset, region.size >> 20, region.guest_address),
                        err);
    }
    offset += region.size;
  }
  return absl::OkStatus();
}

}  // namespace minivmm
