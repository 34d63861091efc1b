#include "vmm/config/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
// Debian builds toml++ as a shared library with exceptions on (it exports only toml::ex::parse),
// so syntax errors arrive as toml::parse_error; they are caught at the one parse call.
#include "toml++/toml.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/pci_address.h"
#include "vmm/base/unique_fd.h"
#include "vmm/config/config_values.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

// One accepted key and the hint printed after every error about it, so a key's advice is
// written once and the list of valid keys cannot drift from what is parsed.
struct KeySpec {
  std::string_view name;
  std::string_view fix;
};

struct SectionSpec {
  std::string_view name;
  std::span<const KeySpec> keys;
};

constexpr KeySpec kVmKeys[] = {
    {"name", "use 1 to 64 characters from A-Z a-z 0-9 . _ -"},
    {"vcpus", "set vcpus to the number of guest CPUs"},
    {"memory_mib", "set memory_mib to the guest RAM size in MiB"},
    {"on_reboot", R"(set on_reboot = "exit" to stop the VMM or "restart" to boot again)"},
};
constexpr KeySpec kBootKeys[] = {
    {"kernel", "set kernel to the path of a Linux kernel: a bzImage or an x86-64 ELF vmlinux"},
    {"initramfs", "set initramfs to the path of an initramfs image, or remove the key"},
    {"cmdline", "set cmdline to one line of kernel parameters"},
    {"decompress", R"(set decompress = "auto" (decompress once, cache) or "guest")"},
};
constexpr KeySpec kSerialKeys[] = {
    {"mode", R"(set mode = "stdio", "file" or "none")"},
    {"path", R"(set path to the file that receives serial output, with mode = "file")"},
};
constexpr KeySpec kDiskKeys[] = {
    {"path", "set path to a raw disk image file (its size a multiple of 512 bytes)"},
    {"read_only", "set read_only = true to refuse guest writes, or false"},
    {"serial", "set serial to up to 20 ASCII characters the guest reads as the disk's serial"},
};
constexpr KeySpec kRngKeys[] = {
    {"enabled", "set enabled = true for a virtio-rng device (host getrandom), or false"},
};
constexpr KeySpec kNetKeys[] = {
    {"tap", "set tap to the name of a host tap interface (at most 15 characters)"},
    {"mac", R"(set mac to a unicast address like "52:54:00:12:34:56", or remove it)"},
};
constexpr KeySpec kConsoleKeys[] = {
    {"device", R"(set device = "serial" (ttyS0) or "virtio" (hvc0, virtio-console))"},
};
constexpr KeySpec kPassthroughKeys[] = {
    {"device", R"(set device to the host PCI address of the function, like "0000:00:03.0")"},
    {"sysfs", "set sysfs to the function's folder, like /sys/bus/pci/devices/0000:00:03.0"},
};
constexpr SectionSpec kVmSection = {"vm", kVmKeys};
constexpr SectionSpec kBootSection = {"boot", kBootKeys};
constexpr SectionSpec kSerialSection = {"serial", kSerialKeys};
constexpr SectionSpec kDiskSection = {"disk", kDiskKeys};
constexpr SectionSpec kRngSection = {"rng", kRngKeys};
constexpr SectionSpec kNetSection = {"net", kNetKeys};
constexpr SectionSpec kConsoleSection = {"console", kConsoleKeys};
constexpr SectionSpec kPassthroughSection = {"passthrough", kPassthroughKeys};
constexpr SectionSpec kSections[] = {kVmSection,      kBootSection,       kSerialSection,
                                     kDiskSection,    kRngSection,        kNetSection,
                                     kConsoleSection, kPassthroughSection};

// One 4 KiB page with the terminating NUL: an upper bound for any kernel. The real limit is
// per-image (Linux boot protocol 2.06+, hdr.cmdline_size; 2047 on x86-64), so the kernel loader
// must check that one too, against the image it loads.
constexpr size_t kMaxCmdlineBytes = 4095;
// The name ends up in thread names, log lines and socket paths; keep it short and path-safe.
constexpr size_t kMaxNameChars = 64;

// Indexed by toml::node_type, whose order toml++ itself relies on for its type names.
constexpr std::string_view kTypeNames[] = {
    "nothing", "table", "array", "string",    "integer", "floating-point number",
    "boolean", "date",  "time",  "date-time",
};
static_assert(std::size(kTypeNames) == static_cast<size_t>(toml::node_type::date_time) + 1);

