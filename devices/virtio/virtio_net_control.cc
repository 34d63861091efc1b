#include "devices/virtio/virtio_net_control.h"

namespace minivmm::virtio {
namespace {

// <linux/virtio_net.h> cannot be included from C++ (struct virtio_net_ctrl_hdr has a member
// named `class`); its values, from virtio 1.2 §5.1.6.5:
constexpr uint8_t kCtrlAnnounce = 3;     // VIRTIO_NET_CTRL_ANNOUNCE
constexpr uint8_t kCtrlAnnounceAck = 0;  // VIRTIO_NET_CTRL_ANNOUNCE_ACK
constexpr uint8_t kAckOk = 0;            // VIRTIO_NET_OK
constexpr uint8_t kAckError = 1;         // VIRTIO_NET_ERR

struct ControlHeader {  // struct virtio_net_ctrl_hdr
  uint8_t command_class;
  uint8_t command;
};

}  // namespace

std::optional<NetControlResult> HandleNetControl(GuestMemory& memory,
                                                 const DescriptorChain& chain) {
  ControlHeader header{};
  ChainReader reader(memory, chain);
  if (!reader.ReadObject(&header).ok() || chain.writable_bytes < 1) return std::nullopt;
  const bool announce_ack =
      header.command_class == kCtrlAnnounce && header.command == kCtrlAnnounceAck;
  // The ack is the only device-writable byte of a command the device knows (§5.1.6.5).
  ChainWriter writer(memory, chain);
  const uint8_t ack = announce_ack ? kAckOk : kAckError;
  if (!writer.WriteObject(ack).ok()) return std::nullopt;
  return NetControlResult{
      announce_ack ? NetControlCommand::kAnnounceAck : NetControlCommand::kUnsupported, 1};
}

}  // namespace minivmm::virtio
