// libFuzzer target for the virtio-blk request logic: the fuzz input is the guest. It lays out a
// descriptor chain (as ParseDescriptorChain would hand it over, or with raw addresses and any
// buffer order, which ChainReader/ChainWriter must survive too), fills guest memory with the
// request bytes, picks the negotiated features and the disk, and ExecuteBlkRequest runs it
// against an in-memory disk. Guest memory is an mmap that ASan does not watch, and an
// out-of-range disk access in a fake would go unnoticed, so the target checks by hand that
// every host span lies inside guest memory, that every disk access lies inside the disk and is
// one the device may make, and that the status and used length are consistent.
//
// Input: [0] bit 0 raw addresses and order, bit 1 read-only disk, bits 2-4 FLUSH, DISCARD and
//            WRITE_ZEROES negotiated, bit 5 the disk fails every call, bit 6 it cannot discard
//        [1] buffer count (mod 17)  [2] disk size in sectors (mod 65)
//        [3..] 13 bytes per buffer: flags (bit 0 device-writable), address (8), length (4)
//        the whole input is also copied to guest address 0 as the guest's memory contents.
#include <linux/virtio_blk.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "devices/virtio/block_backend.h"
#include "devices/virtio/descriptor_chain.h"
#include "devices/virtio/virtio_blk_request.h"
#include "vmm/base/log.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {
namespace {

constexpr uint64_t kMemorySize = 64 * 1024;
constexpr size_t kBufferRecord = 13;
constexpr size_t kFirstRecord = 3;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

GuestMemory& Memory() {
  static GuestMemory* memory = [] {
    SetLogLevel(LogLevel::kError);  // guest-error warnings would drown the fuzzer's output
    const GuestRegionSpec spec = {0, kMemorySize};
    absl::StatusOr<GuestMemory> created = GuestMemory::Create(std::span(&spec, 1));
    if (!created.ok()) __builtin_trap();
    return new GuestMemory(std::move(*created));
  }();
  return *memory;
}

std::span<const uint8_t> HostRange(const GuestMemory& memory) {
  const GuestMemory::Region& region = memory.regions().front();
  return {region.host, region.size};
}

template <typename Byte>
uint64_t CheckSpansInside(std::span<const std::span<Byte>> spans, std::span<const uint8_t> host) {
  uint64_t total = 0;
  for (std::span<Byte> span : spans) {
    Check(span.data() >= host.data() && span.size() <= host.size() &&
          span.data() - host.data() <= static_cast<ptrdiff_t>(host.size() - span.size()));
    total += span.size();
  }
  return total;
}

// An in-memory disk that traps on any access the device should never make.
class CheckingBackend : public BlockBackend {
 public:
  CheckingBackend(std::span<const uint8_t> host, uint64_t size, bool read_only, bool fail,
                  bool can_discard)
      : host_(host), data_(size), read_only_(read_only), fail_(fail), can_discard_(can_discard) {}

  uint64_t size_bytes() const override { return data_.size(); }
  bool read_only() const override { return read_only_; }
  absl::Status ReadAt(uint64_t offset, std::span<const std::span<uint8_t>> iov) override {
    const uint64_t length = CheckSpansInside(iov, host_);
    CheckInDisk(offset, length);
    if (fail_) return absl::DataLossError("fuzz");
    for (std::span<uint8_t> s : iov) {
      std::memcpy(s.data(), data_.data() + offset, s.size());
      offset += s.size();
    }
    return absl::OkStatus();
  }
  absl::Status WriteAt(uint64_t offset, std::span<const std::span<const uint8_t>> iov) override {
    Check(!read_only_);
    const uint64_t length = CheckSpansInside(iov, host_);
    CheckInDisk(offset, length);
    if (fail_) return absl::DataLossError("fuzz");
    for (std::span<const uint8_t> s : iov) {
      std::memcpy(data_.data() + offset, s.data(), s.size());
      offset += s.size();
    }
    return absl::OkStatus();
  }
  absl::Status Flush() override { return fail_ ? absl::DataLossError("fuzz") : absl::OkStatus(); }
  absl::Status Discard(uint64_t offset, uint64_t length) override {
    Check(!read_only_);
    CheckInDisk(offset, length);
    if (fail_) return absl::DataLossError("fuzz");
    if (!can_discard_) return absl::UnimplementedError("fuzz");
    std::fill_n(data_.begin() + offset, length, 0xdd);
    return absl::OkStatus();
  }
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool) override {
    Check(!read_only_);
    CheckInDisk(offset, length);
    if (fail_) return absl::DataLossError("fuzz");
    std::fill_n(data_.begin() + offset, length, 0);
    return absl::OkStatus();
  }
  bool supports_discard() const override { return can_discard_; }
  bool supports_write_zeroes() const override { return true; }

