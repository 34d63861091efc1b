#include "vmm/api/unix_socket.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {

absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string name = path.string();
  if (name.empty() || name.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("socket path '%s' must be 1 to %d bytes long (a unix socket limit): "
                        "choose a shorter path",
                        name, sizeof(address.sun_path) - 1));
  }
  std::memcpy(address.sun_path, name.data(), name.size());
  return address;
}

absl::StatusOr<UniqueFd> ConnectUnixSocket(const sockaddr_un& address) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket(AF_UNIX)");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return ErrnoError(absl::StrFormat("connect(%s)", address.sun_path));
  }
  return fd;
}

size_t DiscardPendingInput(int fd, size_t limit) {
  char discard[4096];
  size_t dropped = 0;
  while (dropped < limit) {
    const ssize_t n = ::read(fd, discard, std::min(sizeof(discard), limit - dropped));
    if (n <= 0) break;  // EAGAIN (nothing more yet), EOF or an error: done either way
    dropped += static_cast<size_t>(n);
  }
  return dropped;
}

}  // namespace minivmm
