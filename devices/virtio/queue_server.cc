#include "devices/virtio/queue_server.h"

#include <unistd.h>

#include "vmm/base/log.h"

namespace minivmm::virtio {

bool ServeQueue(SplitVirtqueue& queue, GuestMemory& memory, const ActiveQueue& active,
                std::string_view device, const ChainHandler& handle) {
  auto fail = [&](const absl::Status& status) {
    MINIVMM_LOG_GUEST_ERROR("%s: queue %d: %s", std::string(device), active.index,
                            status.ToString());
    return false;
  };
  bool used = false;
  bool healthy = true;
  bool rearmed = false;
  while (healthy) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.PopAvailable(memory);
    if (!chain.ok()) {
      healthy = fail(chain.status());
      break;
    }
    if (!chain->has_value()) {
      if (rearmed) break;
      // Ask for a kick on the next buffer (with EVENT_IDX this publishes avail_event, without
      // which the driver stops notifying, §2.7.10), then look once more: a buffer added
      // before the request became visible would otherwise wait for a kick that never comes.
      if (absl::Status armed = queue.EnableNotifications(memory, true); !armed.ok()) {
        healthy = fail(armed);
        break;
      }
      rearmed = true;
      continue;
    }
    rearmed = false;
    const std::optional<uint32_t> written = handle(**chain);
    if (!written) {
      healthy = false;
      break;
    }
    if (absl::Status pushed = queue.PushUsed(memory, (*chain)->head, *written); !pushed.ok()) {
      healthy = fail(pushed);
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
  return healthy;
}

}  // namespace minivmm::virtio
