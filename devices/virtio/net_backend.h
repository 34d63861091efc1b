// The host side of a virtio-net device: a packet-oriented fd that carries Ethernet frames, each
// prefixed by the virtio-net header (virtio 1.2 §5.1.6). A Linux tap with IFF_VNET_HDR and
// TUNSETVNETHDRSZ 12 is one (devices/virtio/backends/tap.h); tests use a SOCK_SEQPACKET socketpair.
#ifndef MINIVMM_DEVICES_VIRTIO_NET_BACKEND_H_
#define MINIVMM_DEVICES_VIRTIO_NET_BACKEND_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace minivmm::virtio {

// struct virtio_net_hdr_v1 (virtio 1.2 §5.1.6): 12 bytes, little-endian fields. With
// VIRTIO_F_VERSION_1 the header always has num_buffers, whether or not MRG_RXBUF is negotiated
// (only the legacy interface drops it, §5.1.6.1). <linux/virtio_net.h> has the struct, but the
// header does not compile as C++ (a member named `class`), so the layout is restated here.
struct VirtioNetHeader {
  uint8_t flags;  // kVirtioNetHeaderNeedsCsum, kVirtioNetHeaderDataValid
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHeader) == 12);
// The fields are little-endian (§5.1.6: le16) and so is every host this VMM runs on (x86-64);
// the tap's default header endianness is the host's (TUNSETVNETLE is not needed).
static_assert(std::endian::native == std::endian::little);

// Header flags (§5.1.6): VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID.
inline constexpr uint8_t kVirtioNetHeaderNeedsCsum = 1;
inline constexpr uint8_t kVirtioNetHeaderDataValid = 2;

inline constexpr size_t kVirtioNetHeaderSize = sizeof(VirtioNetHeader);
inline constexpr size_t kVirtioNetHeaderFlagsOffset = offsetof(VirtioNetHeader, flags);
inline constexpr size_t kVirtioNetHeaderNumBuffersOffset = offsetof(VirtioNetHeader, num_buffers);

class NetBackend {
 public:
  virtual ~NetBackend() = default;

  // Nonblocking and packet-oriented: one read() returns one frame (header included), one
  // write() sends one frame. A read into buffers too small for the frame returns what fit and
  // discards the rest (a tap reports no more than the buffer's size either: tun_chr_read_iter).
  // Owned by the backend.
  virtual int fd() const = 0;
  // The offloads frames read from fd() may carry (TUNSETOFFLOAD: TUN_F_CSUM, TUN_F_TSO4, ...):
  // what the guest can receive. Zero means every frame arrives complete and checksummed.
  virtual absl::Status SetOffloads(unsigned tun_flags) = 0;
  // For messages: the tap's interface name, say.
  virtual std::string_view name() const = 0;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_NET_BACKEND_H_