std::string_view TypeName(toml::node_type type) { return kTypeNames[static_cast<size_t>(type)]; }

template <typename T>
constexpr std::string_view ExpectedTypeName() {
  if constexpr (std::is_same_v<T, std::string>) {
    return "a string";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "true or false";
  } else {
    static_assert(std::is_same_v<T, int64_t>, "the config has only strings, integers, booleans");
    return "an integer";
  }
}

bool IsValidName(std::string_view name) {
  auto allowed = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  };
  return !name.empty() && name.size() <= kMaxNameChars &&
         std::all_of(name.begin(), name.end(), allowed);
}

// Formats "FILE:LINE:COL: what (fix)". toml++ leaves line 0 for nodes it built without source
// text; those point at the top of the file rather than at a nonexistent line.
absl::Status ErrorAt(const fs::path& file, const toml::source_region& where, std::string_view what,
                     std::string_view fix) {
  uint32_t line = where.begin.line;
  uint32_t column = where.begin.column;
  if (line == 0) line = column = 1;
  return absl::InvalidArgumentError(
      absl::StrFormat("%s:%d:%d: %s (%s)", file.string(), line, column, what, fix));
}

std::string ValidNames(std::span<const KeySpec> keys) {
  return absl::StrJoin(keys, ", ",
                       [](std::string* out, const KeySpec& key) { out->append(key.name); });
}

enum class PathCheck {
  kReadableFile,  // kernel, initramfs: read whole before the guest starts
  kCreatableFile  // serial output: created by the VMM, so only its folder must exist
};

// One [section] of the file, absent or present, and the checks that its keys share.
class Section {
 public:
  Section(const fs::path& config_path, const SectionSpec& spec, const toml::table* table)
      : config_path_(config_path), spec_(spec), table_(table) {}

  bool present() const { return table_ != nullptr; }
  const fs::path& config_path() const { return config_path_; }

  // Rejects keys the parser would otherwise silently ignore (usually typos).
  absl::Status CheckKnownKeys() const {
    if (table_ == nullptr) return absl::OkStatus();
    for (const auto& [key, node] : *table_) {
      if (FindSpec(key.str()) != nullptr) continue;
      return ErrorAt(config_path_, key.source(),
                     absl::StrFormat("unknown key '%s' in [%s]", key.str(), spec_.name),
                     absl::StrCat("valid keys: ", ValidNames(spec_.keys)));
    }
    return absl::OkStatus();
  }

  // The value of `key`, or nullptr when absent; a value of another type is an error.
  template <typename T>
  absl::StatusOr<const toml::value<T>*> Get(std::string_view key) const {
    const toml::node* node = table_ == nullptr ? nullptr : table_->get(key);
    if (node == nullptr) return nullptr;
    if (const auto* value = node->as<T>()) return value;
    return Error(
        *node, key,
        absl::StrFormat("must be %s, got %s", ExpectedTypeName<T>(), TypeName(node->type())));
  }

  // `fix` defaults to the key's own advice; pass one when the problem lies elsewhere.
  absl::Status Error(const toml::node& at, std::string_view key, std::string_view what,
                     std::string_view fix = {}) const {
    return ErrorAt(config_path_, at.source(), absl::StrFormat("[%s] %s %s", spec_.name, key, what),
                   fix.empty() ? FindSpec(key)->fix : fix);
  }

  // Missing keys have no position of their own; point at the section header.
  absl::Status MissingKeyError(std::string_view key, std::string_view what) const {
    return ErrorAt(config_path_, table_ == nullptr ? toml::source_region{} : table_->source(),
                   absl::StrFormat("[%s] %s %s", spec_.name, key, what), FindSpec(key)->fix);
  }

  template <typename Int>
  absl::Status ReadInt(std::string_view key, int64_t min, int64_t max, Int& out) const {
    MINIVMM_ASSIGN_OR_RETURN(const toml::value<int64_t>* value, Get<int64_t>(key));
    if (value == nullptr) return absl::OkStatus();
    if (**value < min || **value > max) {
      return Error(*value, key,
                   absl::StrFormat("must be between %d and %d, got %d", min, max, **value));
    }
    out = static_cast<Int>(**value);
    return absl::OkStatus();
  }

