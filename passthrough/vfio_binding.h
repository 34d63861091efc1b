// `minivmm passthrough bind|release`: hands a host PCI function to vfio-pci and gives it back
// to its host driver, through the kernel's driver_override mechanism
// (Documentation/ABI/testing/sysfs-bus-pci, "driver_override"). Refuses what would hurt the
// host or hang: a function the host is using (a network interface that is up, a disk), and
// releasing a function a running VM still holds (the kernel's unbind waits for the VM).
#ifndef MINIVMM_PASSTHROUGH_VFIO_BINDING_H_
#define MINIVMM_PASSTHROUGH_VFIO_BINDING_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "passthrough/host_pci.h"
#include "passthrough/sysfs_writer.h"

namespace minivmm {

// How the host uses bdf, one phrase each ("network interface eth1 is up", "disk sda"); empty
// when nothing shows. Read from the function's sysfs folder.
std::vector<std::string> HostUsesOf(const HostPci& host, const std::string& bdf);

// The processes holding /dev/vfio/<group> open, as "pid 123 (minivmm)", read from proc_root.
std::vector<std::string> VfioGroupHolders(const std::string& proc_root, int group);

struct BindOptions {
  bool force = false;  // bind even though the host uses the function
};

// Binds bdf to vfio-pci. Returns what was done, for the user ("bound 0000:00:03.0 ...").
absl::StatusOr<std::string> BindToVfioPci(const HostPci& host, SysfsWriter& writer,
                                          std::string_view bdf, const BindOptions& options);

// Unbinds bdf from vfio-pci and lets the kernel probe its host driver again.
absl::StatusOr<std::string> ReleaseFromVfioPci(const HostPci& host, SysfsWriter& writer,
                                               const std::string& proc_root, std::string_view bdf);

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_BINDING_H_
