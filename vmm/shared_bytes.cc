#include "vmm/shared_bytes.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "vmm/errno_status.h"

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
  // Our own descriptor, so the caller's may close: file_origin() stays valid with the bytes.
  const int own_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own_fd < 0) return ErrnoError(absl::StrFormat("dup(%s)", path.string()));
  void* base = ::mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, start);
  if (base == MAP_FAILED) {
    const absl::Status error = ErrnoError(absl::StrFormat("mmap(%s)", path.string()));
    ::close(own_fd);
    return error;
  }
  bytes.owner_ = std::shared_ptr<const void>(base, [mapped, own_fd](const void* p) {
    ::munmap(const_cast<void*>(p), mapped);
    ::close(own_fd);
  });
  bytes.file_origin_ = FileOrigin{own_fd, offset};
  bytes.view_ = std::span(static_cast<const uint8_t*>(base) + (offset - start), length);
  return bytes;
}

}  // namespace minivmm
