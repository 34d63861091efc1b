#include "devices/virtio/backends/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm::virtio {
namespace {

constexpr char kTunDevice[] = "/dev/net/tun";

}  // namespace

absl::Status TapOpenError(std::string_view name, std::string_view step, int err) {
  switch (err) {
    case EPERM:
      return absl::PermissionDeniedError(absl::StrFormat(
          "%s: creating or attaching tap '%s' needs CAP_NET_ADMIN (run as root) or a tap created "
          "for this user: ip tuntap add %s mode tap user $USER",
          step, name, name));
    case EACCES:
      return absl::PermissionDeniedError(absl::StrFormat(
          "%s for tap '%s': %s: run as root, or make %s accessible (it is normally mode 0666)",
          step, name, strerror(err), kTunDevice));
    case EBUSY:
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: tap '%s' is in use by another process (another VM?); stop that process or give "
          "this VM another tap",
          step, name));
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s for tap '%s': %s: the tun/tap driver is missing; load it with `modprobe tun`", step,
          name, strerror(err)));
    case EINVAL:
      // tun_set_iff: an invalid interface name, or an existing interface that is not a
      // single-queue tap (a tun, a multi-queue tap, or no tuntap device at all).
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: cannot use '%s' as a tap: %s (not a valid interface name, or an interface of "
          "that name exists and is not a single-queue tap); pick another name",
          step, name, strerror(err)));
    default:
      return ErrnoError(absl::StrFormat("%s (tap '%s')", step, name), err);
  }
}

absl::StatusOr<std::unique_ptr<Tap>> Tap::Open(std::string name) {
  if (name.empty()) return absl::InvalidArgumentError("tap name is empty");
  // ifr_name holds IFNAMSIZ bytes including the terminating NUL.
  if (name.size() > IFNAMSIZ - 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tap name '%s' is %d characters long; interface names have at most %d",
                        name, name.size(), IFNAMSIZ - 1));
  }
  UniqueFd fd(::open(kTunDevice, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return TapOpenError(name, absl::StrFormat("opening %s", kTunDevice), errno);

  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), name.size());
  // IFF_NO_PI: frames without the 4-byte packet information prefix; IFF_VNET_HDR: with the
  // virtio-net header instead (Documentation/networking/tuntap.rst).
  request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) return TapOpenError(name, "TUNSETIFF", errno);
  // The kernel filled in the real name ("%d" expanded).
  std::string real_name(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));

  // virtio 1.2 §5.1.6: with VERSION_1 the header is struct virtio_net_hdr_v1, 12 bytes; the
  // tap's default (10) is the legacy header without num_buffers.
  int header_size = kVirtioNetHeaderSize;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &header_size) != 0) {
    return ErrnoError(absl::StrFormat("TUNSETVNETHDRSZ(tap '%s', %d)", real_name, header_size));
  }
  std::unique_ptr<Tap> tap(new Tap(std::move(fd), std::move(real_name)));
  MINIVMM_RETURN_IF_ERROR(tap->SetOffloads(0));
  return tap;
}

absl::Status Tap::SetOffloads(unsigned tun_flags) {
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(tun_flags)) != 0) {
    return ErrnoError(absl::StrFormat("TUNSETOFFLOAD(tap '%s', %#x)", name_, tun_flags));
  }
  return absl::OkStatus();
}

}  // namespace minivmm::virtio
