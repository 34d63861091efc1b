#include "vmm/host_backends.h"

#include <sys/random.h>

#include "devices/virtio/backends/file_block_backend.h"
#include "devices/virtio/backends/tap.h"
#include "passthrough/memory_reservation.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

// A random MAC in QEMU's 52:54:00 range: bit 1 of the first octet marks it locally
// administered, bit 0 clear keeps it unicast (IEEE 802 §8.2). It stays the same across guest
// reboots of one run, so the guest keeps its address.
std::array<uint8_t, 6> GenerateMac() {
  std::array<uint8_t, 6> mac = {0x52, 0x54, 0x00, 0, 0, 0};
  if (::getrandom(mac.data() + 3, 3, 0) != 3) mac[5] = 1;
  return mac;
}

}  // namespace

absl::StatusOr<HostBackends> OpenHostBackends(const VmConfig& config) {
  HostBackends backends;
  if (!config.passthrough.empty()) {
    // The full-reservation rule: checked before anything else is opened or created.
    MINIVMM_RETURN_IF_ERROR(CheckMemlockLimit(config.memory_mib << 20));
    MINIVMM_ASSIGN_OR_RETURN(backends.vfio, VfioContainer::Open());
    for (const PassthroughConfig& function : config.passthrough) {
      // Opening checks the binding and the group; the Vm opens the function again per boot.
      MINIVMM_RETURN_IF_ERROR(backends.vfio->OpenDevice(function.address).status());
    }
  }
  for (const DiskConfig& disk : config.disks) {
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<virtio::FileBlockBackend> file,
                             virtio::FileBlockBackend::Open(disk.path.string(), disk.read_only));
    backends.disks.push_back({std::move(file), disk.serial});
  }
  for (const NetConfig& net : config.nets) {
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<virtio::Tap> tap, virtio::Tap::Open(net.tap));
    backends.nets.push_back({std::move(tap), net.mac.value_or(GenerateMac())});
  }
  return backends;
}

}  // namespace minivmm
