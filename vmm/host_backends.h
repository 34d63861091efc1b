// Host resources behind the guest's devices (disk images now; taps later), opened once, before
// any KVM object exists, so a missing or locked image is reported before anything is created.
// They outlive each Vm, so a guest reboot keeps its disks (and their locks).
#ifndef MINIVMM_VMM_HOST_BACKENDS_H_
#define MINIVMM_VMM_HOST_BACKENDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/virtio/block_backend.h"
#include "vmm/config.h"

namespace minivmm {

struct DiskBackend {
  std::shared_ptr<virtio::BlockBackend> backend;
  std::string serial;
};

struct HostBackends {
  std::vector<DiskBackend> disks;  // in [[disk]] order
};

absl::StatusOr<HostBackends> OpenHostBackends(const VmConfig& config);

}  // namespace minivmm

#endif  // MINIVMM_VMM_HOST_BACKENDS_H_
