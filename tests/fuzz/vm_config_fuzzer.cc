// libFuzzer target for the TOML config parser (vmm/config/config.h): every input must end in a
// config or in one error that says where ("FILE:LINE:COLUMN: ..."), never in a crash, an
// exception that escapes, or an unpositioned message. Paths in the input resolve under a
// folder that does not exist, so the parser's file checks never find anything.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_ops.h"
#include "vmm/config/config.h"

namespace minivmm {
namespace {

using fuzzing::Trap;

constexpr std::string_view kConfigPath = "/nonexistent-minivmm-fuzz/vm.toml";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "LINE:COLUMN: " after the path, both numbers at least 1.
bool Positioned(std::string_view message) {
  if (!message.starts_with(kConfigPath)) return false;
  message.remove_prefix(kConfigPath.size());
  for (int number = 0; number < 2; ++number) {
    if (message.empty() || message[0] != ':') return false;
    message.remove_prefix(1);
    size_t digits = 0;
    while (digits < message.size() && IsDigit(message[digits])) ++digits;
    if (digits == 0 || message[0] == '0') return false;
    message.remove_prefix(digits);
  }
  return message.starts_with(": ") && message.size() > 2;
}

}  // namespace
}  // namespace minivmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<minivmm::VmConfig> config =
      minivmm::ParseVmConfig(text, std::string(minivmm::kConfigPath));
  if (!config.ok()) minivmm::fuzzing::Trap(minivmm::Positioned(std::string(config.status().message())));
  return 0;
}
