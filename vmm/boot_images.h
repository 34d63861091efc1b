// Reads the kernel and initramfs named by the config and validates them, before KVM is touched.
#ifndef MINIVMM_VMM_BOOT_IMAGES_H_
#define MINIVMM_VMM_BOOT_IMAGES_H_

#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/config.h"
#include "vmm/vm.h"

namespace minivmm {

absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::filesystem::path& path);
absl::StatusOr<BootImages> LoadBootImages(const VmConfig& config);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BOOT_IMAGES_H_
