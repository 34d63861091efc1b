// Storage behind a virtio-blk device: a byte-addressed disk that the request layer
// (virtio_blk_request.h) reads, writes, flushes and trims. The request layer has already checked
// every range against size_bytes(), so implementations see only in-range requests; they still
// check, since a second line of defence costs one comparison.
#ifndef MINIVMM_DEVICES_VIRTIO_BLOCK_BACKEND_H_
#define MINIVMM_DEVICES_VIRTIO_BLOCK_BACKEND_H_

#include <cstdint>
#include <span>

#include "absl/status/status.h"

namespace minivmm::virtio {

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;

  // Disk size in bytes; a multiple of 512 (virtio 1.2 §5.2.4: capacity counts 512-byte sectors).
  virtual uint64_t size_bytes() const = 0;
  // A read-only disk makes the device offer VIRTIO_BLK_F_RO and fail writes (§5.2.6.2).
  virtual bool read_only() const = 0;

  // Fills every byte of iov, in order, from the disk at offset (preadv semantics). A short read
  // is an error: the guest asked for sectors inside the disk, so all of them must arrive.
  virtual absl::Status ReadAt(uint64_t offset, std::span<const std::span<uint8_t>> iov) = 0;
  // Writes every byte of iov, in order, to the disk at offset (pwritev semantics).
  virtual absl::Status WriteAt(uint64_t offset, std::span<const std::span<const uint8_t>> iov) = 0;
  // Makes completed writes durable (fdatasync): what VIRTIO_BLK_T_FLUSH promises (§5.2.6.2).
  virtual absl::Status Flush() = 0;
  // Lets the storage deallocate [offset, offset + length); later reads may return anything
  // (§5.2.6.1: the driver must not assume what discarded sectors read as). Returns
  // kUnimplemented when the storage cannot deallocate, which the device reports as
  // VIRTIO_BLK_S_UNSUPP.
  virtual absl::Status Discard(uint64_t offset, uint64_t length) = 0;
  // Makes [offset, offset + length) read as zeroes (§5.2.6.2), deallocating it if may_unmap and
  // the storage can.
  virtual absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool may_unmap) = 0;

  // Whether to offer VIRTIO_BLK_F_DISCARD, and whether a write-zeroes request may deallocate
  // (the config field write_zeroes_may_unmap, §5.2.4).
  virtual bool supports_discard() const = 0;
  // Whether to offer VIRTIO_BLK_F_WRITE_ZEROES.
  virtual bool supports_write_zeroes() const = 0;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_BLOCK_BACKEND_H_
