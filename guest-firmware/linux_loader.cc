#include "guest-firmware/linux_loader.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "guest-firmware/e820.h"
#include "guest-firmware/elf_kernel.h"
#include "guest-firmware/kaslr.h"
#include "guest-firmware/long_mode.h"
#include "guest-firmware/zero_page.h"
#include "vmm/base/errno_status.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

// The 64-bit entry point is 0x200 past the start of the protected-mode kernel (boot.rst,
// "64-bit BOOT PROTOCOL").
constexpr uint64_t kEntry64Offset = 0x200;
// Before protocol 2.03 initrd_addr_max was not in the header; boot.rst gives this default.
constexpr uint64_t kDefaultInitrdAddrMax = 0x37ffffff;
constexpr uint64_t kPageMask = ~uint64_t{4095};

uint64_t LowRamEnd(const GuestMemory& memory) {
  const auto& first = memory.regions().front();
  return first.guest_address + first.size;
}

absl::Status CheckCmdline(const setup_header& hdr, std::string_view cmdline) {
  // cmdline_size (2.06+) excludes the NUL; older kernels take 255 bytes.
  const uint64_t max = hdr.version >= 0x0206 ? hdr.cmdline_size : 255;
  if (cmdline.size() > max || cmdline.size() >= layout::kCmdlineMaxSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel command line is %d bytes, this kernel accepts at most %d (shorten [boot] cmdline)",
        cmdline.size(), std::min<uint64_t>(max, layout::kCmdlineMaxSize - 1)));
  }
  return absl::OkStatus();
}

// The initramfs goes as high as the kernel allows, page-aligned, above the kernel's
// decompression area (init_size bytes from the load address).
absl::StatusOr<uint64_t> PlaceInitramfs(const GuestMemory& memory, const setup_header& hdr,
                                        uint64_t kernel_end, uint64_t size) {
  const uint64_t addr_max = hdr.version >= 0x0203 ? hdr.initrd_addr_max : kDefaultInitrdAddrMax;
  const uint64_t top = std::min(LowRamEnd(memory), addr_max + 1);
  if (size > top || ((top - size) & kPageMask) < kernel_end) {
    // More RAM helps only when RAM, not the kernel's own limit, is what ends the room.
    const std::string fix = top <= addr_max
                                ? "raise [vm] memory_mib"
                                : absl::StrFormat(
                                      "this kernel takes none above %#x (initrd_addr_max), so "
                                      "use a smaller initramfs",
                                      addr_max);
    return absl::InvalidArgumentError(
        absl::StrFormat("initramfs (%d KiB) does not fit between the kernel (ends at %#x) and "
                        "%#x: %s",
                        (size + 1023) >> 10, kernel_end, top, fix));
  }
  return (top - size) & kPageMask;
}

// Copies the kernel into memory and returns its entry point and the end of the memory it
// occupies (everything placed after it must start above that).
struct PlacedKernel {
  uint64_t entry_point = 0;
  uint64_t end = 0;
  bool randomized = false;
  std::string kaslr_skipped;  // LinuxEntry::kaslr_skipped
};

absl::StatusOr<PlacedKernel> PlaceBzImage(GuestMemory& memory, const KernelImage& kernel) {
  // The kernel decompresses itself in place and needs init_size bytes from its load address.
  const uint64_t span =
      std::max<uint64_t>(kernel.header.init_size, kernel.protected_mode_kernel().size());
  const uint64_t end = layout::kKernelLoadAddress + span;
  if (end > LowRamEnd(memory)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the kernel needs %d MiB of RAM above 1 MiB to boot (init_size), the guest has %d MiB: "
        "raise [vm] memory_mib",
        span >> 20, (LowRamEnd(memory) - layout::kKernelLoadAddress) >> 20));
  }
  MINIVMM_RETURN_IF_ERROR(WithContext(
      memory.Write(layout::kKernelLoadAddress, kernel.protected_mode_kernel()), "loading kernel"));
  return PlacedKernel{layout::kKernelLoadAddress + kEntry64Offset, end};
}

// "nokaslr" on the command line keeps the link address, as the kernel's decompressor does.
bool AsksForNoKaslr(std::string_view cmdline) {
  size_t at = 0;
  while (at < cmdline.size()) {
    const size_t end = std::min(cmdline.find(' ', at), cmdline.size());
    if (cmdline.substr(at, end - at) == "nokaslr") return true;
    at = end + 1;
  }
  return false;
}

// kernel_alignment as the kernel states it, or CONFIG_PHYSICAL_ALIGN's x86-64 minimum when the
// header says nothing usable (a power of two is required for the slot arithmetic).
uint64_t KaslrAlignment(const setup_header& hdr) {
  const uint64_t alignment = hdr.kernel_alignment;
  return alignment >= kHugePageSize && (alignment & (alignment - 1)) == 0 ? alignment
                                                                          : kHugePageSize;
}

