#include "vmm/mobility_blockers.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace minivmm {

std::vector<MobilityBlocker> FindMobilityBlockers(const VmConfig& config) {
  std::vector<MobilityBlocker> blockers;
  for (const PassthroughConfig& function : config.passthrough) {
    blockers.push_back(
        {absl::StrFormat("passthrough function %s", function.address),
         "a VM with a passed-through function cannot be snapshotted or migrated: its device "
         "state lives in the hardware (remove its [[passthrough]] entry to snapshot or migrate "
         "this VM)"});
  }
  return blockers;
}

absl::Status RefuseIfBlocked(std::string_view action,
                             const std::vector<MobilityBlocker>& blockers) {
  if (blockers.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "cannot %s: %s", action,
      absl::StrJoin(blockers, "; ", [](std::string* out, const MobilityBlocker& blocker) {
        absl::StrAppend(out, blocker.function, ": ", blocker.reason);
      })));
}

}  // namespace minivmm
