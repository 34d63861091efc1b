#include "passthrough/passthrough_command.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "passthrough/vfio_binding.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] =
    "usage: minivmm passthrough check | list | bind BDF [--force] | release BDF\n"
    "  check    is the IOMMU on and vfio-pci loaded?\n"
    "  list     PCI functions with their IOMMU group, driver and host use\n"
    "  bind     hand a function to vfio-pci (refused while the host uses it, unless --force)\n"
    "  release  give it back to its host driver (refused while a VM uses it)\n";

// "0x8086\n" -> "8086"
std::string SysfsHex(const fs::path& path) {
  std::ifstream in(path);
  std::string value;
  in >> value;
  return value.starts_with("0x") ? value.substr(2) : value;
}

int CountEntries(const fs::path& dir) {
  std::error_code ec;
  int count = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++count;
  return count;
}

int Check(const PassthroughCommandHost& host, std::FILE* out, std::FILE* err) {
  const std::string root = host.pci->sysfs_root();
  const int groups = CountEntries(root + "/kernel/iommu_groups");
  if (groups == 0) {
    std::fprintf(err,
                 "minivmm passthrough: the IOMMU is off (%s/kernel/iommu_groups is empty): "
                 "enable VT-d/AMD-Vi in firmware and boot the host with intel_iommu=on (Intel) "
                 "or amd_iommu=on (AMD)\n",
                 root.c_str());
    return 1;
  }
  std::fprintf(out, "IOMMU: on (%d groups)\n", groups);
  if (!fs::exists(root + "/bus/pci/drivers/vfio-pci")) {
    std::fprintf(err,
                 "minivmm passthrough: the vfio-pci driver is not loaded: modprobe vfio-pci\n");
    return 1;
  }
  std::fprintf(out, "vfio-pci: loaded\n");
  return 0;
}

int List(const PassthroughCommandHost& host, std::FILE* out) {
  const fs::path devices = host.pci->sysfs_root() + "/bus/pci/devices";
  std::vector<std::string> bdfs;
  std::error_code ec;
  for (fs::directory_iterator it(devices, ec), end; !ec && it != end; it.increment(ec)) {
    bdfs.push_back(it->path().filename().string());
  }
  std::sort(bdfs.begin(), bdfs.end());
  std::fprintf(out, "%-13s %-9s %-6s %-5s %-12s %s\n", "BDF", "ID", "CLASS", "GROUP", "DRIVER",
               "STATUS");
  for (const std::string& bdf : bdfs) {
    const fs::path device = devices / bdf;
    absl::StatusOr<int> group = host.pci->IommuGroupOf(bdf);
    absl::StatusOr<std::string> driver = host.pci->DriverOf(bdf);
    const std::string driver_name = driver.ok() && !driver->empty() ? *driver : "-";
    std::string status;
    if (!group.ok()) {
      status = "no IOMMU group";
    } else if (std::vector<std::string> uses = HostUsesOf(*host.pci, bdf); !uses.empty()) {
      status = "host uses it: " + absl::StrJoin(uses, ", ");
    } else if (driver_name == "vfio-pci") {
      status = host.pci->CheckAssignable(bdf).ok() ? "ready for a VM" : "group not viable";
    }
    std::fprintf(out, "%-13s %-9s %-6s %-5s %-12s %s\n", bdf.c_str(),
                 (SysfsHex(device / "vendor") + ":" + SysfsHex(device / "device")).c_str(),
                 SysfsHex(device / "class").c_str(),
                 group.ok() ? std::to_string(*group).c_str() : "-", driver_name.c_str(),
                 status.c_str());
  }
  return 0;
}

int Report(const absl::StatusOr<std::string>& result, std::FILE* out, std::FILE* err) {
  if (!result.ok()) {
    std::fprintf(err, "minivmm passthrough: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  std::fprintf(out, "%s\n", result->c_str());
  return 0;
}

}  // namespace

int RunPassthroughCommand(const std::vector<std::string>& args, bool force,
                          const PassthroughCommandHost& host, std::FILE* out, std::FILE* err) {
  const std::string command = args.empty() ? "" : args[0];
  if (args.size() == 1 && command == "check") return Check(host, out, err);
  if (args.size() == 1 && command == "list") return List(host, out);
  if (args.size() == 2 && command == "bind") {
    return Report(BindToVfioPci(*host.pci, *host.writer, args[1], BindOptions{.force = force}), out,
                  err);
  }
  if (args.size() == 2 && command == "release") {
    return Report(ReleaseFromVfioPci(*host.pci, *host.writer, host.proc_root, args[1]), out, err);
  }
  std::fputs(kUsage, err);
  return 1;
}

}  // namespace minivmm
