#include "passthrough/host_pci.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

// Drivers that leave a group viable besides vfio-pci itself: the kernel lets a group be owned
// by userspace when every bound driver sets driver_managed_dma (pci-stub, pcieport: Linux 5.19
// "vfio: Set DMA ownership for VFIO devices"); unbound devices do no DMA.
constexpr std::string_view kVfioPci = "vfio-pci";
constexpr std::string_view kViableDrivers[] = {"vfio-pci", "pci-stub", "pcieport"};

// Parses exactly `min`..`max` hex digits making up all of `text`.
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
