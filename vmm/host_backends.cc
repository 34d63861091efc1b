#include "vmm/host_backends.h"

#include "devices/virtio/file_block_backend.h"
#include "vmm/errno_status.h"

namespace minivmm {

absl::StatusOr<HostBackends> OpenHostBackends(const VmConfig& config) {
  HostBackends backends;
  for (const DiskConfig& disk : config.disks) {
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<virtio::FileBlockBackend> file,
                             virtio::FileBlockBackend::Open(disk.path.string(), disk.read_only));
    backends.disks.push_back({std::move(file), disk.serial});
  }
  return backends;
}

}  // namespace minivmm
