#include "passthrough/host_pci.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "vmm/errno_status.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

// Drivers that leave a group viable besides vfio-pci itself: the kernel lets a group be owned
// by userspace when every bound driver sets driver_managed_dma (pci-stub, pcieport: Linux 5.19
// "vfio: Set DMA ownership for VFIO devices"); unbound devices do no DMA.
constexpr std::string_view kVfioPci = "vfio-pci";
constexpr std::string_view kViableDrivers[] = {"vfio-pci", "pci-stub", "pcieport"};

// Parses exactly `min`..`max` hex digits making up all of `text`.
bool ParseHex(std::string_view text, size_t min, size_t max, uint32_t* value) {
  if (text.size() < min || text.size() > max) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(c) != 0; })) {
    return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value, 16);
  return ec == std::errc() && end == text.data() + text.size();
}

std::string ToStd(std::string_view s) { return std::string(s); }

absl::Status FsError(std::string_view what, const std::error_code& ec) {
  return ErrnoError(what, ec.value());
}

// Reads a symlink and returns the last component of its target; "" when the link is absent.
absl::StatusOr<std::string> LinkBasename(const fs::path& link) {
  std::error_code ec;
  fs::path target = fs::read_symlink(link, ec);
  if (ec == std::errc::no_such_file_or_directory) return std::string();
  if (ec) return FsError(absl::StrFormat("readlink %s", link.string()), ec);
  return target.filename().string();
}

bool DirectoryHasEntries(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  return !ec && it != fs::directory_iterator();
}

std::string BindHint(const std::string& root, const std::string& bdf, bool has_driver) {
  const std::string dev = absl::StrFormat("%s/bus/pci/devices/%s", root, bdf);
  std::string manual;
  if (has_driver) manual = absl::StrFormat("echo %s > %s/driver/unbind; ", bdf, dev);
  absl::StrAppendFormat(&manual,
                        "echo vfio-pci > %s/driver_override; echo %s > %s/bus/pci/drivers_probe",
                        dev, bdf, root);
  return absl::StrFormat("bind it to vfio-pci: minivmm passthrough bind %s (or: %s)", bdf, manual);
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
        ToStd(text)));
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

HostPci::HostPci(std::string sysfs_root) : root_(std::move(sysfs_root)) {}

std::string HostPci::DevicePath(const std::string& bdf) const {
  return absl::StrFormat("%s/bus/pci/devices/%s", root_, bdf);
}

absl::Status HostPci::RequireDevice(const std::string& bdf) const {
  std::error_code ec;
  if (!fs::exists(DevicePath(bdf), ec)) {
    return absl::NotFoundError(absl::StrFormat("no PCI device %s: check lspci -D", bdf));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> HostPci::IommuGroupOf(std::string_view bdf_text) const {
  MINIVMM_ASSIGN_OR_RETURN(const std::string bdf, CanonicalPciAddress(bdf_text));
  MINIVMM_RETURN_IF_ERROR(RequireDevice(bdf));
  const fs::path link = DevicePath(bdf) + "/iommu_group";
  MINIVMM_ASSIGN_OR_RETURN(const std::string group_name, LinkBasename(link));
  if (group_name.empty()) {
    const std::string groups_dir = root_ + "/kernel/iommu_groups";
    const std::string why =
        DirectoryHasEntries(groups_dir)
            ? "the host's IOMMU does not cover it"
            : absl::StrFormat("the host has no IOMMU enabled (%s is empty)", groups_dir);
    return absl::FailedPreconditionError(
        absl::StrFormat("no IOMMU group for %s: %s: enable VT-d/AMD-Vi in firmware and boot with "
                        "intel_iommu=on / amd_iommu=on",
                        bdf, why));
  }
  uint32_t group = 0;
  auto [end, ec] =
      std::from_chars(group_name.data(), group_name.data() + group_name.size(), group, 10);
  if (ec != std::errc() || end != group_name.data() + group_name.size() || group > INT32_MAX) {
    return absl::InternalError(absl::StrFormat(
        "%s points to '%s', which is not an IOMMU group number", link.string(), group_name));
  }
  return static_cast<int>(group);
}

absl::StatusOr<std::string> HostPci::DriverOf(std::string_view bdf_text) const {
  MINIVMM_ASSIGN_OR_RETURN(const std::string bdf, CanonicalPciAddress(bdf_text));
  MINIVMM_RETURN_IF_ERROR(RequireDevice(bdf));
  return LinkBasename(DevicePath(bdf) + "/driver");
}

absl::StatusOr<std::vector<std::string>> HostPci::GroupMembers(int group) const {
  const fs::path dir = absl::StrFormat("%s/kernel/iommu_groups/%d/devices", root_, group);
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) {
    return absl::NotFoundError(
        absl::StrFormat("no IOMMU group %d (%s is missing)", group, dir.string()));
  }
  if (ec) return FsError(absl::StrFormat("listing %s", dir.string()), ec);
  std::vector<std::string> members;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    members.push_back(it->path().filename().string());
  }
  if (ec) return FsError(absl::StrFormat("listing %s", dir.string()), ec);
  std::sort(members.begin(), members.end());
  return members;
}

absl::Status HostPci::CheckAssignable(std::string_view bdf_text) const {
  MINIVMM_ASSIGN_OR_RETURN(const std::string bdf, CanonicalPciAddress(bdf_text));
  MINIVMM_RETURN_IF_ERROR(RequireDevice(bdf));
  MINIVMM_ASSIGN_OR_RETURN(const std::string driver, DriverOf(bdf));
  if (driver != kVfioPci) {
    const std::string bound = driver.empty()
                                  ? "is not bound to any driver"
                                  : absl::StrFormat("is bound to %s, not vfio-pci", driver);
    return absl::FailedPreconditionError(
        absl::StrFormat("PCI device %s %s: %s", bdf, bound, BindHint(root_, bdf, !driver.empty())));
  }
  MINIVMM_ASSIGN_OR_RETURN(const int group, IommuGroupOf(bdf));
  MINIVMM_ASSIGN_OR_RETURN(const std::vector<std::string> members, GroupMembers(group));
  for (const std::string& member : members) {
    if (member == bdf) continue;
    // Members may be non-PCI devices in principle, so read their driver through the group's
    // own links rather than /sys/bus/pci.
    MINIVMM_ASSIGN_OR_RETURN(
        const std::string member_driver,
        LinkBasename(
            absl::StrFormat("%s/kernel/iommu_groups/%d/devices/%s/driver", root_, group, member)));
    if (member_driver.empty() || std::find(std::begin(kViableDrivers), std::end(kViableDrivers),
                                           member_driver) != std::end(kViableDrivers)) {
      continue;
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "IOMMU group %d of %s (members: %s) also holds %s, bound to %s: every device in the "
        "group must be bound to vfio-pci or to no driver before any of them can be passed "
        "through: for %s, %s",
        group, bdf, absl::StrJoin(members, " "), member, member_driver, member,
        BindHint(root_, member, true)));
  }
  return absl::OkStatus();
}

}  // namespace minivmm
