#include "vmm/base/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"

namespace minivmm {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level); }
bool LogEnabled(LogLevel level) { return level >= g_level.load(std::memory_order_relaxed); }

void LogLine(LogLevel level, std::string_view message) {
  // One write() per line so lines from vCPU threads never interleave mid-line.
  std::string line = absl::StrCat("minivmm: ", LevelName(level).data(), ": ",
                                  absl::string_view(message.data(), message.size()), "\n");
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace minivmm
