// The sending side of live migration: pre-copy. All guest memory goes to the destination while
// the guest runs, then, round after round, the pages written meanwhile (KVM's dirty log ORed
// with the VMM's own writes), until what is left would take less than the downtime target to
// send at the bandwidth measured so far. Then the guest is paused, the rest of memory and the
// device state go across, and the destination starts the guest. Cloud Hypervisor's and QEMU's
// scheme.
#ifndef MINIVMM_VMM_MIGRATION_SOURCE_H_
#define MINIVMM_VMM_MIGRATION_SOURCE_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "vmm/config/config.h"
#include "vmm/host_backends.h"
#include "vmm/snapshot/migration_channel.h"
#include "vmm/vm.h"

namespace minivmm {

struct MigrationLimits {
  // The longest the guest may stand still while the last pages and the state cross (QEMU's and
  // Cloud Hypervisor's default).
  absl::Duration downtime_target = absl::Milliseconds(300);
  // The whole migration: a guest that dirties memory faster than the link carries it never
  // converges, and is left running here after this long.
  absl::Duration time_limit = absl::Seconds(300);
  // Connecting, and each send or receive.
  absl::Duration io_timeout = absl::Seconds(30);
};

// Sends `vm` to `destination`. On success the guest runs there and the caller ends this VM.
// On any failure (destination gone, refused, protocol or version mismatch, CPU features
// missing, no convergence in time) the destination is told to abandon, and `vm` runs (or stays
// paused) as before; the error says why.
absl::Status MigrateVm(Vm& vm, const VmConfig& config, const HostBackends& backends,
                       const MigrationAddress& destination, const MigrationLimits& limits);

}  // namespace minivmm

#endif  // MINIVMM_VMM_MIGRATION_SOURCE_H_
