// VmConfig -> vm.toml text: the inverse of ParseVmConfig, key for key (config.cc holds the
// schema: section and key names, and the spelling of each choice).
#include <array>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/str_format.h"
#include "toml++/toml.h"
#include "vmm/config/config.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

// The parser's default for a passthrough function's sysfs folder (config.cc, ParsePassthrough).
constexpr std::string_view kPciDevicesFolder = "/sys/bus/pci/devices";

std::string AbsolutePath(const fs::path& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  // Only an unreadable working directory fails here; the path as given is the best left.
  if (ec) return path.string();
  return absolute.lexically_normal().string();
}

std::string_view RebootActionName(RebootAction action) {
  switch (action) {
    case RebootAction::kExit:
      return "exit";
    case RebootAction::kRestart:
      return "restart";
  }
  return "exit";
}

std::string_view DecompressionName(KernelDecompression decompression) {
  switch (decompression) {
    case KernelDecompression::kAuto:
      return "auto";
    case KernelDecompression::kGuest:
      return "guest";
  }
  return "auto";
}

std::string_view SerialModeName(SerialMode mode) {
  switch (mode) {
    case SerialMode::kStdio:
      return "stdio";
    case SerialMode::kFile:
      return "file";
    case SerialMode::kNone:
      return "none";
  }
  return "stdio";
}

std::string_view ConsoleDeviceName(ConsoleDevice device) {
  switch (device) {
    case ConsoleDevice::kSerial:
      return "serial";
    case ConsoleDevice::kVirtio:
      return "virtio";
  }
  return "serial";
}

// "52:54:00:12:34:56", the form ParseMac reads.
std::string FormatMac(const std::array<uint8_t, 6>& mac) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                         mac[5]);
}

toml::table VmTable(const VmConfig& config) {
  return toml::table{
      {"name", config.name},
      {"vcpus", static_cast<int64_t>(config.vcpus)},
      {"memory_mib", static_cast<int64_t>(config.memory_mib)},
      {"on_reboot", RebootActionName(config.on_reboot)},
  };
}

toml::table BootTable(const VmConfig& config) {
  toml::table boot{
      {"kernel", AbsolutePath(config.kernel)},
      {"cmdline", config.cmdline},
      {"decompress", DecompressionName(config.decompress)},
  };
  if (config.initramfs.has_value()) boot.insert("initramfs", AbsolutePath(*config.initramfs));
  return boot;
}

toml::table SerialTable(const VmConfig& config) {
  toml::table serial{{"mode", SerialModeName(config.serial_mode)}};
  // The parser refuses a path with any other mode.
  if (config.serial_mode == SerialMode::kFile) {
    serial.insert("path", AbsolutePath(config.serial_path));
  }
  return serial;
}

toml::array DiskArray(const VmConfig& config) {
  toml::array disks;
  for (const DiskConfig& disk : config.disks) {
    disks.push_back(toml::table{
        {"path", AbsolutePath(disk.path)},
        {"read_only", disk.read_only},
        {"serial", disk.serial},
    });
  }
  return disks;
}

toml::array NetArray(const VmConfig& config) {
  toml::array nets;
  for (const NetConfig& net : config.nets) {
    toml::table table{{"tap", net.tap}};
    if (net.mac.has_value()) table.insert("mac", FormatMac(*net.mac));
    nets.push_back(std::move(table));
  }
  return nets;
}

toml::array PassthroughArray(const VmConfig& config) {
  toml::array functions;
  for (const PassthroughConfig& function : config.passthrough) {
    // `device` parses back to the default folder; any other folder must be written as `sysfs`
    // (whose last component the parser reads the address from).
    if (function.sysfs_path == fs::path(kPciDevicesFolder) / function.address) {
      functions.push_back(toml::table{{"device", function.address}});
    } else {
      functions.push_back(toml::table{{"sysfs", AbsolutePath(function.sysfs_path)}});
    }
  }
  return functions;
}

// One section at a time, in the order config.cc documents them (a toml::table would sort them
// by name). format_flags::none: basic "..." strings with every special character escaped, no
// literal or multi-line strings, no indentation.
template <typename TableOrArray>
void AppendSection(std::ostringstream& out, std::string_view name, TableOrArray&& contents) {
  if (contents.empty()) return;  // no [[disk]] (etc.) at all
  toml::table root;
  root.insert(name, std::move(contents));
  if (out.tellp() > 0) out << "\n\n";
  out << toml::toml_formatter(root, toml::format_flags::none);
}

}  // namespace

std::string FormatVmConfig(const VmConfig& config) {
  std::ostringstream out;
  AppendSection(out, "vm", VmTable(config));
  AppendSection(out, "boot", BootTable(config));
  AppendSection(out, "serial", SerialTable(config));
  AppendSection(out, "disk", DiskArray(config));
  AppendSection(out, "rng", toml::table{{"enabled", config.rng}});
  AppendSection(out, "net", NetArray(config));
  AppendSection(out, "console", toml::table{{"device", ConsoleDeviceName(config.console_device)}});
  AppendSection(out, "passthrough", PassthroughArray(config));
  out << "\n";
  return out.str();
}

}  // namespace minivmm
