// Reads the kernel and initramfs named by the config and decides how the kernel boots, before
// KVM is touched: a vmlinux as is; a bzImage through the kernel cache (decompressed once by
// minivmm) when [boot] decompress = "auto" and its format allows, else as a bzImage that the
// guest decompresses.
#ifndef MINIVMM_VMM_BOOT_BOOT_IMAGES_H_
#define MINIVMM_VMM_BOOT_BOOT_IMAGES_H_

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "guest-firmware/kernel_image.h"
#include "vmm/boot/kernel_cache.h"
#include "vmm/config/config.h"

namespace minivmm {

// The guest's boot images, read and validated before any KVM object exists.
struct BootImages {
  KernelImage kernel;
  std::vector<uint8_t> initramfs;
};

absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::filesystem::path& path);
// The same for a file already open.
absl::StatusOr<std::vector<uint8_t>> ReadWholeFd(int fd, const std::filesystem::path& path);

// cache == nullptr: no cache is available (the guest decompresses).
absl::StatusOr<BootImages> LoadBootImages(const VmConfig& config, const KernelCache* cache);

// The kernel to boot for a bzImage under decompress = "auto": its cached vmlinux, or a new
// one decompressed now and stored; the bzImage itself (guest decompression) whenever that is
// not possible, with one log line saying why. Never fails for a cache problem.
// `key` is the bzImage's cache key when the caller has it (KernelCache::KeyForFile).
KernelImage SelectKernelForBzImage(BzImage bzimage, const std::string& name,
                                   const KernelCache* cache,
                                   std::optional<std::string> key = std::nullopt);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BOOT_BOOT_IMAGES_H_
