#include "passthrough/vfio_binding.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/pci_address.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

constexpr char kVfioPci[] = "vfio-pci";

std::string ReadLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// include/uapi/linux/if.h: IFF_UP in /sys/class/net/IF/flags (hex).
bool InterfaceIsUp(const fs::path& interface_dir) {
  const std::string flags = ReadLine(interface_dir / "flags");
  unsigned value = 0;
  const char* begin = flags.data();
  if (flags.starts_with("0x")) begin += 2;
  auto [end, ec] = std::from_chars(begin, flags.data() + flags.size(), value, 16);
  return ec == std::errc() && (value & 0x1) != 0;
}

}  // namespace

std::vector<std::string> HostUsesOf(const HostPci& host, const std::string& bdf) {
  const fs::path device = host.DevicePath(bdf);
  std::vector<std::string> uses;
  // Iterators advance with an error_code: sysfs and /proc entries may vanish while we read, and
  // that must not throw.
  std::error_code ec;
  for (fs::directory_iterator it(device / "net", ec), end; !ec && it != end; it.increment(ec)) {
    if (InterfaceIsUp(it->path())) {
      uses.push_back(absl::StrFormat("network interface %s is up", it->path().filename().string()));
    }
  }
  // Disks sit a few levels down (ata/host/target/.../block/sda, nvme/nvme0/nvme0n1): walk real
  // directories only; sysfs links (subsystem, driver) lead back up the tree.
  ec.clear();
  for (fs::recursive_directory_iterator it(device, ec), end; !ec && it != end; it.increment(ec)) {
    if (it.depth() >= 6) it.disable_recursion_pending();
    std::error_code entry_ec;
    if (it->is_symlink(entry_ec) || !it->is_directory(entry_ec)) continue;
    if (it->path().parent_path().filename() == "block") {
      uses.push_back(absl::StrFormat("disk %s", it->path().filename().string()));
    }
  }
  return uses;
}

std::vector<std::string> VfioGroupHolders(const std::string& proc_root, int group) {
  const std::string group_node = absl::StrFormat("/dev/vfio/%d", group);
  std::vector<std::string> holders;
  std::error_code ec;
  for (fs::directory_iterator process(proc_root, ec), end; !ec && process != end;
       process.increment(ec)) {
    const std::string pid = process->path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fd_ec;
    for (fs::directory_iterator fd(process->path() / "fd", fd_ec); !fd_ec && fd != end;
         fd.increment(fd_ec)) {
      std::error_code link_ec;
      if (fs::read_symlink(fd->path(), link_ec) == group_node) {
        holders.push_back(absl::StrFormat("pid %s (%s)", pid, ReadLine(process->path() / "comm")));
        break;
      }
    }
  }
  return holders;
}

absl::StatusOr<std::string> BindToVfioPci(const HostPci& host, SysfsWriter& writer,
                                          std::string_view bdf_text, const BindOptions& options) {
  MINIVMM_ASSIGN_OR_RETURN(const std::string bdf, CanonicalPciAddress(bdf_text));
  // Without an IOMMU group VFIO cannot take it: this says how to turn the IOMMU on.
  MINIVMM_ASSIGN_OR_RETURN(const int group, host.IommuGroupOf(bdf));
  MINIVMM_ASSIGN_OR_RETURN(const std::string driver, host.DriverOf(bdf));
  if (driver == kVfioPci) {
    return absl::StrFormat("%s is already bound to vfio-pci (IOMMU group %d)", bdf, group);
  }
  const std::vector<std::string> uses = HostUsesOf(host, bdf);
  if (!uses.empty() && !options.force) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "PCI device %s is in use by the host (%s): binding it to vfio-pci takes it away from "
        "the host. Stop using it first (e.g. ip link set IF down, umount), or pass --force",
        bdf, absl::StrJoin(uses, ", ")));
  }
  const std::string root = host.sysfs_root();
  if (!fs::exists(root + "/bus/pci/drivers/vfio-pci")) {
    return absl::FailedPreconditionError(
        "the vfio-pci driver is not loaded: run modprobe vfio-pci, then bind again");
  }
  const std::string device = host.DevicePath(bdf);
  MINIVMM_RETURN_IF_ERROR(writer.Write(device + "/driver_override", kVfioPci));
  absl::Status status = absl::OkStatus();
  if (!driver.empty()) status = writer.Write(device + "/driver/unbind", bdf);
  if (status.ok()) status = writer.Write(root + "/bus/pci/drivers_probe", bdf);
  absl::StatusOr<std::string> now = host.DriverOf(bdf);
  if (status.ok() && now.ok() && *now != kVfioPci) {
    status = absl::InternalError(
        absl::StrFormat("the kernel did not bind %s to vfio-pci (its driver is now %s): see dmesg",
                        bdf, now->empty() ? "none" : *now));
  }
  if (!status.ok()) {
    // Leave the function as it was: no override, and its host driver probed again.
    writer.Write(device + "/driver_override", "\n").IgnoreError();
    if (now.ok() && now->empty()) writer.Write(root + "/bus/pci/drivers_probe", bdf).IgnoreError();
    return status;
  }
  std::string done = absl::StrFormat("bound %s to vfio-pci (was: %s; IOMMU group %d)", bdf,
                                     driver.empty() ? "no driver" : driver, group);
  // The rest of its group must follow before a VM can use it; say so now, not at boot.
  if (absl::Status group_ok = host.CheckAssignable(bdf); !group_ok.ok()) {
    absl::StrAppend(&done, "\nnote: ", group_ok.message());
  }
  return done;
}

absl::StatusOr<std::string> ReleaseFromVfioPci(const HostPci& host, SysfsWriter& writer,
                                               const std::string& proc_root,
                                               std::string_view bdf_text) {
  MINIVMM_ASSIGN_OR_RETURN(const std::string bdf, CanonicalPciAddress(bdf_text));
  MINIVMM_ASSIGN_OR_RETURN(const std::string driver, host.DriverOf(bdf));
  if (driver != kVfioPci) {
    return absl::FailedPreconditionError(
        absl::StrFormat("PCI device %s is not bound to vfio-pci (driver: %s): nothing to release",
                        bdf, driver.empty() ? "none" : driver));
  }
  MINIVMM_ASSIGN_OR_RETURN(const int group, host.IommuGroupOf(bdf));
  // vfio-pci's unbind waits until the device is closed: with a VM running it would hang.
  const std::vector<std::string> holders = VfioGroupHolders(proc_root, group);
  if (!holders.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s cannot be released while a VM uses it: IOMMU group %d is open in %s: power that VM "
        "off first",
        bdf, group, absl::StrJoin(holders, ", ")));
  }
  const std::string device = host.DevicePath(bdf);
  const std::string root = host.sysfs_root();
  // An empty override lets the kernel match drivers by ID again.
  MINIVMM_RETURN_IF_ERROR(writer.Write(device + "/driver_override", "\n"));
  MINIVMM_RETURN_IF_ERROR(writer.Write(device + "/driver/unbind", bdf));
  MINIVMM_RETURN_IF_ERROR(writer.Write(root + "/bus/pci/drivers_probe", bdf));
  MINIVMM_ASSIGN_OR_RETURN(const std::string now, host.DriverOf(bdf));
  if (now.empty()) return absl::StrFormat("released %s: no host driver claimed it", bdf);
  return absl::StrFormat("released %s: the host's %s driver has it again", bdf, now);
}

}  // namespace minivmm
