// The loop every virtio device runs when its queue is kicked: take each available chain, let
// the device handle it, return it on the used ring, and interrupt the driver once if it asked.
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

// Serves every available chain of `queue`. Returns false when the queue is broken (the driver
// broke the protocol, or a handler gave up): the caller reports it and stops serving.
bool ServeQueue(SplitVirtqueue& queue, GuestMemory& memory, const ActiveQueue& active,
                std::string_view device, const ChainHandler& handle);

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_QUEUE_SERVER_H_
