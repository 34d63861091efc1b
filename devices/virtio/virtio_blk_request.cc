#include "devices/virtio/virtio_blk_request.h"

#include <endian.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "vmm/base/log.h"

namespace minivmm::virtio {
namespace {

// The wire layouts of §5.2.6 and §5.2.4, checked against the uapi structs used to parse them.
static_assert(sizeof(virtio_blk_outhdr) == 16);
static_assert(sizeof(virtio_blk_discard_write_zeroes) == 16);
static_assert(offsetof(virtio_blk_config, capacity) == 0);
static_assert(offsetof(virtio_blk_config, seg_max) == 12);
static_assert(offsetof(virtio_blk_config, blk_size) == 20);
static_assert(offsetof(virtio_blk_config, num_queues) == 34);
static_assert(offsetof(virtio_blk_config, max_discard_sectors) == 36);
static_assert(offsetof(virtio_blk_config, max_discard_seg) == 40);
static_assert(offsetof(virtio_blk_config, discard_sector_alignment) == 44);
static_assert(offsetof(virtio_blk_config, max_write_zeroes_sectors) == 48);
static_assert(offsetof(virtio_blk_config, max_write_zeroes_seg) == 52);
static_assert(offsetof(virtio_blk_config, write_zeroes_may_unmap) == 56);
static_assert(kBlkConfigSize == 60);

constexpr uint8_t kOk = VIRTIO_BLK_S_OK;
constexpr uint8_t kIoErr = VIRTIO_BLK_S_IOERR;
constexpr uint8_t kUnsupp = VIRTIO_BLK_S_UNSUPP;

// What a handler did: the status, and whether it wrote every writable byte before the status
// byte (which decides whether used_len may count them).
struct Outcome {
  uint8_t status;
  bool data_written = false;
};

// Everything a handler needs about one request.
struct Request {
  ChainReader& reader;  // positioned after the header
  ChainWriter& writer;  // at the start of the writable part
  uint64_t data_len;    // writable bytes before the status byte
  uint64_t sector;
  BlockBackend& backend;
  const BlkDeviceInfo& info;

