// The lifecycle of `minivmm --config vm.toml`: build the VM, run it until it stops, restart it
// on a guest reboot when configured, and map the outcome to an exit code.
#ifndef MINIVMM_VMM_RUN_VM_H_
#define MINIVMM_VMM_RUN_VM_H_

#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmm/config/config.h"
#include "vmm/migration_destination.h"
#include "vmm/snapshot_folder.h"

namespace minivmm {

struct RunOptions {
  absl::Time vmm_start;
  // Where to serve the API (empty: no API socket).
  std::filesystem::path api_socket;
  // seccomp filters on every thread (vmm/base/seccomp.h); off only for debugging.
  bool seccomp = true;
  // minivmm --restore: the first boot continues this snapshot instead of booting the kernel.
  const SnapshotFiles* restore = nullptr;
  // --paused: the restored guest stays paused until `minivmm ctl resume`.
  bool start_paused = false;
  // minivmm --incoming: the first boot receives the guest from this accepted migration.
  IncomingMigration* incoming = nullptr;
};

// Returns the process exit code (vmm/base/exit_codes.h), or an error for the caller to print.
absl::StatusOr<int> RunVm(const VmConfig& config, const RunOptions& options);

}  // namespace minivmm

#endif  // MINIVMM_VMM_RUN_VM_H_
