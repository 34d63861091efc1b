// The syntax of config values that name host things: interface names, MAC addresses
// (PCI addresses: vmm/base/pci_address.h). Pure checks, so the config parser's messages and the
// tests share one definition.
#ifndef MINIVMM_VMM_CONFIG_CONFIG_VALUES_H_
#define MINIVMM_VMM_CONFIG_CONFIG_VALUES_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace minivmm {

// Linux interface names: at most IFNAMSIZ - 1 bytes, no '/', ':' or whitespace.
bool IsValidInterfaceName(std::string_view name);

// "52:54:00:12:34:56" (hex digits of either case); nullopt for anything else.
std::optional<std::array<uint8_t, 6>> ParseMac(std::string_view text);

}  // namespace minivmm

#endif  // MINIVMM_VMM_CONFIG_CONFIG_VALUES_H_
