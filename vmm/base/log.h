// Minimal logging to stderr. stdout belongs to the guest's serial console.
#ifndef MINIVMM_VMM_BASE_LOG_H_
#define MINIVMM_VMM_BASE_LOG_H_

#include <atomic>
#include <cstdint>
#include <string_view>

#include "absl/strings/str_format.h"

namespace minivmm {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void Log(LogLevel level, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogEnabled(level)) LogLine(level, absl::StrFormat(format, args...));
}

// Guest-caused oddities are logged a bounded number of times per call site so that a
// misbehaving guest cannot flood the host's log (STYLE.md: rate-limited, never fatal).
class LogBudget {
 public:
  explicit LogBudget(uint32_t max_lines) : remaining_(max_lines) {}
  bool Take() { return remaining_.fetch_sub(1, std::memory_order_relaxed) > 0; }

 private:
  std::atomic<int64_t> remaining_;
};

#define MINIVMM_LOG_GUEST_ERROR(format, ...)                                          \
  do {                                                                                \
    static ::minivmm::LogBudget _budget(20);                                          \
    if (_budget.Take())                                                               \
      ::minivmm::Log(::minivmm::LogLevel::kWarning, "guest: " format, ##__VA_ARGS__); \
  } while (0)

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_LOG_H_
