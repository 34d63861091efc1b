// A Linux tap interface as a virtio-net backend (Documentation/networking/tuntap.rst): frames
// the host sends to the interface are read from the fd, frames written to the fd appear on the
// interface as if received. The fd carries the 12-byte virtio-net header on every frame
// (IFF_VNET_HDR, TUNSETVNETHDRSZ), so checksum and segmentation offloads pass through as is.
#ifndef MINIVMM_DEVICES_VIRTIO_BACKENDS_TAP_H_
#define MINIVMM_DEVICES_VIRTIO_BACKENDS_TAP_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/virtio/net_backend.h"
#include "vmm/base/unique_fd.h"

namespace minivmm::virtio {

class Tap : public NetBackend {
 public:
  // Attaches to the tap interface `name` if it exists (a persistent tap, `ip tuntap add`), or
  // creates it. A created tap is not persistent: it disappears when the fd is closed, so an
  // exiting VMM leaves no host state behind. Either way the interface starts down and
  // unconfigured unless someone set it up; the VMM does not touch host networking. A name with
  // "%d" lets the kernel pick the number (name() then returns the real one). Offloads start
  // off (SetOffloads(0)), whatever a previous user of a persistent tap left.
  static absl::StatusOr<std::unique_ptr<Tap>> Open(std::string name);

  int fd() const override { return fd_.get(); }
  absl::Status SetOffloads(unsigned tun_flags) override;
  std::string_view name() const override { return name_; }

 private:
  Tap(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

  UniqueFd fd_;
  std::string name_;
};

// The error Tap::Open returns when `step` ("opening /dev/net/tun", "TUNSETIFF", ...) fails with
// errno `err` for tap `name`: names the tap and, for the failures a user can fix (no
// permission, tap in use, no tun driver), says how. Public for tests.
absl::Status TapOpenError(std::string_view name, std::string_view step, int err);

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_BACKENDS_TAP_H_
