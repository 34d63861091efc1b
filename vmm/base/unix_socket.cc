#include "vmm/base/unix_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

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

absl::Status RemoveStaleUnixSocket(const std::filesystem::path& path, const sockaddr_un& address,
                                   std::string_view what) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(absl::StrFormat("lstat(%s)", path.string()));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "%s: %s exists and is not a socket: remove it or choose another path", what,
        path.string()));
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe.valid()) return ErrnoError("socket(AF_UNIX)");
  // EAGAIN: a listener with a full backlog, alive all the same.
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 ||
      errno == EAGAIN) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "%s is in use by another process (another minivmm?): stop it or choose another path",
        what));
  }
  if (errno != ECONNREFUSED) {
    return ErrnoError(absl::StrFormat("probing %s", what));
  }
  if (::unlink(path.c_str()) != 0) {
    return ErrnoError(absl::StrFormat("unlink(stale %s)", what));
  }
  Log(LogLevel::kInfo, "replaced stale %s", what);
  return absl::OkStatus();
}

// poll() takes milliseconds: rounded up, so a wait never ends before its deadline; -1 is forever.
namespace {

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), INT_MAX));
}

}  // namespace

// Waits until `fd` is ready for `events` (or has an error or hang-up, which the next call on it
// reports); false when the deadline passes first.
absl::StatusOr<bool> WaitSocketReady(int fd, short events, absl::Time deadline) {
  for (;;) {
    pollfd entry{.fd = fd, .events = events, .revents = 0};
    const int n = ::poll(&entry, 1, PollTimeoutMs(deadline));
    if (n > 0) return true;
    if (n == 0 && absl::Now() >= deadline) return false;
    if (n < 0 && errno != EINTR) return ErrnoError("poll(socket)");
  }
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
