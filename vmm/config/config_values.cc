#include "vmm/config/config_values.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace minivmm {

// Linux interface names: at most IFNAMSIZ - 1 bytes, no '/', ':' or whitespace
// (net/core/dev.c, dev_valid_name).
bool IsValidInterfaceName(std::string_view name) {
  constexpr size_t kMaxInterfaceName = 15;
  if (name.empty() || name.size() > kMaxInterfaceName || name == "." || name == "..") {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return c > 0x20 && c < 0x7f && c != '/' && c != ':'; });
}

std::optional<std::array<uint8_t, 6>> ParseMac(std::string_view text) {
  std::array<uint8_t, 6> mac;
  if (text.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[3 * i - 1] != ':') return std::nullopt;
    unsigned value = 0;
    for (char c : text.substr(3 * i, 2)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
      value = value * 16 + (absl::ascii_isdigit(static_cast<unsigned char>(c))
                                ? c - '0'
                                : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

}  // namespace minivmm
