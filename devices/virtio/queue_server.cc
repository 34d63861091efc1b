#include "devices/virtio/queue_server.h"

#include <unistd.h>

#include <algorithm>

#include "vmm/base/log.h"

namespace minivmm::virtio {

Round ServeQueue(SplitVirtqueue& queue, GuestMemory& memory, const ActiveQueue& active,
                 std::string_view device, int max_chains, const ChainHandler& handle) {
  auto fail = [&](const absl::Status& status) {
    MINIVMM_LOG_GUEST_ERROR("%s: queue %d: %s", std::string(device), active.index,
                            status.ToString());
    return Round::kBroken;
  };
  bool used = false;
  Round round = Round::kMore;  // what the round ends with if the budget runs out
  bool rearmed = false;
  // Each pass takes a chain or arms notifications; arming twice in a row ends the round, so
  // the loop ends after at most 2 * max_chains + 2 passes.
  for (int served = 0; served < std::max(max_chains, 1);) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.PopAvailable(memory);
    if (!chain.ok()) {
      round = fail(chain.status());
      break;
    }
    if (!chain->has_value()) {
      if (rearmed) {
        round = Round::kDone;
        break;
      }
      // Ask for a kick on the next buffer (with EVENT_IDX this publishes avail_event, without
      // which the driver stops notifying, §2.7.10), then look once more: a buffer added
      // before the request became visible would otherwise wait for a kick that never comes.
      if (absl::Status armed = queue.EnableNotifications(memory, true); !armed.ok()) {
        round = fail(armed);
        break;
      }
      rearmed = true;
      continue;
    }
    rearmed = false;
    ++served;
    const std::optional<uint32_t> written = handle(**chain);
    if (!written) {
      round = Round::kBroken;
      break;
    }
    if (absl::Status pushed = queue.PushUsed(memory, (*chain)->head, *written); !pushed.ok()) {
      round = fail(pushed);
      break;
    }
    used = true;
  }
  if (used) {
    // A used ring the driver made unreadable still gets an interrupt: better a spurious one
    // than a driver waiting forever.
    absl::StatusOr<bool> wanted = queue.ShouldInterrupt(memory);
    if (!wanted.ok() || *wanted) active.signal_used();
  }
  return round;
}

}  // namespace minivmm::virtio
