#include "guest-firmware/zero_page.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace minivmm {
namespace {
// boot.rst: type_of_loader 0xFF means "undefined/other loader" (no assigned ID).
constexpr uint8_t kLoaderTypeUndefined = 0xff;
// boot.rst: vid_mode 0xFFFF asks for the "normal" text mode; we have no video anyway.
constexpr uint16_t kVideoModeNormal = 0xffff;
}  // namespace

absl::StatusOr<std::unique_ptr<boot_params>> BuildZeroPage(const setup_header& kernel_header,
                                                           const ZeroPageInputs& in) {
  if (in.e820.size() > E820_MAX_ENTRIES_ZEROPAGE) {
    return absl::InvalidArgumentError(
        absl::StrFormat("e820 map has %d entries, the zero page holds %d", in.e820.size(),
                        E820_MAX_ENTRIES_ZEROPAGE));
  }
  // The header's address fields are 32 bits; the initramfs may end exactly at 4 GiB.
  constexpr uint64_t k4GiB = 1ull << 32;
  for (uint64_t end :
       {in.cmdline_address + 1, in.initrd_address + 1, in.initrd_address + in.initrd_size}) {
    if (end > k4GiB) {
      return absl::InvalidArgumentError(
          absl::StrFormat("boot address %#x does not fit the 32-bit setup header", end - 1));
    }
  }
  auto params = std::make_unique<boot_params>();
  params->hdr = kernel_header;
  params->hdr.type_of_loader = kLoaderTypeUndefined;
  params->hdr.vid_mode = kVideoModeNormal;
  params->hdr.cmd_line_ptr = static_cast<uint32_t>(in.cmdline_address);
  params->hdr.ramdisk_image = static_cast<uint32_t>(in.initrd_address);
  params->hdr.ramdisk_size = static_cast<uint32_t>(in.initrd_size);
  params->acpi_rsdp_addr = in.rsdp_address;
  params->e820_entries = static_cast<uint8_t>(in.e820.size());
  std::copy(in.e820.begin(), in.e820.end(), params->e820_table);
  return params;
}

}  // namespace minivmm
