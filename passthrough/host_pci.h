// Host-side checks before a PCI function is handed to VFIO: its address, its IOMMU group and
// the drivers bound to it and to the rest of its group, read from sysfs. Every failure is one
// message that names the device and the fix, because these are host setup mistakes, not bugs.
#ifndef MINIVMM_PASSTHROUGH_HOST_PCI_H_
#define MINIVMM_PASSTHROUGH_HOST_PCI_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/pci_address.h"

namespace minivmm {

// Reads the host's PCI/IOMMU state under a sysfs root ("/sys"; tests pass a fake tree). Every
// bdf argument may be in either form ParsePciAddress accepts.
class HostPci {
 public:
  explicit HostPci(std::string sysfs_root = "/sys");

  // The number of the IOMMU group holding bdf (the target of its iommu_group link).
  absl::StatusOr<int> IommuGroupOf(std::string_view bdf) const;
  // The name of the driver bound to bdf, or "" when none is.
  absl::StatusOr<std::string> DriverOf(std::string_view bdf) const;
  // The device names (BDFs for PCI) in IOMMU group `group`, sorted.
  absl::StatusOr<std::vector<std::string>> GroupMembers(int group) const;

  // OK when bdf exists, is bound to vfio-pci, and every other device of its IOMMU group is
  // bound to vfio-pci, pci-stub, pcieport or no driver, which is what the kernel requires for
  // the group to be viable (drivers that set driver_managed_dma; bridges under pcieport are
  // allowed since Linux 5.19). The kernel still has the last word (VFIO_GROUP_GET_STATUS);
  // this check exists to say what to fix.
  absl::Status CheckAssignable(std::string_view bdf) const;

  const std::string& sysfs_root() const { return root_; }
  // The sysfs folder of bdf (canonical form): ROOT/bus/pci/devices/BDF.
  std::string DevicePath(const std::string& bdf) const;

 private:
  absl::Status RequireDevice(const std::string& bdf) const;

  std::string root_;
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_HOST_PCI_H_
