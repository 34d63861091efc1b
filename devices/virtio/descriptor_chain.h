// A parsed virtqueue descriptor chain: the guest buffers of one request, already validated
// against guest memory and the queue (devices/virtio/virtqueue.h does the parsing). Devices
// move bytes in and out of a chain only through ChainReader/ChainWriter, which never step
// outside the buffers the driver offered.
#ifndef MINIVMM_DEVICES_VIRTIO_DESCRIPTOR_CHAIN_H_
#define MINIVMM_DEVICES_VIRTIO_DESCRIPTOR_CHAIN_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {

// One descriptor's buffer (virtio 1.2 §2.7.5). Every buffer in a parsed chain lies inside one
// guest memory region.
struct GuestBuffer {
  uint64_t address = 0;
  uint32_t length = 0;
  bool device_writable = false;
};

struct DescriptorChain {
  uint16_t head = 0;  // index of the first descriptor: what goes back on the used ring
  // Device-readable buffers first, then device-writable ones (§2.7.4.2: a driver must not put a
  // readable descriptor after a writable one; the parser rejects chains that do).
  std::vector<GuestBuffer> buffers;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

// Reads the device-readable part of a chain as one byte stream.
class ChainReader {
 public:
  ChainReader(const GuestMemory& memory, const DescriptorChain& chain);
  // Copies the next out.size() bytes; fails (consuming nothing) if fewer remain.
  absl::Status Read(std::span<uint8_t> out);
  template <typename T>
  absl::Status ReadObject(T* value) {
    return Read(std::span(reinterpret_cast<uint8_t*>(value), sizeof(T)));
  }
  uint64_t remaining() const { return remaining_; }
  // Hands the next up-to-max_bytes readable bytes as host spans (for pwritev-style I/O) and
  // advances past them.
  std::vector<std::span<const uint8_t>> TakeSpans(uint64_t max_bytes);

 private:
  const GuestMemory& memory_;
  std::vector<GuestBuffer> buffers_;  // readable ones only
  size_t index_ = 0;
  uint64_t offset_ = 0;  // into buffers_[index_]
  uint64_t remaining_ = 0;
};

// Writes into the device-writable part of a chain as one byte stream.
class ChainWriter {
 public:
  ChainWriter(GuestMemory& memory, const DescriptorChain& chain);
  // Copies in; fails (writing nothing) if fewer than in.size() writable bytes remain.
  absl::Status Write(std::span<const uint8_t> in);
  template <typename T>
  absl::Status WriteObject(const T& value) {
    return Write(std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }
  uint64_t remaining() const { return remaining_; }
  // Bytes written so far: the `len` the device reports in the used ring element.
  uint64_t written() const { return written_; }
  // Host spans for the next up-to-max_bytes writable bytes (preadv-style I/O); the caller fills
  // them and the writer counts them as written.
  std::vector<std::span<uint8_t>> TakeSpans(uint64_t max_bytes);

 private:
  GuestMemory& memory_;
  std::vector<GuestBuffer> buffers_;  // writable ones only
  size_t index_ = 0;
  uint64_t offset_ = 0;
  uint64_t remaining_ = 0;
  uint64_t written_ = 0;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_DESCRIPTOR_CHAIN_H_
