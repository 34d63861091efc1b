// The loop every virtio device runs when its queue is kicked: take available chains, let the
// device handle each, return them on the used ring, and interrupt the driver once if it asked.
// A round is bounded: a driver that keeps its ring full from another vCPU (kicks are eventfds,
// so it needs no exits) must not keep the worker, and the device lock, for good.
#ifndef MINIVMM_DEVICES_VIRTIO_QUEUE_SERVER_H_
#define MINIVMM_DEVICES_VIRTIO_QUEUE_SERVER_H_

#include <cstdint>
#include <functional>
#include <optional>

#include "devices/virtio/descriptor_chain.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/virtqueue.h"

namespace minivmm::virtio {

// Handles one chain; returns the number of bytes written into it (the used element's len), or
// nullopt when the chain cannot be completed and the device must stop (needs reset).
using ChainHandler = std::function<std::optional<uint32_t>(const DescriptorChain&)>;

// How a round of serving a queue ended.
enum class Round {
  kDone,    // the ring is empty and the driver will kick for its next buffer
  kMore,    // the round's budget ran out with chains still available: schedule another round
  kBroken,  // the driver broke the protocol, or a handler gave up: stop serving until reset
};

// Serves up to `max_chains` available chains of `queue` (a device passes its queue size, the
// most a driver can have outstanding: vhost's weight is the same). On kMore the caller must
// come back (DeviceWorker: signal the queue's kick fd again) after letting other work run.
Round ServeQueue(SplitVirtqueue& queue, GuestMemory& memory, const ActiveQueue& active,
                 std::string_view device, int max_chains, const ChainHandler& handle);

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_QUEUE_SERVER_H_
