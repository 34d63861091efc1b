// virtio-net's control queue commands (virtio 1.2 §5.1.6.5): a chain carries a class and a
// command byte, the command's data, and one device-writable ack byte. minivmm offers only what
// VIRTIO_NET_F_GUEST_ANNOUNCE needs: the driver's acknowledgement of an announcement
// (§5.1.6.5.4), which clears VIRTIO_NET_S_ANNOUNCE. Everything else is answered
// VIRTIO_NET_ERR, as the spec asks for commands the device does not support.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_NET_CONTROL_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_NET_CONTROL_H_

#include <cstdint>
#include <optional>

#include "devices/virtio/descriptor_chain.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {

enum class NetControlCommand {
  kAnnounceAck,  // VIRTIO_NET_CTRL_ANNOUNCE / VIRTIO_NET_CTRL_ANNOUNCE_ACK
  kUnsupported,  // anything else, answered VIRTIO_NET_ERR
};

// Reads the command of `chain` and writes its ack byte: VIRTIO_NET_OK for an announce ack,
// VIRTIO_NET_ERR for anything else. Returns the command, and the bytes written (1), or nullopt
// for a chain without a header or without room for the ack (the driver broke the protocol).
struct NetControlResult {
  NetControlCommand command;
  uint32_t written;
};
std::optional<NetControlResult> HandleNetControl(GuestMemory& memory,
                                                 const DescriptorChain& chain);

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_NET_CONTROL_H_
