// Immutable bytes shared by reference: either owned in memory or a read-only file mapping.
// Kernel images use it so a cached vmlinux is read from the page cache in place instead of
// into a fresh 60+ MiB buffer on every boot.
#ifndef MINIVMM_VMM_BASE_SHARED_BYTES_H_
#define MINIVMM_VMM_BASE_SHARED_BYTES_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace minivmm {

class SharedBytes {
 public:
  SharedBytes() = default;
  SharedBytes(std::vector<uint8_t> bytes);  // NOLINT: implicit, a vector is the common case

  // Maps [offset, offset + length) of the open file read-only (MAP_PRIVATE, prefaulted).
  static absl::StatusOr<SharedBytes> MapFile(int fd, uint64_t offset, uint64_t length,
                                             const std::filesystem::path& path);

  std::span<const uint8_t> span() const { return view_; }
  const uint8_t* data() const { return view_.data(); }
  size_t size() const { return view_.size(); }
  bool empty() const { return view_.empty(); }
  operator std::span<const uint8_t>() const { return view_; }  // NOLINT: a view of the bytes

  friend bool operator==(const SharedBytes& a, const std::vector<uint8_t>& b) {
    return std::equal(a.view_.begin(), a.view_.end(), b.begin(), b.end());
  }

 private:
  std::shared_ptr<const void> owner_;  // keeps the vector or the mapping alive
  std::span<const uint8_t> view_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_SHARED_BYTES_H_
