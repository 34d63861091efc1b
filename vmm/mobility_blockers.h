// The one list of what keeps a VM from moving (snapshot, migration): QEMU's migration
// blockers, VMware DirectPath I/O's rule. Both actions check it before they touch anything,
// and `info` shows it.
#ifndef MINIVMM_VMM_MOBILITY_BLOCKERS_H_
#define MINIVMM_VMM_MOBILITY_BLOCKERS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "vmm/config/config.h"

namespace minivmm {

struct MobilityBlocker {
  std::string function;  // what blocks: "passthrough function 0000:01:00.0"
  std::string reason;    // the rule, with what the user can do about it
};

// Each passed-through function is one: its device state lives in the hardware, where minivmm
// can neither read it nor put it back.
std::vector<MobilityBlocker> FindMobilityBlockers(const VmConfig& config);

// OK without blockers; otherwise FailedPrecondition naming every blocker and the rule, for
// `action` ("snapshot", "migrate").
absl::Status RefuseIfBlocked(std::string_view action, const std::vector<MobilityBlocker>& blockers);

}  // namespace minivmm

#endif  // MINIVMM_VMM_MOBILITY_BLOCKERS_H_
