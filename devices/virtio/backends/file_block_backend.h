// A disk image file or host block device as a virtio-blk backend: positional reads and writes
// on one fd, fdatasync for flush, fallocate for discard and write-zeroes.
#ifndef MINIVMM_DEVICES_VIRTIO_BACKENDS_FILE_BLOCK_BACKEND_H_
#define MINIVMM_DEVICES_VIRTIO_BACKENDS_FILE_BLOCK_BACKEND_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/virtio/block_backend.h"
#include "vmm/base/unique_fd.h"

namespace minivmm::virtio {

class FileBlockBackend : public BlockBackend {
 public:
  // Opens path (a regular file or a block device) and takes an advisory lock on it: exclusive
  // for a writable disk, shared for a read-only one, so that two VMs never write one image
  // (nor one writes an image another reads). Fails if the lock is held, if the size is not a
  // multiple of 512 bytes, or if path is neither a regular file nor a block device.
  static absl::StatusOr<std::unique_ptr<FileBlockBackend>> Open(const std::string& path,
                                                                bool read_only);

  uint64_t size_bytes() const override { return size_bytes_; }
  bool read_only() const override { return read_only_; }
  absl::Status ReadAt(uint64_t offset, std::span<const std::span<uint8_t>> iov) override;
  absl::Status WriteAt(uint64_t offset, std::span<const std::span<const uint8_t>> iov) override;
  absl::Status Flush() override;
  absl::Status Discard(uint64_t offset, uint64_t length) override;
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool may_unmap) override;
  bool supports_discard() const override { return supports_discard_; }
  bool supports_write_zeroes() const override { return !read_only_; }

  const std::string& path() const { return path_; }

 private:
  FileBlockBackend(UniqueFd fd, std::string path, uint64_t size_bytes, bool read_only,
                   bool supports_discard)
      : fd_(std::move(fd)),
        path_(std::move(path)),
        size_bytes_(size_bytes),
        read_only_(read_only),
        supports_discard_(supports_discard) {}

  absl::Status CheckRange(const char* op, uint64_t offset, uint64_t length) const;
  absl::Status CheckWritable(const char* op) const;
  // fallocate(mode) over the range, retried on EINTR; errno is returned as a status (EOPNOTSUPP
  // becomes kUnimplemented through absl::ErrnoToStatus).
  absl::Status Fallocate(int mode, const char* mode_name, uint64_t offset, uint64_t length);
  absl::Status WriteZeroBuffers(uint64_t offset, uint64_t length);

  UniqueFd fd_;
  const std::string path_;
  const uint64_t size_bytes_;
  const bool read_only_;
  const bool supports_discard_;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_BACKENDS_FILE_BLOCK_BACKEND_H_
