#include "vmm/base/errno_status.h"

#include "absl/strings/str_cat.h"

namespace minivmm {

// Debian's Abseil is built with its own string_view type, hence the explicit conversions.
absl::Status ErrnoError(std::string_view what, int err) {
  return absl::ErrnoToStatus(err, absl::string_view(what.data(), what.size()));
}

absl::Status WithContext(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(absl::string_view(context.data(), context.size()),
                                                  ": ", status.message()));
}

}  // namespace minivmm