  absl::Status ReadBool(std::string_view key, bool& out) const {
    MINIVMM_ASSIGN_OR_RETURN(const toml::value<bool>* value, Get<bool>(key));
    if (value != nullptr) out = **value;
    return absl::OkStatus();
  }

  template <typename Enum>
  absl::Status ReadChoice(std::string_view key,
                          std::initializer_list<std::pair<std::string_view, Enum>> choices,
                          Enum& out) const {
    MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* value, Get<std::string>(key));
    if (value == nullptr) return absl::OkStatus();
    for (const auto& [text, choice] : choices) {
      if (**value == text) {
        out = choice;
        return absl::OkStatus();
      }
    }
    // Reads as prose: "a" or "b"; "a", "b" or "c".
    std::string names;
    for (size_t i = 0; i < choices.size(); ++i) {
      std::string_view separator = i == 0 ? "" : (i + 1 == choices.size() ? " or " : ", ");
      absl::StrAppendFormat(&names, "%s\"%s\"", separator, choices.begin()[i].first);
    }
    return Error(*value, key, absl::StrFormat("must be %s, got \"%s\"", names, **value));
  }

  // Absolute, lexically normal path for `key` (nullopt when absent), resolved against the
  // config's folder so a config works the same from any working directory.
  absl::StatusOr<std::optional<fs::path>> ReadPath(std::string_view key, PathCheck check) const {
    MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* value, Get<std::string>(key));
    if (value == nullptr) return std::nullopt;
    if ((*value)->empty()) return Error(*value, key, "must not be empty");
    std::error_code ec;
    fs::path path = fs::absolute(config_path_.parent_path() / fs::path(**value), ec);
    if (ec) return Error(*value, key, absl::StrCat("cannot be made absolute: ", ec.message()));
    path = path.lexically_normal();
    MINIVMM_RETURN_IF_ERROR(check == PathCheck::kReadableFile
                                ? CheckReadableFile(*value, key, path)
                                : CheckCreatableFile(*value, key, path));
    return path;
  }

 private:
  const KeySpec* FindSpec(std::string_view key) const {
    auto it = std::find_if(spec_.keys.begin(), spec_.keys.end(),
                           [key](const KeySpec& spec) { return spec.name == key; });
    return it == spec_.keys.end() ? nullptr : &*it;
  }

  // Checked here, not at load time, so every file problem is reported against its config line.
  absl::Status CheckReadableFile(const toml::node& at, std::string_view key,
                                 const fs::path& path) const {
    std::error_code ec;
    fs::file_status status = fs::status(path, ec);
    if (ec) return Error(at, key, absl::StrFormat("'%s': %s", path.string(), ec.message()));
    if (!fs::is_regular_file(status)) {
      return Error(at, key, absl::StrFormat("'%s' is not a regular file", path.string()));
    }
    if (::access(path.c_str(), R_OK) != 0) {
      return Error(
          at, key,
          absl::StrFormat("'%s': %s", path.string(), std::generic_category().message(errno)));
    }
    uintmax_t size = fs::file_size(path, ec);
    if (ec || size == 0) return Error(at, key, absl::StrFormat("'%s' is empty", path.string()));
    return absl::OkStatus();
  }

  absl::Status CheckCreatableFile(const toml::node& at, std::string_view key,
                                  const fs::path& path) const {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      return Error(at, key, absl::StrFormat("'%s' is a directory", path.string()));
    }
    if (!fs::is_directory(path.parent_path(), ec)) {
      return Error(at, key,
                   absl::StrFormat("'%s': folder '%s' does not exist", path.string(),
                                   path.parent_path().string()));
    }
    return absl::OkStatus();
  }

  const fs::path& config_path_;
  const SectionSpec& spec_;
  const toml::table* table_;
};

// Rejects unknown top-level names and non-table sections, then hands out each section.
absl::StatusOr<Section> OpenSection(const fs::path& config_path, const toml::table& root,
                                    const SectionSpec& spec) {
  const toml::node* node = root.get(spec.name);
  if (node != nullptr && !node->is_table()) {
    return ErrorAt(
        config_path, node->source(),
        absl::StrFormat("[%s] must be a table, got %s", spec.name, TypeName(node->type())),
        absl::StrFormat("write its keys under a single [%s] header", spec.name));
  }
  Section section(config_path, spec, node == nullptr ? nullptr : node->as_table());
  MINIVMM_RETURN_IF_ERROR(section.CheckKnownKeys());
  return section;
}

