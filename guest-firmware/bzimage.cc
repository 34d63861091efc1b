#include "guest-firmware/bzimage.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace minivmm {
namespace {

// Boot protocol offsets into the file (boot.rst, "THE REAL-MODE KERNEL HEADER").
constexpr size_t kSetupHeaderOffset = 0x1f1;
constexpr size_t kJumpLengthOffset = 0x201;  // the header ends at 0x202 + this byte
constexpr size_t kHeaderMagicEnd = 0x206;    // "HdrS" occupies 0x202..0x205
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS"
// setup_sects == 0 means 4 for compatibility with ancient kernels (boot.rst).
constexpr uint8_t kDefaultSetupSects = 4;
constexpr size_t kSectorSize = 512;

absl::Status Invalid(const std::string& name, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrFormat("kernel %s: %s", name, why));
}

}  // namespace

absl::StatusOr<BzImage> ParseBzImage(std::vector<uint8_t> file, const std::string& name) {
  if (file.size() < kHeaderMagicEnd) {
    return Invalid(name,
                   absl::StrFormat("file is %d bytes, too small to be a bzImage", file.size()));
  }
  BzImage image;
  // Copy only the bytes this kernel's header really has: a shorter (older) header must not pick
  // up code bytes as newer fields.
  const size_t header_end = std::min<size_t>(0x202 + file[kJumpLengthOffset], file.size());
  const size_t copy = std::min(sizeof(setup_header), header_end - kSetupHeaderOffset);
  std::memcpy(&image.header, file.data() + kSetupHeaderOffset, copy);
  const setup_header& hdr = image.header;

  if (hdr.boot_flag != kBootFlag || hdr.header != kHeaderMagic) {
    return Invalid(name,
                   "not a bzImage (no 0xAA55 boot flag and \"HdrS\" setup header); "
                   "give a bzImage such as /boot/vmlinuz-*");
  }
  if (hdr.version < kMinBootProtocol) {
    return Invalid(name, absl::StrFormat("boot protocol %d.%02d is too old; minivmm needs %d.%02d "
                                         "(Linux 3.8 or later) for the 64-bit entry point",
                                         hdr.version >> 8, hdr.version & 0xff,
                                         kMinBootProtocol >> 8, kMinBootProtocol & 0xff));
  }
  if (!(hdr.loadflags & LOADED_HIGH)) {
    return Invalid(name, "not a bzImage: the kernel is not loaded high (zImage is unsupported)");
  }
  if (!(hdr.xloadflags & XLF_KERNEL_64)) {
    return Invalid(name,
                   "kernel has no 64-bit entry point (XLF_KERNEL_64 clear): build an "
                   "x86-64 kernel");
  }
  const uint8_t sects = hdr.setup_sects == 0 ? kDefaultSetupSects : hdr.setup_sects;
  image.setup_size = (static_cast<uint64_t>(sects) + 1) * kSectorSize;
  if (image.setup_size >= file.size()) {
    return Invalid(name, absl::StrFormat("truncated: setup code ends at %d but the file has only "
                                         "%d bytes",
                                         image.setup_size, file.size()));
  }
  // syssize counts 16-byte paragraphs of the protected-mode kernel (protocol 2.04+).
  const uint64_t expected = static_cast<uint64_t>(hdr.syssize) * 16;
  if (expected > file.size() - image.setup_size) {
    return Invalid(name, absl::StrFormat("truncated: header says the kernel is %d bytes, the file "
                                         "holds %d after the setup code",
                                         expected, file.size() - image.setup_size));
  }
  image.file = std::move(file);
  return image;
}

}  // namespace minivmm
