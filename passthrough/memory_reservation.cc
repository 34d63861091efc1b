#include "passthrough/memory_reservation.h"

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

uint64_t CeilDiv(uint64_t value, uint64_t unit) { return value / unit + (value % unit != 0); }

}  // namespace

absl::Status CheckMemlockLimit(uint64_t pinned_bytes, rlim_t limit_bytes) {
  if (limit_bytes == RLIM_INFINITY || pinned_bytes <= limit_bytes) return absl::OkStatus();
  // ulimit -l and limits.conf count KiB; round up so the suggested value is enough.
  const uint64_t needed_kib = CeilDiv(pinned_bytes, kKiB);
  return absl::FailedPreconditionError(absl::StrFormat(
      "passthrough pins all guest memory (%d MiB), but the locked-memory limit RLIMIT_MEMLOCK "
      "is %d MiB: raise it by %d MiB to at least %d KiB (ulimit -l %d, LimitMEMLOCK= in a "
      "systemd unit, or memlock in /etc/security/limits.conf)",
      CeilDiv(pinned_bytes, kMiB), limit_bytes / kMiB, CeilDiv(pinned_bytes - limit_bytes, kMiB),
      needed_kib, needed_kib));
}

absl::Status CheckMemlockLimit(uint64_t pinned_bytes) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return ErrnoError("getrlimit(RLIMIT_MEMLOCK)");
  return CheckMemlockLimit(pinned_bytes, limit.rlim_cur);
}

}  // namespace minivmm
