#include "guest-firmware/kernel_image.h"

namespace minivmm {
namespace {
// boot.rst: the "HdrS" magic, the boot flag, and the x86-64 defaults for fields a vmlinux has
// no header to carry (COMMAND_LINE_SIZE 2048 incl. NUL; CONFIG_PHYSICAL_ALIGN 2 MiB..16 MiB).
constexpr uint32_t kHeaderMagic = 0x53726448;
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint16_t kProtocol215 = 0x020f;
constexpr uint32_t kCmdlineSize = 2047;
constexpr uint32_t kInitrdAddrMax = 0x7fffffff;
constexpr uint32_t kKernelAlignment = 0x1000000;
}  // namespace

setup_header SynthesizedSetupHeader() {
  setup_header hdr{};
  hdr.boot_flag = kBootFlag;
  hdr.header = kHeaderMagic;
  hdr.version = kProtocol215;
  hdr.loadflags = LOADED_HIGH;
  hdr.xloadflags = XLF_KERNEL_64;
  hdr.cmdline_size = kCmdlineSize;
  hdr.initrd_addr_max = kInitrdAddrMax;
  hdr.kernel_alignment = kKernelAlignment;
  hdr.relocatable_kernel = 1;
  return hdr;
}

KernelImage KernelImageFromBzImage(BzImage bzimage, std::string name) {
  KernelImage image;
  image.format = KernelImage::Format::kBzImage;
  image.name = std::move(name);
  image.header = bzimage.header;
  image.setup_size = bzimage.setup_size;
  image.bytes = std::move(bzimage.file);
  return image;
}

absl::StatusOr<KernelImage> KernelImageFromVmlinux(SharedBytes bytes, std::string name,
                                                   const setup_header* header) {
  absl::StatusOr<ElfKernel> elf = ParseElfKernel(bytes.span(), name);
  if (!elf.ok()) return elf.status();
  KernelImage image;
  image.format = KernelImage::Format::kElfVmlinux;
  image.name = std::move(name);
  image.header = header != nullptr ? *header : SynthesizedSetupHeader();
  image.elf = std::move(*elf);
  if (header != nullptr && header->relocatable_kernel && image.elf.image_end < bytes.size()) {
    absl::StatusOr<KernelRelocations> relocations =
        ParseKernelRelocations(bytes.span().subspan(image.elf.image_end));
    if (relocations.ok()) image.relocations = std::move(*relocations);
  }
  image.bytes = std::move(bytes);
  return image;
}

}  // namespace minivmm
