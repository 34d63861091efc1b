#include "passthrough/sysfs_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

absl::Status RealSysfsWriter::Write(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("open %s", path));
  // A sysfs store sees the whole value in one write; a short write would be a partial value.
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return ErrnoError(absl::StrFormat("write '%s' to %s", value, path));
  }
  return absl::OkStatus();
}

}  // namespace minivmm
