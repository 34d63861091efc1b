// Parsing of an x86 bzImage per the Linux boot protocol (Documentation/arch/x86/boot.rst).
#ifndef MINIVMM_GUEST_FIRMWARE_BZIMAGE_H_
#define MINIVMM_GUEST_FIRMWARE_BZIMAGE_H_

#include <asm/bootparam.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace minivmm {

// Oldest boot protocol we accept: 2.12 introduced xloadflags, whose XLF_KERNEL_64 bit says the
// kernel has the 64-bit entry point we jump to.
inline constexpr uint16_t kMinBootProtocol = 0x020c;

struct BzImage {
  std::vector<uint8_t> file;
  // The setup header as the file carries it, copied into a zeroed struct; bytes past the end of
  // this kernel's header (0x202 + the jump byte at 0x201) stay zero.
  setup_header header{};
  uint64_t setup_size = 0;  // (setup_sects + 1) * 512: where the protected-mode kernel starts

  std::span<const uint8_t> protected_mode_kernel() const {
    return std::span(file).subspan(setup_size);
  }
  uint16_t protocol() const { return header.version; }
};

// Validates and parses a bzImage. `name` (the file path) goes into every error message.
absl::StatusOr<BzImage> ParseBzImage(std::vector<uint8_t> file, const std::string& name);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_BZIMAGE_H_
