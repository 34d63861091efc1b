#include "vmm/base/shared_bytes.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {

SharedBytes::SharedBytes(std::vector<uint8_t> bytes) {
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  view_ = std::span<const uint8_t>(*owned);
  owner_ = std::move(owned);
}

absl::StatusOr<SharedBytes> SharedBytes::MapFile(int fd, uint64_t offset, uint64_t length,
                                                 const std::filesystem::path& path) {
  SharedBytes bytes;
  if (length == 0) return bytes;
  // mmap offsets must be page aligned: map from the page holding `offset`.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t start = offset - offset % page;
  const uint64_t mapped = length + (offset - start);
  void* base = ::mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, start);
  if (base == MAP_FAILED) return ErrnoError(absl::StrFormat("mmap(%s)", path.string()));
  // The mapping outlives the descriptor: the caller may close fd.
  bytes.owner_ = std::shared_ptr<const void>(
      base, [mapped](const void* p) { ::munmap(const_cast<void*>(p), mapped); });
  bytes.view_ = std::span(static_cast<const uint8_t*>(base) + (offset - start), length);
  return bytes;
}

}  // namespace minivmm
