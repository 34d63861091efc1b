// Unix stream sockets named by a filesystem path: the API server's and `minivmm ctl`'s.
#ifndef MINIVMM_VMM_API_UNIX_SOCKET_H_
#define MINIVMM_VMM_API_UNIX_SOCKET_H_

#include <sys/un.h>

#include <filesystem>

#include "absl/status/statusor.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

// The address of path, or an error naming it when it does not fit (sun_path holds 107 bytes).
absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::filesystem::path& path);

// A blocking AF_UNIX stream socket connected to address; on failure, the connect(2) error with
// its errno code (ENOENT, ECONNREFUSED, ...) preserved.
absl::StatusOr<UniqueFd> ConnectUnixSocket(const sockaddr_un& address);

// Reads and drops what a peer has sent on the non-blocking fd, at most `limit` bytes, so that
// closing it answers the peer cleanly (a unix socket closed with unread bytes makes the peer's
// next read fail with ECONNRESET). Bounded: a peer that keeps writing cannot keep the caller
// here. Returns the number of bytes dropped.
size_t DiscardPendingInput(int fd, size_t limit);

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_UNIX_SOCKET_H_
