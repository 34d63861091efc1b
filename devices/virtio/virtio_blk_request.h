// The virtio-blk device's request logic (virtio 1.2 §5.2), apart from any transport: one
// descriptor chain in, one status byte and a used length out. It also describes what the device
// offers: its feature bits and its configuration space.
//
// Request layout (§5.2.6): the device-readable part starts with struct virtio_blk_outhdr
// (type, reserved/ioprio, sector); the device-writable part ends with the status byte. "data" is
// what lies between: readable for OUT, DISCARD and WRITE_ZEROES, writable for IN and GET_ID.
// The status byte is always the last writable byte, wherever the buffer boundaries fall.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_BLK_REQUEST_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_BLK_REQUEST_H_

#include <linux/virtio_blk.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "devices/virtio/block_backend.h"
#include "devices/virtio/descriptor_chain.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {

// §5.2.6: sector numbers and data lengths count 512-byte sectors, whatever blk_size says.
inline constexpr uint64_t kBlkSectorSize = 512;

// Limits the device advertises in its configuration space (§5.2.4) and enforces per request.
// One discard or write-zeroes segment may cover up to 1 GiB: this bounds how long one request
// holds the queue when write-zeroes falls back to writing zero buffers.
inline constexpr uint32_t kBlkMaxDiscardSectors = 1u << 21;
inline constexpr uint32_t kBlkMaxWriteZeroesSectors = 1u << 21;
// Linux merges up to max_discard_seg discard ranges into one request; write-zeroes it always
// sends as a single range.
inline constexpr uint32_t kBlkMaxDiscardSegments = 16;
inline constexpr uint32_t kBlkMaxWriteZeroesSegments = 1;
// A hint for how the driver splits discards (§5.2.5): 4 KiB, the block size of the common host
// filesystems, so that punched holes free whole blocks.
inline constexpr uint32_t kBlkDiscardSectorAlignment = 8;

// The part of struct virtio_blk_config the device exposes: through write_zeroes_may_unmap and
// its padding. Secure-erase and zoned fields follow in newer headers; the device offers neither
// feature, so a driver never reads them.
inline constexpr size_t kBlkConfigSize =
    offsetof(virtio_blk_config, unused1) + sizeof(virtio_blk_config::unused1);

struct BlkDeviceInfo {
  // The device ID string GET_ID returns (§5.2.6): NUL-padded to VIRTIO_BLK_ID_BYTES; longer
  // strings are cut to that length.
  std::string serial;
  // The negotiated feature bits (1 << VIRTIO_BLK_F_*; transport bits may be present and are
  // ignored), a subset of what BlkDeviceFeatures() offered for the same backend.
  uint64_t negotiated_features = 0;
  // The seg_max the configuration space advertises: a request with more data segments than
  // this (more descriptors than seg_max + 2, with the header and the status) fails with IOERR.
  uint32_t seg_max = std::numeric_limits<uint32_t>::max();
};

struct BlkRequestResult {
  // What was written to the status byte (VIRTIO_BLK_S_*); meaningless when needs_reset.
  uint8_t status = VIRTIO_BLK_S_OK;
  // The used ring element's len (§2.7.8.2): how many bytes, from the start of the writable part,
  // the device wrote. It counts the status byte only when every byte before it was written too,
  // since len may understate but must not overstate what was written: a failed request with
  // writable data (IN, GET_ID) reports 0.
  uint32_t used_len = 0;
  // The chain has no writable byte for a status, or the status byte could not be written, so the
  // request cannot be completed in a way the driver can read. The transport should not put the
  // chain on the used ring (the driver would read a status the device never wrote) but set
  // DEVICE_NEEDS_RESET (§2.1.2) and stop serving the queue until the driver resets the device,
  // as QEMU's virtio_error() does.
  bool needs_reset = false;
};

// Executes one request. Malformed requests get VIRTIO_BLK_S_IOERR (a driver error, §5.2.6),
// requests the device does not offer VIRTIO_BLK_S_UNSUPP. Writable bytes the request type does
// not define (any before the status byte of OUT, FLUSH, DISCARD or WRITE_ZEROES; more than
// VIRTIO_BLK_ID_BYTES for GET_ID) make the request malformed, and the device leaves them
// untouched. When VIRTIO_BLK_F_FLUSH is not negotiated, writes are made durable before they
// complete (§5.2.6.2: the device offers FLUSH, so un-negotiated means writethrough).
BlkRequestResult ExecuteBlkRequest(GuestMemory& memory, const DescriptorChain& chain,
                                   BlockBackend& backend, const BlkDeviceInfo& info);

// The device-specific feature bits to offer (§5.2.3): SEG_MAX, BLK_SIZE and FLUSH always; RO for
// a read-only backend; DISCARD and WRITE_ZEROES when a writable backend supports them. The
// transport adds the generic ones (VIRTIO_F_VERSION_1, ...).
uint64_t BlkDeviceFeatures(const BlockBackend& backend);

// The configuration space (§5.2.4), little-endian as virtio 1.x requires. seg_max is
// queue_size - 2: the header and the status byte take a descriptor each (Linux and QEMU agree).
// Only the first kBlkConfigSize bytes are meaningful.
virtio_blk_config MakeBlkConfig(const BlockBackend& backend, uint16_t queue_size);

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_BLK_REQUEST_H_
