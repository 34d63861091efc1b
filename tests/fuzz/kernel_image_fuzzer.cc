// libFuzzer target for the kernel file: the fuzz input is the file `kernel` names. It goes down
// the path minivmm takes at boot (vmm/boot/boot_images.cc): the format from the content, a
// bzImage's setup header and payload, the payload decompressed on the host (capped small, so a
// fuzzer's zip bomb costs nothing), the vmlinux's ELF segments and relocation table, and finally
// LoadLinux into a small guest, guest-decompressed and, when the payload decompressed, from the
// vmlinux too, placed at a random address picked by the input. A kernel file is the user's, not
// the guest's, but "one clear error naming the file" is the promise: every parse error must name
// it, and a kernel that loads must have its entry point inside guest RAM.
//
// Input: [0] the random choice for KASLR slots (as a fraction of each bound)
//        [1..] the kernel file's bytes
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "guest-firmware/bzimage.h"
#include "guest-firmware/elf_kernel.h"
#include "guest-firmware/kernel_image.h"
#include "guest-firmware/kernel_payload.h"
#include "guest-firmware/linux_loader.h"
#include "vmm/base/log.h"
#include "vmm/core/guest_memory.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

constexpr uint64_t kGuestRam = 64ull << 20;
constexpr uint64_t kMaxDecompressed = 4ull << 20;
const std::string kName = "fuzz-kernel-file";

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

// Every error a user's kernel file can cause names the file.
void CheckNamesTheFile(const absl::Status& status) {
  Check(status.ok() || absl::StrContains(status.message(), kName));
}

GuestMemory& Memory() {
  static GuestMemory* memory = [] {
    SetLogLevel(LogLevel::kError);
    absl::StatusOr<GuestMemory> created = GuestMemory::Create(layout::RamRegions(kGuestRam));
    if (!created.ok()) __builtin_trap();
    return new GuestMemory(std::move(*created));
  }();
  return *memory;
}

void Load(const KernelImage& kernel, uint8_t choice) {
  static const std::vector<uint8_t> initramfs(64 * 1024, 0x5a);
  LinuxBootInputs in;
  in.kernel = &kernel;
  in.initramfs = initramfs;
  in.cmdline = "console=ttyS0";
  in.random = [choice](uint64_t bound) {
    const uint64_t pick = bound * choice / 256;
    Check(pick < bound);
    return pick;
  };
  absl::StatusOr<LinuxEntry> entry = LoadLinux(Memory(), in);
  if (!entry.ok()) return;  // too big for this guest, a command line it refuses: both fine
  Check(entry->entry_point < kGuestRam);
  Check(entry->zero_page == layout::kZeroPageAddress);
}

void FuzzKernelFile(std::span<const uint8_t> file, uint8_t choice) {
  if (LooksLikeElf(file)) {
    absl::StatusOr<KernelImage> vmlinux =
        KernelImageFromVmlinux(std::vector<uint8_t>(file.begin(), file.end()), kName, nullptr);
    CheckNamesTheFile(vmlinux.status());
    if (vmlinux.ok()) Load(*vmlinux, choice);
    return;
  }
  absl::StatusOr<BzImage> bzimage =
      ParseBzImage(std::vector<uint8_t>(file.begin(), file.end()), kName);
  CheckNamesTheFile(bzimage.status());
  if (!bzimage.ok()) return;
  Load(KernelImageFromBzImage(*bzimage, kName), choice);

  absl::StatusOr<KernelPayload> payload = ExtractPayload(*bzimage, kName);
  CheckNamesTheFile(payload.status());
  if (!payload.ok() || !CanDecompressOnHost(payload->compression)) return;
  absl::StatusOr<std::vector<uint8_t>> decompressed =
      DecompressPayload(*payload, kName, kMaxDecompressed);
  CheckNamesTheFile(decompressed.status());
  if (!decompressed.ok()) return;
  Check(decompressed->size() <= kMaxDecompressed);
  if (!LooksLikeElf(*decompressed)) return;
  absl::StatusOr<KernelImage> cached =
      KernelImageFromVmlinux(std::move(*decompressed), kName, &bzimage->header);
  CheckNamesTheFile(cached.status());
  if (cached.ok()) Load(*cached, choice);
}

}  // namespace
}  // namespace minivmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  minivmm::FuzzKernelFile(std::span(data + 1, size - 1), data[0]);
  return 0;
}