absl::Status CheckKnownSections(const fs::path& config_path, const toml::table& root) {
  for (const auto& [key, node] : root) {
    // Captures a plain name: clang before 16 cannot capture structured bindings.
    std::string_view name = key.str();
    auto known = [name](const SectionSpec& spec) { return spec.name == name; };
    if (std::any_of(std::begin(kSections), std::end(kSections), known)) continue;
    // (Section types are checked where each is opened.)
    std::string valid = absl::StrJoin(kSections, ", ", [](std::string* out, const SectionSpec& s) {
      absl::StrAppendFormat(out, "[%s]", s.name);
    });
    return ErrorAt(config_path, key.source(),
                   absl::StrFormat("unknown %s '%s'", node.is_table() ? "section" : "top-level key",
                                   key.str()),
                   absl::StrCat("valid sections: ", valid));
  }
  return absl::OkStatus();
}

absl::Status ParseVm(const Section& vm, VmConfig& config) {
  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* name, vm.Get<std::string>("name"));
  if (name != nullptr) {
    if (!IsValidName(**name)) {
      return vm.Error(*name, "name",
                      absl::StrFormat("must be 1 to %d characters from [A-Za-z0-9._-], got \"%s\"",
                                      kMaxNameChars, **name));
    }
    config.name = **name;
  }
  MINIVMM_RETURN_IF_ERROR(vm.ReadInt("vcpus", 1, kMaxVcpus, config.vcpus));
  MINIVMM_RETURN_IF_ERROR(
      vm.ReadInt("memory_mib", kMinMemoryMib, kMaxMemoryMib, config.memory_mib));
  return vm.ReadChoice("on_reboot",
                       {{"exit", RebootAction::kExit}, {"restart", RebootAction::kRestart}},
                       config.on_reboot);
}

absl::Status ParseBoot(const Section& boot, VmConfig& config) {
  MINIVMM_ASSIGN_OR_RETURN(std::optional<fs::path> kernel,
                           boot.ReadPath("kernel", PathCheck::kReadableFile));
  if (!kernel.has_value()) return boot.MissingKeyError("kernel", "is required");
  config.kernel = std::move(*kernel);
  MINIVMM_ASSIGN_OR_RETURN(config.initramfs, boot.ReadPath("initramfs", PathCheck::kReadableFile));
  MINIVMM_RETURN_IF_ERROR(boot.ReadChoice(
      "decompress", {{"auto", KernelDecompression::kAuto}, {"guest", KernelDecompression::kGuest}},
      config.decompress));

  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* cmdline,
                           boot.Get<std::string>("cmdline"));
  if (cmdline == nullptr) return absl::OkStatus();
  const std::string& text = **cmdline;
  if (text.size() > kMaxCmdlineBytes) {
    return boot.Error(
        *cmdline, "cmdline",
        absl::StrFormat("is %d bytes, longer than %d", text.size(), kMaxCmdlineBytes));
  }
  // The kernel reads the command line as one NUL-terminated string: a NUL would cut it short
  // silently, and a newline is almost always a pasting mistake.
  if (text.find_first_of(std::string_view("\0\n", 2)) != std::string::npos) {
    return boot.Error(*cmdline, "cmdline", "must not contain NUL or newline characters");
  }
  config.cmdline = text;
  return absl::OkStatus();
}

absl::Status ParseSerial(const Section& serial, VmConfig& config) {
  MINIVMM_RETURN_IF_ERROR(serial.ReadChoice(
      "mode",
      {{"stdio", SerialMode::kStdio}, {"file", SerialMode::kFile}, {"none", SerialMode::kNone}},
      config.serial_mode));
  MINIVMM_ASSIGN_OR_RETURN(std::optional<fs::path> path,
                           serial.ReadPath("path", PathCheck::kCreatableFile));
  if (config.serial_mode == SerialMode::kFile) {
    if (!path.has_value())
      return serial.MissingKeyError("path", R"(is required when mode = "file")");
    config.serial_path = std::move(*path);
  } else if (path.has_value()) {
    // A path that would be ignored means the user expected output in that file; say so.
    MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* node, serial.Get<std::string>("path"));
    return serial.Error(*node, "path", R"(is only used with mode = "file")",
                        R"(add mode = "file" to [serial], or remove path)");
  }
  return absl::OkStatus();
}

