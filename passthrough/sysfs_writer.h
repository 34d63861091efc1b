// Writes to sysfs attribute files, which the kernel acts on (driver_override, unbind,
// drivers_probe). Behind an interface so the binding logic is tested against a fake kernel.
#ifndef MINIVMM_PASSTHROUGH_SYSFS_WRITER_H_
#define MINIVMM_PASSTHROUGH_SYSFS_WRITER_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace minivmm {

class SysfsWriter {
 public:
  virtual ~SysfsWriter() = default;
  // One write(2) of value to the attribute at path; an error names the path and errno.
  virtual absl::Status Write(const std::string& path, std::string_view value) = 0;
};

class RealSysfsWriter : public SysfsWriter {
 public:
  absl::Status Write(const std::string& path, std::string_view value) override;
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_SYSFS_WRITER_H_
