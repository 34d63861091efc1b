#include "vmm/boot/boot_images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "guest-firmware/elf_kernel.h"
#include "guest-firmware/kernel_payload.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {
namespace {

// A decompressed x86-64 kernel is tens of MiB; anything claiming more is not a kernel we boot,
// and must not make minivmm allocate it.
constexpr uint64_t kMaxDecompressedKernel = 512ull << 20;

std::string MiB(uint64_t bytes) { return absl::StrFormat("%.1f MiB", bytes / 1048576.0); }

// Decompresses the payload on the host and stores it; the bytes, or why not.
absl::StatusOr<std::vector<uint8_t>> DecompressAndStore(const BzImage& bzimage,
                                                        const std::string& name,
                                                        const KernelCache& cache,
                                                        const std::string& key) {
  MINIVMM_ASSIGN_OR_RETURN(KernelPayload payload, ExtractPayload(bzimage, name));
  if (!CanDecompressOnHost(payload.compression)) {
    return absl::UnimplementedError(absl::StrFormat("its %s payload is decompressed by the guest",
                                                    CompressionName(payload.compression)));
  }
  // Decompressing is only worth it if the result can be kept.
  MINIVMM_RETURN_IF_ERROR(cache.PrepareDirectory());
  const absl::Time start = absl::Now();
  MINIVMM_ASSIGN_OR_RETURN(std::vector<uint8_t> vmlinux,
                           DecompressPayload(payload, name, kMaxDecompressedKernel));
  if (!LooksLikeElf(vmlinux)) {
    return absl::InvalidArgumentError("its payload does not decompress to an ELF vmlinux");
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  MINIVMM_RETURN_IF_ERROR(WithContext(cache.Store(key, vmlinux), "kernel cache"));
  Log(LogLevel::kInfo, "kernel: decompressed the %s payload (%s -> %s) in %.2f s, cached in %s",
      CompressionName(payload.compression), MiB(payload.bytes.size()), MiB(vmlinux.size()), seconds,
      cache.directory().string());
  return vmlinux;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("cannot open %s", path.string()));
  return ReadWholeFd(fd.get(), path);
}

absl::StatusOr<std::vector<uint8_t>> ReadWholeFd(int fd, const std::filesystem::path& path) {
  struct stat st;
  if (::fstat(fd, &st) < 0) return ErrnoError(absl::StrFormat("fstat(%s)", path.string()));
  std::vector<uint8_t> data(st.st_size);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrFormat("cannot read %s", path.string()));
    if (n == 0) break;  // the file shrank under us; parse what we have
    done += n;
  }
  data.resize(done);
  return data;
}

KernelImage SelectKernelForBzImage(BzImage bzimage, const std::string& name,
                                   const KernelCache* cache, std::optional<std::string> key_in) {
  auto guest_decompresses = [&](const absl::Status& why) {
    Log(LogLevel::kWarning, "kernel %s: the guest decompresses it: %s", name, why.message());
    return KernelImageFromBzImage(std::move(bzimage), name);
  };
  if (cache == nullptr)
    return guest_decompresses(
        absl::UnavailableError("no kernel cache directory (set XDG_CACHE_HOME or HOME)"));
  const absl::Time start = absl::Now();
  const std::string key = key_in ? *key_in : KernelCache::KeyFor(bzimage.file);
  const absl::Time hashed = absl::Now();
  absl::StatusOr<std::optional<SharedBytes>> hit = cache->Lookup(key);
  if (hit.ok() && hit->has_value()) {
    const absl::Time read = absl::Now();
    absl::StatusOr<KernelImage> cached =
        KernelImageFromVmlinux(std::move(**hit), name, &bzimage.header);
    if (cached.ok()) {
      Log(LogLevel::kInfo,
          "kernel: using the cached vmlinux %s/%s.vmlinux (key %.2f s, read %.2f s)",
          cache->directory().string(), key, absl::ToDoubleSeconds(hashed - start),
          absl::ToDoubleSeconds(read - hashed));
      return std::move(*cached);
    }
    Log(LogLevel::kWarning, "kernel cache entry %s is unusable (%s): rebuilding it", key,
        cached.status().message());
  } else if (!hit.ok()) {
    return guest_decompresses(hit.status());  // the cache is unusable: say so once
  }
  absl::StatusOr<std::vector<uint8_t>> vmlinux = DecompressAndStore(bzimage, name, *cache, key);
  if (!vmlinux.ok()) return guest_decompresses(vmlinux.status());
  absl::StatusOr<KernelImage> image =
      KernelImageFromVmlinux(std::move(*vmlinux), name, &bzimage.header);
  if (!image.ok()) return guest_decompresses(image.status());
  return std::move(*image);
}

absl::StatusOr<BootImages> LoadBootImages(const VmConfig& config, const KernelCache* cache) {
  const std::string name = config.kernel.string();
  UniqueFd fd(::open(config.kernel.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("cannot open %s", name));
  MINIVMM_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadWholeFd(fd.get(), config.kernel));
  BootImages images;
  // The format comes from the content, never from the file name.
  if (LooksLikeElf(bytes)) {
    MINIVMM_ASSIGN_OR_RETURN(images.kernel,
                             KernelImageFromVmlinux(std::move(bytes), name, nullptr));
  } else {
    MINIVMM_ASSIGN_OR_RETURN(BzImage bzimage, ParseBzImage(std::move(bytes), name));
    if (config.decompress == KernelDecompression::kGuest) {
      images.kernel = KernelImageFromBzImage(std::move(bzimage), name);
    } else {
      std::optional<std::string> key;
      if (cache != nullptr) key = cache->KeyForFile(fd.get(), bzimage.file);
      images.kernel = SelectKernelForBzImage(std::move(bzimage), name, cache, std::move(key));
    }
  }
  if (config.initramfs) {
    MINIVMM_ASSIGN_OR_RETURN(images.initramfs, ReadWholeFile(*config.initramfs));
  }
  return images;
}

}  // namespace minivmm
