#include "vmm/base/pci_address.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

bool ParseHex(std::string_view text, size_t min, size_t max, uint32_t* value) {
  if (text.size() < min || text.size() > max) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(c) != 0; })) {
    return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value, 16);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string PciAddress::ToString() const {
  return absl::StrFormat("%04x:%02x:%02x.%x", domain, bus, device, function);
}

absl::StatusOr<PciAddress> ParsePciAddress(std::string_view text) {
  auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'%s' is not a PCI address: expected DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:01:00.0 "
        "(see lspci -D)",
        std::string(text)));
  };
  std::string_view rest = text;
  uint32_t domain = 0;
  // Two colons: a domain leads; one colon: the short form.
  if (std::count(text.begin(), text.end(), ':') == 2) {
    const size_t colon = rest.find(':');
    if (!ParseHex(rest.substr(0, colon), 4, 8, &domain)) return invalid();
    rest.remove_prefix(colon + 1);
  }
  // Now "BB:DD.F": exactly 7 characters.
  if (rest.size() != 7 || rest[2] != ':' || rest[5] != '.') return invalid();
  uint32_t bus = 0, device = 0, function = 0;
  if (!ParseHex(rest.substr(0, 2), 2, 2, &bus) || !ParseHex(rest.substr(3, 2), 2, 2, &device) ||
      !ParseHex(rest.substr(6, 1), 1, 1, &function)) {
    return invalid();
  }
  if (device > 31 || function > 7) return invalid();
  return PciAddress{domain, static_cast<uint8_t>(bus), static_cast<uint8_t>(device),
                    static_cast<uint8_t>(function)};
}

absl::StatusOr<std::string> CanonicalPciAddress(std::string_view text) {
  MINIVMM_ASSIGN_OR_RETURN(PciAddress address, ParsePciAddress(text));
  return address.ToString();
}

}  // namespace minivmm
