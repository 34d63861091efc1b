// What the API socket can do to the VM minivmm runs. run_vm.cc implements it over the current
// boot's Vm; tests use a fake.
#ifndef MINIVMM_VMM_API_VM_CONTROL_H_
#define MINIVMM_VMM_API_VM_CONTROL_H_

#include <string>

#include "absl/status/status.h"
#include "vmm/api/api.pb.h"

namespace minivmm {

class VmControl {
 public:
  virtual ~VmControl() = default;

  virtual api::VmInfo Info() = 0;
  // FailedPrecondition when the VM is already in the state asked for.
  virtual absl::Status Pause() = 0;
  virtual absl::Status Resume() = 0;
  // Resets the guest: minivmm boots it again, whatever [vm] on_reboot says.
  virtual absl::Status Reboot() = 0;
  // Stops the guest at once (like pulling its power) and ends minivmm with exit code 0.
  virtual absl::Status Shutdown() = 0;
  // Writes a snapshot of the running or paused VM into `destination` (see README, "Snapshot
  // and restore") and leaves the VM as it found it. FailedPrecondition, naming the blocker,
  // when Info() lists any; InvalidArgument for a destination that cannot be used.
  virtual absl::Status Snapshot(const std::string& destination) = 0;
  // Live migration to a minivmm waiting with --incoming. Returns once the guest runs there
  // (this minivmm then exits 0); any failure leaves the guest running here and says why.
  // FailedPrecondition, naming the blocker, when Info() lists any.
  virtual absl::Status Migrate(const api::MigrateRequest& request) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_VM_CONTROL_H_