// physical_limit: where the next thing placed above the kernel (the initramfs) starts.
absl::StatusOr<PlacedKernel> PlaceVmlinux(GuestMemory& memory, const KernelImage& kernel,
                                          const LinuxBootInputs& in, uint64_t physical_limit) {
  // Everything below 1 MiB is the loader's: GDT, zero page, page tables, command line, ACPI.
  const GuestRange reserved[] = {{0, layout::kHighMemoryStart, "boot data below 1 MiB"}};
  std::optional<KaslrPlacement> kaslr;
  std::string kaslr_skipped;
  if (kernel.relocations && !AsksForNoKaslr(in.cmdline)) {
    absl::StatusOr<KaslrPlacement> chosen =
        ChooseKaslrPlacement(kernel.elf, KaslrAlignment(kernel.header), physical_limit, in.random);
    if (chosen.ok()) {
      kaslr = *chosen;
    } else {
      kaslr_skipped = std::string(chosen.status().message());
    }
  }
  const uint64_t shift = kaslr ? kaslr->physical_base - kernel.elf.physical_start : 0;
  MINIVMM_RETURN_IF_ERROR(
      LoadElfKernel(memory, kernel.elf, kernel.bytes, reserved, kernel.name, shift));
  if (kaslr) {
    MINIVMM_RETURN_IF_ERROR(
        ApplyKernelRelocations(memory, kernel.elf, *kernel.relocations, *kaslr, kernel.name));
  }
  return PlacedKernel{kernel.elf.entry + shift, kernel.elf.physical_end + shift, kaslr.has_value(),
                      std::move(kaslr_skipped)};
}

}  // namespace

absl::StatusOr<LinuxEntry> LoadLinux(GuestMemory& memory, const LinuxBootInputs& in) {
  const KernelImage& kernel = *in.kernel;
  const setup_header& hdr = kernel.header;
  MINIVMM_RETURN_IF_ERROR(CheckCmdline(hdr, in.cmdline));
  ZeroPageInputs zp;
  zp.cmdline_address = layout::kCmdlineAddress;
  zp.cmdline_size = in.cmdline.size();
  zp.rsdp_address = in.rsdp_address;
  PlacedKernel placed;
  if (kernel.format == KernelImage::Format::kBzImage) {
    MINIVMM_ASSIGN_OR_RETURN(placed, PlaceBzImage(memory, kernel));
  } else {
    // The initramfs goes first, at the top, so a randomized kernel can use all RAM below it.
    uint64_t limit = LowRamEnd(memory);
    if (!in.initramfs.empty()) {
      MINIVMM_ASSIGN_OR_RETURN(
          limit, PlaceInitramfs(memory, hdr, kernel.elf.physical_end, in.initramfs.size()));
    }
    MINIVMM_ASSIGN_OR_RETURN(placed, PlaceVmlinux(memory, kernel, in, limit));
  }
  if (!in.initramfs.empty()) {
    MINIVMM_ASSIGN_OR_RETURN(zp.initrd_address,
                             PlaceInitramfs(memory, hdr, placed.end, in.initramfs.size()));
    zp.initrd_size = in.initramfs.size();
    MINIVMM_RETURN_IF_ERROR(memory.Write(zp.initrd_address, in.initramfs));
  }

  std::vector<uint8_t> cmdline(in.cmdline.begin(), in.cmdline.end());
  cmdline.push_back(0);
  MINIVMM_RETURN_IF_ERROR(memory.Write(layout::kCmdlineAddress, cmdline));
  std::vector<GuestRegionSpec> ram;
  for (const auto& r : memory.regions()) ram.push_back({r.guest_address, r.size});
  const std::vector<boot_e820_entry> e820 = BuildE820Map(ram, in.reserved_ranges);
  zp.e820 = e820;
  setup_header zero_page_header = hdr;
  // What the decompressor sets after randomizing: the kernel then also randomizes the bases
  // of its direct map, vmalloc area and vmemmap (arch/x86/mm/kaslr.c).
  if (placed.randomized) zero_page_header.loadflags |= KASLR_FLAG;
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<boot_params> params,
                           BuildZeroPage(zero_page_header, zp));
  MINIVMM_RETURN_IF_ERROR(memory.WriteObject(layout::kZeroPageAddress, *params));
  MINIVMM_RETURN_IF_ERROR(WriteLongModeTables(memory));
  return LinuxEntry{placed.entry_point, layout::kZeroPageAddress, placed.randomized,
                    std::move(placed.kaslr_skipped)};
}

}  // namespace minivmm
