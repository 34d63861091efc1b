#include "guest-firmware/kaslr.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

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

// A loaded segment's file bytes: where they were linked and where they now are in host memory.
struct LoadedBytes {
  uint64_t link_address;
  std::span<uint8_t> host;
};

// Host pointers to the locations `entries` name, each `width` bytes inside one segment's
// file bytes; an error naming the first that is not.
absl::StatusOr<std::vector<uint8_t*>> Locate(std::span<const uint32_t> entries, uint64_t width,
                                             std::span<const LoadedBytes> loaded,
                                             const std::string& name) {
  std::vector<uint8_t*> locations;
  locations.reserve(entries.size());
  size_t hint = 0;  // the tool sorts each list, so consecutive entries share a segment
  for (uint32_t entry : entries) {
    const uint64_t address = LinkPhysicalAddress(entry);
    auto holds = [&](const LoadedBytes& bytes) {
      return address >= bytes.link_address && address - bytes.link_address <= bytes.host.size() &&
             width <= bytes.host.size() - (address - bytes.link_address);
    };
    if (hint >= loaded.size() || !holds(loaded[hint])) {
      const auto found = std::find_if(loaded.begin(), loaded.end(), holds);
      if (found == loaded.end()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "kernel %s: relocation at %#x (virtual %#x) is outside the kernel's loaded segments",
            name, address, address + kStartKernelMap));
      }
      hint = found - loaded.begin();
    }
    locations.push_back(loaded[hint].host.data() + (address - loaded[hint].link_address));
  }
  return locations;
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

absl::StatusOr<KaslrPlacement> ChooseKaslrPlacement(const ElfKernel& kernel, uint64_t alignment,
                                                    uint64_t physical_limit,
                                                    const RandomBelow& random) {
  const uint64_t link_base = kernel.physical_start;
  const uint64_t span = kernel.physical_end - kernel.physical_start;
  if (alignment == 0 || link_base % alignment != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "its link address %#x is not a multiple of its alignment %#x", link_base, alignment));
  }
  const uint64_t physical_slots = SlotCount(link_base, span, physical_limit, alignment);
  if (physical_slots == 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("its %d KiB image does not fit between its link address %#x and %#x",
                        span >> 10, link_base, physical_limit));
  }
  // find_random_virt_addr(): [LOAD_PHYSICAL_ADDR, KERNEL_IMAGE_SIZE - image size], as offsets
  // from __START_KERNEL_map.
  const uint64_t virtual_slots = SlotCount(link_base, span, kKernelImageSize, alignment);
  if (virtual_slots == 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("its %d KiB image at %#x does not fit in the 1 GiB kernel image area",
                        span >> 10, link_base));
  }
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
  std::vector<LoadedBytes> loaded;
  for (const ElfSegment& segment : kernel.segments) {
    if (segment.file_size == 0) continue;  // all bss: nothing a relocation can name
    MINIVMM_ASSIGN_OR_RETURN(
        std::span<uint8_t> host,
        memory.Slice(segment.physical_address + physical_delta, segment.file_size));
    loaded.push_back({segment.physical_address, host});
  }
  // Every location is found (and checked) before any is written: a malformed table must not
  // leave a half-patched kernel behind.
  MINIVMM_ASSIGN_OR_RETURN(std::vector<uint8_t*> at64,
                           Locate(relocations.reloc64, 8, loaded, name));
  MINIVMM_ASSIGN_OR_RETURN(std::vector<uint8_t*> inverse32,
                           Locate(relocations.inverse32, 4, loaded, name));
  MINIVMM_ASSIGN_OR_RETURN(std::vector<uint8_t*> at32,
                           Locate(relocations.reloc32, 4, loaded, name));
  for (uint8_t* at : at64) {
    uint64_t value;
    std::memcpy(&value, at, 8);
    value += delta;
    std::memcpy(at, &value, 8);
  }
  for (uint8_t* at : inverse32) {
    uint32_t value;
    std::memcpy(&value, at, 4);
    value -= static_cast<uint32_t>(delta);
    std::memcpy(at, &value, 4);
  }
  for (uint8_t* at : at32) {
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