 private:
  void CheckInDisk(uint64_t offset, uint64_t length) const {
    Check(offset % kBlkSectorSize == 0 && length % kBlkSectorSize == 0);
    Check(offset <= data_.size() && length <= data_.size() - offset);
  }

  std::span<const uint8_t> host_;
  std::vector<uint8_t> data_;
  bool read_only_;
  bool fail_;
  bool can_discard_;
};

uint64_t Load(const uint8_t* data, size_t size, size_t offset, size_t bytes) {
  uint64_t value = 0;
  if (offset < size) std::memcpy(&value, data + offset, std::min(bytes, size - offset));
  return value;
}

DescriptorChain BuildChain(const uint8_t* data, size_t size, bool raw) {
  DescriptorChain chain;
  chain.head = 3;
  const size_t count = Load(data, size, 1, 1) % 17;
  for (size_t i = 0; i < count; ++i) {
    const size_t at = kFirstRecord + i * kBufferRecord;
    GuestBuffer buffer;
    buffer.device_writable = Load(data, size, at, 1) & 1;
    buffer.address = Load(data, size, at + 1, 8);
    buffer.length = static_cast<uint32_t>(Load(data, size, at + 9, 4));
    if (!raw) {  // what the queue parser guarantees: inside guest memory, non-empty
      buffer.address %= kMemorySize;
      buffer.length = 1 + buffer.length % (kMemorySize - buffer.address);
    }
    chain.buffers.push_back(buffer);
    (buffer.device_writable ? chain.writable_bytes : chain.readable_bytes) += buffer.length;
  }
  if (!raw) {  // §2.7.4.2: readable buffers first
    std::stable_partition(chain.buffers.begin(), chain.buffers.end(),
                          [](const GuestBuffer& b) { return !b.device_writable; });
  }
  return chain;
}

}  // namespace
}  // namespace minivmm::virtio

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace minivmm::virtio;
  minivmm::GuestMemory& memory = Memory();

  static const std::vector<uint8_t> zeros(kMemorySize);
  Check(memory.Write(0, zeros).ok());
  Check(memory.Write(0, std::span(data, std::min<size_t>(size, kMemorySize))).ok());

  const uint8_t mode = Load(data, size, 0, 1);
  const bool raw = mode & 1;
  BlkDeviceInfo info;
  info.serial = "fuzz-serial-0123456789";
  if (mode & 4) info.negotiated_features |= uint64_t{1} << VIRTIO_BLK_F_FLUSH;
  if (mode & 8) info.negotiated_features |= uint64_t{1} << VIRTIO_BLK_F_DISCARD;
  if (mode & 16) info.negotiated_features |= uint64_t{1} << VIRTIO_BLK_F_WRITE_ZEROES;
  CheckingBackend backend(HostRange(memory), (Load(data, size, 2, 1) % 65) * kBlkSectorSize,
                          /*read_only=*/mode & 2, /*fail=*/mode & 32, /*can_discard=*/!(mode & 64));

  const DescriptorChain chain = BuildChain(data, size, raw);
  const BlkRequestResult result = ExecuteBlkRequest(memory, chain, backend, info);

  Check(result.used_len <= chain.writable_bytes);
  if (result.needs_reset) {
    Check(result.used_len == 0);
    // Only a chain without a writable byte, or with buffers outside guest memory, may end here.
    Check(chain.writable_bytes == 0 || raw);
    return 0;
  }
  Check(result.status == VIRTIO_BLK_S_OK || result.status == VIRTIO_BLK_S_IOERR ||
        result.status == VIRTIO_BLK_S_UNSUPP);
  Check(result.used_len == 0 || result.used_len == chain.writable_bytes);
  if (!raw) {
    // The status byte is the last writable byte, and nothing was written after it.
    const GuestBuffer* last = nullptr;
    for (const GuestBuffer& b : chain.buffers) {
      if (b.device_writable) last = &b;
    }
    uint8_t status = 0xff;
    Check(memory.Read(last->address + last->length - 1, std::span(&status, 1)).ok());
    Check(status == result.status);
  }
  return 0;
}
