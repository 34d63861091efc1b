#include "guest-firmware/kaslr.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace minivmm {
namespace {

absl::Status Malformed(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrFormat("relocation table: %s", why));
}

// Reads words from `words` starting at *at up to (not including) the next zero word, which is
// consumed; false if the words end first.
bool TakeUntilZero(std::span<const uint32_t> words, size_t* at, std::vector<uint32_t>* out) {
  for (; *at < words.size(); ++*at) {
    if (words[*at] == 0) {
      ++*at;
      return true;
    }
    out->push_back(words[*at]);
  }
  return false;
}

// The physical link address (as in p_paddr) that a relocation entry names.
uint64_t LinkPhysicalAddress(uint32_t entry) {
  const uint64_t virtual_address =
      static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(entry)));
  return virtual_address - kStartKernelMap;
}

// The segment whose file bytes hold [address, address + width), by link address.
const ElfSegment* SegmentHolding(const ElfKernel& kernel, uint64_t address, uint64_t width) {
  for (const ElfSegment& segment : kernel.segments) {
    if (address >= segment.physical_address &&
        address - segment.physical_address <= segment.file_size &&
        width <= segment.file_size - (address - segment.physical_address)) {
      return &segment;
    }
  }
  return nullptr;
}

// Number of aligned bases b with first <= b and b + span <= limit (first aligned).
uint64_t SlotCount(uint64_t first, uint64_t span, uint64_t limit, uint64_t alignment) {
  if (span > limit || first > limit - span) return 0;
  return (limit - span - first) / alignment + 1;
}

}  // namespace

absl::StatusOr<KernelRelocations> ParseKernelRelocations(std::span<const uint8_t> table) {
  if (table.size() % sizeof(uint32_t) != 0) {
    return Malformed(absl::StrFormat("%d bytes, not a whole number of 32-bit words", table.size()));
  }
  if (table.empty()) return Malformed("empty: it does not start with a zero word");
  std::vector<uint32_t> words(table.size() / sizeof(uint32_t));
  std::memcpy(words.data(), table.data(), table.size());  // host and kernel are little-endian
  if (words[0] != 0) return Malformed("does not start with a zero word");
  KernelRelocations relocations;
  size_t at = 1;
  if (!TakeUntilZero(words, &at, &relocations.reloc64) ||
      !TakeUntilZero(words, &at, &relocations.inverse32)) {
    return Malformed("fewer than three zero-terminated lists");
  }
  relocations.reloc32.assign(words.begin() + at, words.end());
  for (uint32_t entry : relocations.reloc32) {
    if (entry == 0) return Malformed("more than three zero-terminated lists");
  }
  return relocations;
}

std::optional<KaslrPlacement> ChooseKaslrPlacement(const ElfKernel& kernel, uint64_t alignment,
                                                   uint64_t physical_limit,
                                                   const RandomBelow& random) {
  const uint64_t link_base = kernel.physical_start;
  const uint64_t span = kernel.physical_end - kernel.physical_start;
  if (alignment == 0 || link_base % alignment != 0) return std::nullopt;
  const uint64_t physical_slots = SlotCount(link_base, span, physical_limit, alignment);
  // find_random_virt_addr(): [LOAD_PHYSICAL_ADDR, KERNEL_IMAGE_SIZE - image size], as offsets
  // from __START_KERNEL_map.
  const uint64_t virtual_slots = SlotCount(link_base, span, kKernelImageSize, alignment);
  if (physical_slots == 0 || virtual_slots == 0) return std::nullopt;
  KaslrPlacement placement;
  placement.physical_base = link_base + random(physical_slots) * alignment;
  placement.virtual_delta = random(virtual_slots) * alignment;
  return placement;
}

absl::Status ApplyKernelRelocations(GuestMemory& memory, const ElfKernel& kernel,
                                    const KernelRelocations& relocations,
                                    const KaslrPlacement& placement, const std::string& name) {
  const uint64_t physical_delta = placement.physical_base - kernel.physical_start;
  const uint64_t delta = placement.virtual_delta;
  // Validates the location and returns its host view in the loaded kernel.
  auto location = [&](uint32_t entry, uint64_t width) -> absl::StatusOr<uint8_t*> {
    const uint64_t link_address = LinkPhysicalAddress(entry);
    if (SegmentHolding(kernel, link_address, width) == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel %s: relocation at %#x (virtual %#x) is outside the kernel's loaded segments",
          name, link_address, link_address + kStartKernelMap));
    }
    absl::StatusOr<std::span<uint8_t>> bytes = memory.Slice(link_address + physical_delta, width);
    if (!bytes.ok()) return bytes.status();
    return bytes->data();
  };
  // Check everything first: a malformed table must not leave a half-patched kernel behind.
  for (const auto* list : {&relocations.reloc64, &relocations.inverse32, &relocations.reloc32}) {
    const uint64_t width = list == &relocations.reloc64 ? 8 : 4;
    for (uint32_t entry : *list) {
      if (absl::StatusOr<uint8_t*> at = location(entry, width); !at.ok()) return at.status();
    }
  }
  for (uint32_t entry : relocations.reloc64) {
    uint8_t* at = *location(entry, 8);
    uint64_t value;
    std::memcpy(&value, at, 8);
    value += delta;
    std::memcpy(at, &value, 8);
  }
  for (uint32_t entry : relocations.inverse32) {
    uint8_t* at = *location(entry, 4);
    uint32_t value;
    std::memcpy(&value, at, 4);
    value -= static_cast<uint32_t>(delta);
    std::memcpy(at, &value, 4);
  }
  for (uint32_t entry : relocations.reloc32) {
    uint8_t* at = *location(entry, 4);
    uint32_t value;
    std::memcpy(&value, at, 4);
    value += static_cast<uint32_t>(delta);
    std::memcpy(at, &value, 4);
  }
  return absl::OkStatus();
}

uint64_t SystemRandomBelow(uint64_t bound) {
  // Rejection sampling: no modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t value = 0;
  do {
    while (::getrandom(&value, sizeof(value), 0) != sizeof(value)) {
      if (errno != EINTR) return 0;  // no entropy source at all: the link address (slot 0)
    }
  } while (value >= limit);
  return value % bound;
}

}  // namespace minivmm