absl::Status ParseDisk(const Section& disk, const toml::table& table, VmConfig& config) {
  DiskConfig entry;
  MINIVMM_ASSIGN_OR_RETURN(std::optional<fs::path> path,
                           disk.ReadPath("path", PathCheck::kReadableFile));
  if (!path.has_value()) return disk.MissingKeyError("path", "is required");
  entry.path = std::move(*path);
  MINIVMM_RETURN_IF_ERROR(disk.ReadBool("read_only", entry.read_only));
  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* serial, disk.Get<std::string>("serial"));
  if (serial != nullptr) {
    const std::string& text = **serial;
    const bool printable =
        std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (text.size() > kMaxDiskSerialBytes || !printable) {
      return disk.Error(*serial, "serial",
                        absl::StrFormat("must be at most %d printable ASCII characters, got \"%s\"",
                                        kMaxDiskSerialBytes, text));
    }
    entry.serial = text;
  }
  for (const DiskConfig& other : config.disks) {
    // Two devices writing one image corrupt it; the file lock would catch it later, but the
    // config line is the better place to say so.
    if (other.path == entry.path) {
      return disk.Error(
          *table.get("path"), "path",
          absl::StrFormat("'%s' is already used by another [[disk]]", entry.path.string()),
          "give each [[disk]] its own image file");
    }
  }
  config.disks.push_back(std::move(entry));
  return absl::OkStatus();
}

// [[disk]] and [[net]] are arrays of tables, one per device; parse_one handles each.
absl::Status ParseDeviceArray(
    const fs::path& config_path, const toml::table& root, const SectionSpec& spec, size_t max_count,
    const std::function<absl::Status(const Section&, const toml::table&)>& parse_one) {
  const toml::node* node = root.get(spec.name);
  if (node == nullptr) return absl::OkStatus();
  const toml::array* entries = node->as_array();
  if (entries == nullptr || !entries->is_array_of_tables()) {
    return ErrorAt(config_path, node->source(),
                   absl::StrFormat("%s must be an array of tables", spec.name),
                   absl::StrFormat("write each one as its own [[%s]] section (two pairs of "
                                   "brackets)",
                                   spec.name));
  }
  if (entries->size() > max_count) {
    return ErrorAt(
        config_path, node->source(),
        absl::StrFormat("%d [[%s]] sections, more than %d", entries->size(), spec.name, max_count),
        absl::StrFormat("use at most %d", max_count));
  }
  for (const toml::node& element : *entries) {
    const toml::table& table = *element.as_table();
    Section section(config_path, spec, &table);
    MINIVMM_RETURN_IF_ERROR(section.CheckKnownKeys());
    MINIVMM_RETURN_IF_ERROR(parse_one(section, table));
  }
  return absl::OkStatus();
}

absl::Status ParseNet(const Section& net, VmConfig& config) {
  NetConfig entry;
  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* tap, net.Get<std::string>("tap"));
  if (tap == nullptr) return net.MissingKeyError("tap", "is required");
  if (!IsValidInterfaceName(**tap)) {
    return net.Error(*tap, "tap",
                     absl::StrFormat("must be a valid interface name, got \"%s\"", **tap));
  }
  for (const NetConfig& other : config.nets) {
    if (other.tap == **tap) {
      return net.Error(*tap, "tap",
                       absl::StrFormat("'%s' is already used by another [[net]]", **tap),
                       "give each [[net]] its own tap");
    }
  }
  entry.tap = **tap;
  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* mac, net.Get<std::string>("mac"));
  if (mac != nullptr) {
    entry.mac = ParseMac(**mac);
    // Bit 0 of the first octet marks a multicast address, which no interface may own.
    if (!entry.mac || ((*entry.mac)[0] & 1) != 0) {
      return net.Error(*mac, "mac",
                       absl::StrFormat("must be a unicast MAC address, got \"%s\"", **mac));
    }
  }
  config.nets.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status ParsePassthrough(const Section& section, const toml::table& table, VmConfig& config) {
  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* device,
                           section.Get<std::string>("device"));
  MINIVMM_ASSIGN_OR_RETURN(const toml::value<std::string>* sysfs,
                           section.Get<std::string>("sysfs"));
  if ((device == nullptr) == (sysfs == nullptr)) {
    return ErrorAt(section.config_path(), table.source(),
                   "[passthrough] needs exactly one of device and sysfs",
                   R"(set device = "0000:00:03.0", or sysfs = "/sys/bus/pci/devices/...")");
  }
  PassthroughConfig entry;
  const toml::value<std::string>* given = device != nullptr ? device : sysfs;
  std::string_view key = device != nullptr ? "device" : "sysfs";
  const std::string name = device != nullptr ? **device : fs::path(**sysfs).filename().string();
  absl::StatusOr<std::string> address = CanonicalPciAddress(name);
  if (!address.ok()) {
    return section.Error(
        *given, key,
        absl::StrFormat("must name a PCI function like 0000:00:03.0, got \"%s\"", **given));
  }
  entry.address = *address;
  entry.sysfs_path =
      sysfs != nullptr ? fs::path(**sysfs) : fs::path("/sys/bus/pci/devices") / *address;
  for (const PassthroughConfig& other : config.passthrough) {
    if (other.address == entry.address) {
      return section.Error(
          *given, key,
          absl::StrFormat("%s is already passed through by another [[passthrough]]", entry.address),
          "list each function once");
    }
  }
  config.passthrough.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status ParseConsole(const Section& console, VmConfig& config) {
  return console.ReadChoice(
      "device", {{"serial", ConsoleDevice::kSerial}, {"virtio", ConsoleDevice::kVirtio}},
      config.console_device);
}

