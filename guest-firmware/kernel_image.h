// A kernel ready to be placed in guest memory: a bzImage, which the guest decompresses itself,
// or an uncompressed x86-64 vmlinux (given directly, or decompressed by minivmm and cached).
#ifndef MINIVMM_GUEST_FIRMWARE_KERNEL_IMAGE_H_
#define MINIVMM_GUEST_FIRMWARE_KERNEL_IMAGE_H_

#include <asm/bootparam.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "guest-firmware/bzimage.h"
#include "guest-firmware/elf_kernel.h"
#include "guest-firmware/kaslr.h"
#include "vmm/base/shared_bytes.h"

namespace minivmm {

struct KernelImage {
  enum class Format { kBzImage, kElfVmlinux };
  Format format = Format::kBzImage;
  std::string name;   // the kernel file, for messages
  SharedBytes bytes;  // the bzImage file, or the vmlinux ELF image
  // The setup header the zero page carries: the bzImage's own (also when booting its cached
  // vmlinux), or one synthesized for a bare vmlinux.
  setup_header header{};
  uint64_t setup_size = 0;  // kBzImage: file offset of the protected-mode kernel
  ElfKernel elf;            // kElfVmlinux: its loadable segments
  // kElfVmlinux from a relocatable bzImage's payload that carries its relocation table: the
  // loader can randomize its addresses as the kernel's decompressor would.
  std::optional<KernelRelocations> relocations;

  std::span<const uint8_t> protected_mode_kernel() const {
    return bytes.span().subspan(setup_size);
  }
};

KernelImage KernelImageFromBzImage(BzImage bzimage, std::string name);

// A vmlinux with the given header (from its bzImage), or a synthesized one when header is null.
// With a bzImage header that says the kernel is relocatable, a well-formed relocation table
// after the ELF image is kept for KASLR; a missing or malformed one only means no KASLR.
absl::StatusOr<KernelImage> KernelImageFromVmlinux(SharedBytes bytes, std::string name,
                                                   const setup_header* header);

// What a bootloader would fill in for a kernel that has no setup header of its own
// (boot.rst, 2.15 field set, as Firecracker does for a vmlinux).
setup_header SynthesizedSetupHeader();

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_KERNEL_IMAGE_H_
