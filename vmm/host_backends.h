// Host resources behind the guest's devices (disk images now; taps later), opened once, before
// any KVM object exists, so a missing or locked image is reported before anything is created.
// They outlive each Vm, so a guest reboot keeps its disks (and their locks).
#ifndef MINIVMM_VMM_HOST_BACKENDS_H_
#define MINIVMM_VMM_HOST_BACKENDS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/virtio/block_backend.h"
#include "devices/virtio/net_backend.h"
#include "passthrough/vfio_container.h"
#include "vmm/config/config.h"

namespace minivmm {

struct DiskBackend {
  std::shared_ptr<virtio::BlockBackend> backend;
  std::string serial;
};

struct NetBackendAndMac {
  std::shared_ptr<virtio::NetBackend> backend;
  std::array<uint8_t, 6> mac;  // from the config, or generated once per minivmm run
};

struct HostBackends {
  std::vector<DiskBackend> disks;      // in [[disk]] order
  std::vector<NetBackendAndMac> nets;  // in [[net]] order
  // The VFIO container holding the IOMMU groups of every [[passthrough]] function; null
  // without passthrough. Each boot opens the functions from it again (and resets them).
  std::unique_ptr<VfioContainer> vfio;
};

// With passthrough, first checks that all guest memory may be pinned (RLIMIT_MEMLOCK), then
// that every function is bound to vfio-pci and its IOMMU group is usable.
absl::StatusOr<HostBackends> OpenHostBackends(const VmConfig& config);

}  // namespace minivmm

#endif  // MINIVMM_VMM_HOST_BACKENDS_H_