absl::Status ParseRng(const Section& rng, VmConfig& config) {
  if (!rng.present()) return absl::OkStatus();
  config.rng = true;
  return rng.ReadBool("enabled", config.rng);
}

}  // namespace

absl::StatusOr<VmConfig> ParseVmConfig(std::string_view toml_text,
                                       const std::filesystem::path& config_path) {
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string_view(config_path.native()));
  } catch (const toml::parse_error& error) {
    return ErrorAt(config_path, error.source(), error.description(),
                   "fix the TOML syntax; see https://toml.io");
  }
  MINIVMM_RETURN_IF_ERROR(CheckKnownSections(config_path, root));

  VmConfig config;
  MINIVMM_ASSIGN_OR_RETURN(Section vm, OpenSection(config_path, root, kVmSection));
  MINIVMM_RETURN_IF_ERROR(ParseVm(vm, config));
  MINIVMM_ASSIGN_OR_RETURN(Section boot, OpenSection(config_path, root, kBootSection));
  if (!boot.present()) {
    return ErrorAt(config_path, root.source(), "missing required section [boot]",
                   R"(add [boot] with kernel = "path/to/bzImage")");
  }
  MINIVMM_RETURN_IF_ERROR(ParseBoot(boot, config));
  MINIVMM_ASSIGN_OR_RETURN(Section serial, OpenSection(config_path, root, kSerialSection));
  MINIVMM_RETURN_IF_ERROR(ParseSerial(serial, config));
  MINIVMM_RETURN_IF_ERROR(ParseDeviceArray(config_path, root, kDiskSection, kMaxDisks,
                                           [&](const Section& disk, const toml::table& table) {
                                             return ParseDisk(disk, table, config);
                                           }));
  MINIVMM_RETURN_IF_ERROR(ParseDeviceArray(
      config_path, root, kNetSection, kMaxNets,
      [&](const Section& net, const toml::table&) { return ParseNet(net, config); }));
  MINIVMM_RETURN_IF_ERROR(ParseDeviceArray(config_path, root, kPassthroughSection, kMaxPassthrough,
                                           [&](const Section& section, const toml::table& table) {
                                             return ParsePassthrough(section, table, config);
                                           }));
  MINIVMM_ASSIGN_OR_RETURN(Section console, OpenSection(config_path, root, kConsoleSection));
  MINIVMM_RETURN_IF_ERROR(ParseConsole(console, config));
  MINIVMM_ASSIGN_OR_RETURN(Section rng, OpenSection(config_path, root, kRngSection));
  MINIVMM_RETURN_IF_ERROR(ParseRng(rng, config));
  return config;
}

absl::StatusOr<VmConfig> LoadVmConfig(const std::filesystem::path& config_path) {
  const std::string what = absl::StrCat("cannot read config ", config_path.string());
  UniqueFd fd(::open(config_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(what);
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(what);
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return ParseVmConfig(text, config_path);
}

}  // namespace minivmm
