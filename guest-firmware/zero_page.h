// The "zero page" (struct boot_params) a 64-bit Linux kernel finds through RSI at entry.
#ifndef MINIVMM_GUEST_FIRMWARE_ZERO_PAGE_H_
#define MINIVMM_GUEST_FIRMWARE_ZERO_PAGE_H_

#include <asm/bootparam.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"

namespace minivmm {

struct ZeroPageInputs {
  uint64_t cmdline_address = 0;
  uint64_t cmdline_size = 0;  // without the terminating NUL
  uint64_t initrd_address = 0;
  uint64_t initrd_size = 0;
  uint64_t rsdp_address = 0;
  std::span<const boot_e820_entry> e820;
};

// Fills boot_params from the kernel's own setup header plus what the loader decided
// (boot.rst, "THE 64-BIT BOOT PROTOCOL"). Fails if the e820 map does not fit or an address
// does not fit the 32-bit header fields.
absl::StatusOr<std::unique_ptr<boot_params>> BuildZeroPage(const setup_header& kernel_header,
                                                           const ZeroPageInputs& inputs);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_ZERO_PAGE_H_
