#include "devices/virtio/descriptor_chain.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm::virtio {
namespace {

// Appends host spans for the next `length` bytes of `buffers`, starting `*offset` bytes into
// buffers[*index], and moves the cursor past them. The caller guarantees that many bytes
// remain. Each buffer is sliced whole, so a hand-built chain with a buffer that wraps or leaves
// guest memory stops here with an error (the cursor then sits at that buffer); parsed chains
// never do (ParseDescriptorChain checked every buffer).
template <typename Memory, typename Byte>
absl::Status CollectSpans(Memory& memory, const std::vector<GuestBuffer>& buffers, size_t* index,
                          uint64_t* offset, uint64_t length, std::vector<std::span<Byte>>* spans) {
  while (length > 0) {
    const GuestBuffer& buffer = buffers[*index];
    MINIVMM_ASSIGN_OR_RETURN(std::span<Byte> whole, memory.Slice(buffer.address, buffer.length));
    const uint64_t piece = std::min<uint64_t>(length, buffer.length - *offset);
    spans->push_back(whole.subspan(*offset, piece));
    length -= piece;
    *offset += piece;
    if (*offset == buffer.length) {
      ++*index;
      *offset = 0;
    }
  }
  return absl::OkStatus();
}

// The buffers of one direction, without zero-length ones (which would stall the cursor), and
// their total length.
std::vector<GuestBuffer> SelectBuffers(const DescriptorChain& chain, bool device_writable,
                                       uint64_t* total) {
  std::vector<GuestBuffer> selected;
  *total = 0;
  for (const GuestBuffer& buffer : chain.buffers) {
    if (buffer.device_writable != device_writable || buffer.length == 0) continue;
    selected.push_back(buffer);
    *total += buffer.length;
  }
  return selected;
}

uint64_t TotalSize(const auto& spans) {
  uint64_t total = 0;
  for (const auto& span : spans) total += span.size();
  return total;
}

}  // namespace

ChainReader::ChainReader(const GuestMemory& memory, const DescriptorChain& chain)
    : memory_(memory) {
  buffers_ = SelectBuffers(chain, /*device_writable=*/false, &remaining_);
}

absl::Status ChainReader::Read(std::span<uint8_t> out) {
  if (out.size() > remaining_) {
    return absl::OutOfRangeError(absl::StrFormat(
        "descriptor chain has %u readable bytes left, %u wanted", remaining_, out.size()));
  }
  // Work on a copy of the cursor so that a failure consumes nothing.
  size_t index = index_;
  uint64_t offset = offset_;
  std::vector<std::span<const uint8_t>> spans;
  MINIVMM_RETURN_IF_ERROR(CollectSpans(memory_, buffers_, &index, &offset, out.size(), &spans));
  uint8_t* destination = out.data();
  for (std::span<const uint8_t> span : spans) {
    std::memcpy(destination, span.data(), span.size());
    destination += span.size();
  }
  index_ = index;
  offset_ = offset;
  remaining_ -= out.size();
  return absl::OkStatus();
}

std::vector<std::span<const uint8_t>> ChainReader::TakeSpans(uint64_t max_bytes) {
  std::vector<std::span<const uint8_t>> spans;
  // An error (hand-built chain only) leaves the spans before the bad buffer: hand out those.
  CollectSpans(memory_, buffers_, &index_, &offset_, std::min(max_bytes, remaining_), &spans)
      .IgnoreError();
  remaining_ -= TotalSize(spans);
  return spans;
}

ChainWriter::ChainWriter(GuestMemory& memory, const DescriptorChain& chain) : memory_(memory) {
  buffers_ = SelectBuffers(chain, /*device_writable=*/true, &remaining_);
}

absl::Status ChainWriter::Write(std::span<const uint8_t> in) {
  if (in.size() > remaining_) {
    return absl::OutOfRangeError(absl::StrFormat(
        "descriptor chain has %u writable bytes left, %u to write", remaining_, in.size()));
  }
  // All spans are resolved before the first byte is copied, so a failure writes nothing.
  size_t index = index_;
  uint64_t offset = offset_;
  std::vector<std::span<uint8_t>> spans;
  MINIVMM_RETURN_IF_ERROR(CollectSpans(memory_, buffers_, &index, &offset, in.size(), &spans));
  const uint8_t* source = in.data();
  for (std::span<uint8_t> span : spans) {
    std::memcpy(span.data(), source, span.size());
    source += span.size();
  }
  index_ = index;
  offset_ = offset;
  remaining_ -= in.size();
  written_ += in.size();
  return absl::OkStatus();
}

std::vector<std::span<uint8_t>> ChainWriter::TakeSpans(uint64_t max_bytes) {
  std::vector<std::span<uint8_t>> spans;
  // As in ChainReader::TakeSpans: on error, only the spans before the bad buffer.
  CollectSpans(memory_, buffers_, &index_, &offset_, std::min(max_bytes, remaining_), &spans)
      .IgnoreError();
  const uint64_t taken = TotalSize(spans);
  remaining_ -= taken;
  written_ += taken;
  return spans;
}

}  // namespace minivmm::virtio