  bool Negotiated(unsigned feature) const {
    return (info.negotiated_features & (uint64_t{1} << feature)) != 0;
  }
  uint64_t capacity_sectors() const { return backend.size_bytes() / kBlkSectorSize; }
};

// [sector, sector + num_sectors) lies inside the disk; written so that nothing can overflow
// (sector comes from the guest).
bool RangeInDisk(uint64_t sector, uint64_t num_sectors, uint64_t capacity_sectors) {
  return sector <= capacity_sectors && num_sectors <= capacity_sectors - sector;
}

template <typename Span>
uint64_t TotalSize(const std::vector<Span>& spans) {
  uint64_t total = 0;
  for (const Span& s : spans) total += s.size();
  return total;
}

// A host-side failure (the image file), not the guest's doing; rate-limited all the same so
// that a failing disk cannot flood the log.
void LogBackendError(const char* what, const absl::Status& status) {
  static LogBudget budget(20);
  if (budget.Take()) {
    Log(LogLevel::kWarning, "virtio-blk: %s failed: %s", what, status.ToString());
  }
}

// Maps a backend failure to a status byte: kUnimplemented means the storage cannot do this at
// all (VIRTIO_BLK_S_UNSUPP); anything else is an I/O error.
uint8_t BackendStatus(const char* what, const absl::Status& status) {
  if (status.ok()) return kOk;
  LogBackendError(what, status);
  return absl::IsUnimplemented(status) ? kUnsupp : kIoErr;
}

// §5.2.6.2: without a negotiated VIRTIO_BLK_F_FLUSH (which the device always offers), a
// completed write must already be durable.
uint8_t MakeDurableUnlessFlushNegotiated(const Request& r) {
  if (r.Negotiated(VIRTIO_BLK_F_FLUSH)) return kOk;
  return BackendStatus("flush (writethrough)", r.backend.Flush());
}

// Types whose data is device-readable have only the status byte in the writable part (§5.2.6).
bool HasStrayWritableBytes(const Request& r, const char* type_name) {
  if (r.data_len == 0) return false;
  MINIVMM_LOG_GUEST_ERROR("virtio-blk: %s request has %d writable bytes before the status byte",
                          type_name, r.data_len);
  return true;
}

Outcome HandleIn(const Request& r) {
  // §5.2.6.1: data is a whole number of sectors, all inside the disk.
  if (r.data_len % kBlkSectorSize != 0 ||
      !RangeInDisk(r.sector, r.data_len / kBlkSectorSize, r.capacity_sectors())) {
    MINIVMM_LOG_GUEST_ERROR(
        "virtio-blk: read of %d bytes at sector %d: not whole sectors or "
        "past the end of the disk (%d sectors)",
        r.data_len, r.sector, r.capacity_sectors());
    return {kIoErr};
  }
  std::vector<std::span<uint8_t>> spans = r.writer.TakeSpans(r.data_len);
  if (TotalSize(spans) != r.data_len) return {kIoErr};  // a buffer outside guest memory
  const uint8_t status = BackendStatus("read", r.backend.ReadAt(r.sector * kBlkSectorSize, spans));
  return {status, status == kOk};
}

Outcome HandleOut(const Request& r) {
  if (HasStrayWritableBytes(r, "write")) return {kIoErr};
  // §5.2.6.2: a read-only device fails writes and writes nothing.
  if (r.backend.read_only()) return {kIoErr};
  const uint64_t length = r.reader.remaining();
  if (length % kBlkSectorSize != 0 ||
      !RangeInDisk(r.sector, length / kBlkSectorSize, r.capacity_sectors())) {
    MINIVMM_LOG_GUEST_ERROR(
        "virtio-blk: write of %d bytes at sector %d: not whole sectors or "
        "past the end of the disk (%d sectors)",
        length, r.sector, r.capacity_sectors());
    return {kIoErr};
  }
  std::vector<std::span<const uint8_t>> spans = r.reader.TakeSpans(length);
  if (TotalSize(spans) != length) return {kIoErr};
  const uint8_t status =
      BackendStatus("write", r.backend.WriteAt(r.sector * kBlkSectorSize, spans));
  if (status != kOk) return {status};
  return {MakeDurableUnlessFlushNegotiated(r)};
}

Outcome HandleFlush(const Request& r) {
  if (!r.Negotiated(VIRTIO_BLK_F_FLUSH)) return {kUnsupp};
  if (HasStrayWritableBytes(r, "flush")) return {kIoErr};
  // §5.2.6.1 asks the driver for sector 0 and no data; neither changes what a flush does, so
  // neither is checked.
  return {BackendStatus("flush", r.backend.Flush())};
}

Outcome HandleGetId(const Request& r) {
  // §5.2.6.1: the driver offers exactly VIRTIO_BLK_ID_BYTES. A shorter buffer gets the ID cut to
  // fit; a longer one is malformed.
  if (r.data_len > VIRTIO_BLK_ID_BYTES) {
    MINIVMM_LOG_GUEST_ERROR("virtio-blk: GET_ID with a %d-byte buffer", r.data_len);
    return {kIoErr};
  }
  std::array<uint8_t, VIRTIO_BLK_ID_BYTES> id{};  // NUL-padded (§5.2.6)
  std::memcpy(id.data(), r.info.serial.data(), std::min(r.info.serial.size(), id.size()));
  if (!r.writer.Write(std::span<const uint8_t>(id.data(), r.data_len)).ok()) return {kIoErr};
  return {kOk, true};
}

// DISCARD and WRITE_ZEROES share a payload: an array of struct virtio_blk_discard_write_zeroes
// (§5.2.6). Every segment is checked before any is executed, so a bad one leaves the disk as it
// was (§5.2.6 allows partial effects on IOERR, but there is no need for them).
Outcome HandleDiscardOrWriteZeroes(const Request& r, bool is_discard) {
  const char* name = is_discard ? "discard" : "write-zeroes";
  if (!r.Negotiated(is_discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
    return {kUnsupp};
  }
  if (HasStrayWritableBytes(r, name)) return {kIoErr};
  if (r.backend.read_only()) return {kIoErr};  // §5.2.6.2: a read-only device writes nothing
  const uint64_t payload = r.reader.remaining();
  const uint64_t max_segments = is_discard ? kBlkMaxDiscardSegments : kBlkMaxWriteZeroesSegments;
  // §5.2.6.1: a whole number of segments, at least one, at most the advertised maximum.
  if (payload == 0 || payload % sizeof(virtio_blk_discard_write_zeroes) != 0 ||
      payload / sizeof(virtio_blk_discard_write_zeroes) > max_segments) {
    MINIVMM_LOG_GUEST_ERROR("virtio-blk: %s with a %d-byte segment array", name, payload);
    return {kIoErr};
  }
  std::vector<virtio_blk_discard_write_zeroes> segments(payload /
                                                        sizeof(virtio_blk_discard_write_zeroes));
  for (virtio_blk_discard_write_zeroes& segment : segments) {
    if (!r.reader.ReadObject(&segment).ok()) return {kIoErr};
  }
  const uint32_t max_sectors = is_discard ? kBlkMaxDiscardSectors : kBlkMaxWriteZeroesSectors;
  for (const virtio_blk_discard_write_zeroes& segment : segments) {
    const uint32_t flags = le32toh(segment.flags);
    // §5.2.6.2: UNSUPP for an unknown flag, and for unmap on a discard.
    if ((flags & ~uint32_t{VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}) != 0 ||
        (is_discard && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0)) {
      return {kUnsupp};
    }
    const uint64_t sector = le64toh(segment.sector);
    const uint32_t num_sectors = le32toh(segment.num_sectors);
    if (num_sectors > max_sectors || !RangeInDisk(sector, num_sectors, r.capacity_sectors())) {
      MINIVMM_LOG_GUEST_ERROR(
          "virtio-blk: %s of %d sectors at sector %d: over the limit or past "
          "the end of the disk (%d sectors)",
          name, num_sectors, sector, r.capacity_sectors());
      return {kIoErr};
    }
  }
  for (const virtio_blk_discard_write_zeroes& segment : segments) {
    const uint64_t offset = le64toh(segment.sector) * kBlkSectorSize;
    const uint64_t length = uint64_t{le32toh(segment.num_sectors)} * kBlkSectorSize;
    const bool unmap = (le32toh(segment.flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0;
    const absl::Status s = is_discard ? r.backend.Discard(offset, length)
                                      : r.backend.WriteZeroes(offset, length, unmap);
    if (const uint8_t status = BackendStatus(name, s); status != kOk) return {status};
  }
  // A discard's sectors read as anything afterwards (§5.2.6.1), so only write-zeroes has
  // something to make durable.
  if (is_discard) return {kOk};
  return {MakeDurableUnlessFlushNegotiated(r)};
}

Outcome Dispatch(const Request& r, uint32_t type) {
  switch (type) {
    case VIRTIO_BLK_T_IN:
      return HandleIn(r);
    case VIRTIO_BLK_T_OUT:
      return HandleOut(r);
    case VIRTIO_BLK_T_FLUSH:
      return HandleFlush(r);
    case VIRTIO_BLK_T_GET_ID:
      return HandleGetId(r);
    case VIRTIO_BLK_T_DISCARD:
      return HandleDiscardOrWriteZeroes(r, /*is_discard=*/true);
    case VIRTIO_BLK_T_WRITE_ZEROES:
      return HandleDiscardOrWriteZeroes(r, /*is_discard=*/false);
    default:
      // Includes the legacy SCSI and barrier types and the features never offered (secure
      // erase, lifetime, zoned).
      return {kUnsupp};
  }
}

}  // namespace

BlkRequestResult ExecuteBlkRequest(GuestMemory& memory, const DescriptorChain& chain,
                                   BlockBackend& backend, const BlkDeviceInfo& info) {
  ChainReader reader(memory, chain);
  ChainWriter writer(memory, chain);
  if (writer.remaining() == 0) {
    MINIVMM_LOG_GUEST_ERROR("virtio-blk: request %d has no writable byte for its status",
                            chain.head);
    return {.status = kIoErr, .used_len = 0, .needs_reset = true};
  }
  const uint64_t data_len = writer.remaining() - 1;

  Outcome outcome{kIoErr};
  virtio_blk_outhdr header;
  if (reader.remaining() < sizeof(header) || !reader.ReadObject(&header).ok()) {
    MINIVMM_LOG_GUEST_ERROR("virtio-blk: request %d has %d readable bytes, short of a header",
                            chain.head, reader.remaining());
  } else if (chain.buffers.size() - 2 > info.seg_max) {
    // The driver must keep to the seg_max it read (§5.2.5); more would let a guest make each
    // request as costly as its whole descriptor table.
    MINIVMM_LOG_GUEST_ERROR("virtio-blk: request %d has %d descriptors, over seg_max %d + 2",
                            chain.head, chain.buffers.size(), info.seg_max);
  } else {
    const Request request{reader, writer, data_len, le64toh(header.sector), backend, info};
    outcome = Dispatch(request, le32toh(header.type));
  }

  // Skip whatever the handler left of the writable data to reach the status byte. TakeSpans only
  // moves the writer; those bytes are not touched, and used_len does not count them.
  if (writer.remaining() > 1) writer.TakeSpans(writer.remaining() - 1);
  const uint8_t status = outcome.status;
  if (writer.remaining() != 1 || !writer.WriteObject(status).ok()) {
    // Only a chain with buffers outside guest memory gets here; the virtqueue parser rejects
    // those, so this is a last line of defence.
    MINIVMM_LOG_GUEST_ERROR("virtio-blk: cannot write the status of request %d", chain.head);
    return {.status = status, .used_len = 0, .needs_reset = true};
  }
  uint64_t used_len = 0;
  if (data_len == 0 || outcome.data_written) used_len = data_len + 1;
  return {.status = status,
          .used_len = static_cast<uint32_t>(
              std::min<uint64_t>(used_len, std::numeric_limits<uint32_t>::max()))};
}

uint64_t BlkDeviceFeatures(const BlockBackend& backend) {
  uint64_t features = (uint64_t{1} << VIRTIO_BLK_F_SEG_MAX) |
                      (uint64_t{1} << VIRTIO_BLK_F_BLK_SIZE) | (uint64_t{1} << VIRTIO_BLK_F_FLUSH);
  if (backend.read_only()) return features | (uint64_t{1} << VIRTIO_BLK_F_RO);
  if (backend.supports_discard()) features |= uint64_t{1} << VIRTIO_BLK_F_DISCARD;
  if (backend.supports_write_zeroes()) features |= uint64_t{1} << VIRTIO_BLK_F_WRITE_ZEROES;
  return features;
}

virtio_blk_config MakeBlkConfig(const BlockBackend& backend, uint16_t queue_size) {
  virtio_blk_config config;
  // Zero first: §5.2.5.2 requires the padding (unused0, unused1) to read as 0, and the fields of
  // features not offered (geometry, topology, secure erase) are best 0 too.
  std::memset(&config, 0, sizeof(config));
  config.capacity = htole64(backend.size_bytes() / kBlkSectorSize);
  config.seg_max = htole32(queue_size > 2 ? queue_size - 2u : 1u);
  config.blk_size = htole32(kBlkSectorSize);
  config.num_queues = htole16(1);  // read only with VIRTIO_BLK_F_MQ, which is not offered
  config.max_discard_sectors = htole32(kBlkMaxDiscardSectors);
  config.max_discard_seg = htole32(kBlkMaxDiscardSegments);
  config.discard_sector_alignment = htole32(kBlkDiscardSectorAlignment);
  config.max_write_zeroes_sectors = htole32(kBlkMaxWriteZeroesSectors);
  config.max_write_zeroes_seg = htole32(kBlkMaxWriteZeroesSegments);
  // §5.2.6.2: set if and only if a write-zeroes request can deallocate, which FileBlockBackend
  // does by punching holes where it can.
  config.write_zeroes_may_unmap = backend.supports_discard() ? 1 : 0;
  return config;
}

}  // namespace minivmm::virtio
