// Unix stream sockets named by a filesystem path: the API server's, `minivmm ctl`'s and the
// migration channel's.
#ifndef MINIVMM_VMM_BASE_UNIX_SOCKET_H_
#define MINIVMM_VMM_BASE_UNIX_SOCKET_H_

#include <sys/un.h>

#include <filesystem>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

// The address of path, or an error naming it when it does not fit (sun_path holds 107 bytes).
absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::filesystem::path& path);

// Before binding a listener at `path`: a socket file left by a process that died is removed;
// one another process listens on, or a file that is not a socket, is not ours and stays
// (AlreadyExists). `what` names the socket in messages ("API socket /run/vm.sock").
absl::Status RemoveStaleUnixSocket(const std::filesystem::path& path, const sockaddr_un& address,
                                   std::string_view what);

// A blocking AF_UNIX stream socket connected to address; on failure, the connect(2) error with
// its errno code (ENOENT, ECONNREFUSED, ...) preserved.
absl::StatusOr<UniqueFd> ConnectUnixSocket(const sockaddr_un& address);

// Waits until `fd` is ready for `events` (poll(2) bits), or has an error or hang-up, which the
// next call on it reports; false when `deadline` passes first (absl::InfiniteFuture(): never).
absl::StatusOr<bool> WaitSocketReady(int fd, short events, absl::Time deadline);

// Reads and drops what a peer has sent on the non-blocking fd, at most `limit` bytes, so that
// closing it answers the peer cleanly (a unix socket closed with unread bytes makes the peer's
// next read fail with ECONNRESET). Bounded: a peer that keeps writing cannot keep the caller
// here. Returns the number of bytes dropped.
size_t DiscardPendingInput(int fd, size_t limit);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_UNIX_SOCKET_H_
