// libFuzzer target for the split virtqueue: the fuzz input is the guest. It picks the queue
// layout and features and fills guest memory (descriptor tables, rings, indirect tables), and
// the device side pops, parses, reads, writes and returns chains over it. Guest memory is an
// mmap that ASan does not watch, so besides "no crash" the target checks by hand that every
// buffer and host span it is given lies inside guest memory.
//
// Input: [0] queue size as a power-of-two exponent (bit 7: take a raw 16-bit size from [1..2])
//        [3] features: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bits 2-4 raw 64-bit addresses
//        [4..9] desc/avail/used addresses as 16-bit offsets into the first 4 KiB
//        [10..33] raw 64-bit addresses (used when the bit in [3] says so)
//        the whole input is also copied to guest address 0 as the guest's memory contents.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/descriptor_chain.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {
namespace {

constexpr uint64_t kMemorySize = 64 * 1024;
constexpr int kMaxPops = 64;

GuestMemory& Memory() {
  static GuestMemory* memory = [] {
    const GuestRegionSpec spec = {0, kMemorySize};
    absl::StatusOr<GuestMemory> created = GuestMemory::Create(std::span(&spec, 1));
    if (!created.ok()) __builtin_trap();
    return new GuestMemory(std::move(*created));
  }();
  return *memory;
}

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

// The host bytes of guest memory, to check spans against.
std::span<const uint8_t> HostRange(const GuestMemory& memory) {
  const GuestMemory::Region& region = memory.regions().front();
  return {region.host, region.size};
}

template <typename Byte>
void CheckSpansInside(const std::vector<std::span<Byte>>& spans, std::span<const uint8_t> host,
                      uint64_t max_bytes) {
  uint64_t total = 0;
  for (std::span<Byte> span : spans) {
    Check(!span.empty());
    Check(span.data() >= host.data() && span.size() <= host.size() &&
          span.data() - host.data() <= static_cast<ptrdiff_t>(host.size() - span.size()));
    total += span.size();
  }
  Check(total <= max_bytes);
}

// What ParseDescriptorChain promises about a chain it accepted.
void CheckChain(const DescriptorChain& chain, const QueueLayout& layout) {
  Check(chain.head < layout.size);
  Check(chain.buffers.size() <= kMaxQueueSize + kMaxIndirectDescriptors);
  uint64_t readable = 0;
  uint64_t writable = 0;
  bool seen_writable = false;
  for (const GuestBuffer& buffer : chain.buffers) {
    Check(buffer.length > 0);
    Check(buffer.address < kMemorySize && buffer.length <= kMemorySize - buffer.address);
    Check(buffer.device_writable || !seen_writable);
    seen_writable |= buffer.device_writable;
    (buffer.device_writable ? writable : readable) += buffer.length;
  }
  Check(readable == chain.readable_bytes && writable == chain.writable_bytes);
  Check(readable <= kMaxChainBytes && writable <= kMaxChainBytes);
}

uint64_t Load(const uint8_t* data, size_t size, size_t offset, size_t bytes) {
  uint64_t value = 0;
  if (offset < size) std::memcpy(&value, data + offset, std::min(bytes, size - offset));
  return value;
}

// Exercises the device's use of one chain: a header read, spans, a reply, the used entry.
void Serve(GuestMemory& memory, SplitVirtqueue& queue, const DescriptorChain& chain, uint8_t knob,
           bool layout_ok) {
  CheckChain(chain, queue.layout());
  const std::span<const uint8_t> host = HostRange(memory);

  ChainReader reader(memory, chain);
  Check(reader.remaining() == chain.readable_bytes);
  uint8_t header[24];
  const size_t header_size = knob % sizeof(header);
  const bool had_header = reader.remaining() >= header_size;
  Check(reader.Read(std::span(header, header_size)).ok() == had_header);
  const uint64_t before = reader.remaining();
  std::vector<std::span<const uint8_t>> in = reader.TakeSpans(knob * 37);
  CheckSpansInside(in, host, before);

  ChainWriter writer(memory, chain);
  Check(writer.remaining() == chain.writable_bytes);
  const uint8_t reply[16] = {0xaa, 0xbb, 0xcc};
  const size_t reply_size = (knob >> 4) % sizeof(reply);
  Check(writer.Write(std::span(reply, reply_size)).ok() == (chain.writable_bytes >= reply_size));
  const uint64_t room = writer.remaining();
  std::vector<std::span<uint8_t>> out = writer.TakeSpans(knob * 53);
  CheckSpansInside(out, host, room);
  for (std::span<uint8_t> span : out) std::memset(span.data(), 0x5a, span.size());
  Check(writer.written() <= chain.writable_bytes);

  const absl::Status pushed =
      queue.PushUsed(memory, chain.head, static_cast<uint32_t>(writer.written()));
  Check(pushed.ok() || !layout_ok);
}

}  // namespace
}  // namespace minivmm::virtio

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace minivmm::virtio;
  minivmm::GuestMemory& memory = Memory();

  // The guest's memory: zeros, then the input at address 0.
  static const std::vector<uint8_t> zeros(kMemorySize);
  if (!memory.Write(0, zeros).ok()) __builtin_trap();
  if (!memory.Write(0, std::span(data, std::min<size_t>(size, kMemorySize))).ok()) {
    __builtin_trap();
  }

  const uint8_t size_byte = Load(data, size, 0, 1);
  const uint8_t features = Load(data, size, 3, 1);
  QueueLayout layout;
  layout.size = (size_byte & 0x80) ? Load(data, size, 1, 2) : 1u << (size_byte % 16);
  uint64_t* const fields[] = {&layout.desc_table, &layout.avail_ring, &layout.used_ring};
  for (int i = 0; i < 3; ++i) {
    *fields[i] = (features & (4 << i)) ? Load(data, size, 10 + 8 * i, 8)
                                       : Load(data, size, 4 + 2 * i, 2) % 4096;
  }
  const bool event_idx = features & 1;
  const bool indirect = features & 2;
  const uint8_t knob = Load(data, size, 2, 1);

  // The queue runs whether or not the layout is valid (it must stay safe either way); on a
  // valid one, the ring accesses themselves cannot fail.
  const bool layout_ok = ValidateQueueLayout(memory, layout).ok();
  for (uint16_t head = 0; head < 4; ++head) {
    absl::StatusOr<DescriptorChain> chain = ParseDescriptorChain(memory, layout, head, indirect);
    if (chain.ok()) CheckChain(*chain, layout);
  }

  SplitVirtqueue queue(layout, event_idx, indirect);
  for (int i = 0; i < kMaxPops; ++i) {
    if (i % 4 == 0) {
      const absl::Status status = queue.EnableNotifications(memory, (knob + i) & 1);
      Check(status.ok() || !layout_ok);
    }
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.PopAvailable(memory);
    if (!chain.ok() || !chain->has_value()) break;  // the device would now need a reset
    Serve(memory, queue, **chain, static_cast<uint8_t>(knob + i), layout_ok);
    if (i % 3 == 0) Check(queue.ShouldInterrupt(memory).ok() || !layout_ok);
  }
  Check(queue.ShouldInterrupt(memory).ok() || !layout_ok);
  return 0;
}
