// Turns errno into absl::Status once, at the syscall wrapper; callers add context.
#ifndef MINIVMM_VMM_BASE_ERRNO_STATUS_H_
#define MINIVMM_VMM_BASE_ERRNO_STATUS_H_

#include <cerrno>
#include <string_view>

#include "absl/status/status.h"

namespace minivmm {

// "what: strerror(err)" with the status code that matches err (absl::ErrnoToStatus).
absl::Status ErrnoError(std::string_view what, int err = errno);

// Prefixes a non-OK status with context ("loading kernel: ..."), keeping its code.
absl::Status WithContext(const absl::Status& status, std::string_view context);

}  // namespace minivmm

// Returns from the enclosing function when expr yields a non-OK absl::Status.
#define MINIVMM_RETURN_IF_ERROR(expr)           \
  do {                                          \
    if (absl::Status _st = (expr); !_st.ok()) { \
      return _st;                               \
    }                                           \
  } while (0)

#define MINIVMM_CONCAT_INNER(a, b) a##b
#define MINIVMM_CONCAT(a, b) MINIVMM_CONCAT_INNER(a, b)
#define MINIVMM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(*tmp)

// Declares/assigns lhs from a StatusOr, returning its status on error.
#define MINIVMM_ASSIGN_OR_RETURN(lhs, expr) \
  MINIVMM_ASSIGN_OR_RETURN_IMPL(MINIVMM_CONCAT(_statusor_, __LINE__), lhs, expr)

#endif  // MINIVMM_VMM_BASE_ERRNO_STATUS_H_
