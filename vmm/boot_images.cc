#include "vmm/boot_images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "vmm/errno_status.h"
#include "vmm/unique_fd.h"

namespace minivmm {

absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("cannot open %s", path.string()));
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return ErrnoError(absl::StrFormat("fstat(%s)", path.string()));
  std::vector<uint8_t> data(st.st_size);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrFormat("cannot read %s", path.string()));
    if (n == 0) break;  // the file shrank under us; parse what we have
    done += n;
  }
  data.resize(done);
  return data;
}

absl::StatusOr<BootImages> LoadBootImages(const VmConfig& config) {
  MINIVMM_ASSIGN_OR_RETURN(std::vector<uint8_t> kernel_bytes, ReadWholeFile(config.kernel));
  MINIVMM_ASSIGN_OR_RETURN(BzImage kernel, ParseBzImage(std::move(kernel_bytes), config.kernel.string()));
  BootImages images{std::move(kernel), {}};
  if (config.initramfs) {
    MINIVMM_ASSIGN_OR_RETURN(images.initramfs, ReadWholeFile(*config.initramfs));
  }
  return images;
}

}  // namespace minivmm
