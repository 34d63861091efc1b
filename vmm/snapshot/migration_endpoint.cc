// The ends of a migration stream: addresses, the source's connect, the destination's listener.
// (The framing of what goes over it is migration_channel.cc.)
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unix_socket.h"
#include "vmm/snapshot/migration_channel.h"

namespace minivmm {
namespace {

constexpr char kAddressForms[] =
    "use unix:PATH or tcp:HOST:PORT (for example unix:/run/minivmm-migrate.sock or "
    "tcp:192.0.2.10:7000)";

// The error of a connect to `address` that failed with `err`, with the fix when nothing listens.
absl::Status ConnectError(const MigrationAddress& address, int err) {
  const absl::Status status =
      ErrnoError(absl::StrFormat("connecting to the migration destination %s", address.text), err);
  if (err != ECONNREFUSED && err != ENOENT) return status;
  return absl::Status(status.code(),
                      absl::StrFormat("%s: nothing listens there; start the destination with "
                                      "`minivmm --incoming %s` first",
                                      status.message(), address.text));
}

// A non-blocking connect bounded by `deadline`.
absl::StatusOr<UniqueFd> ConnectSocket(const MigrationAddress& address, int family,
                                       const sockaddr* sa, socklen_t sa_len, absl::Time deadline) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoError("socket(migration)");
  for (;;) {
    if (::connect(fd.get(), sa, sa_len) == 0) return fd;
    // A unix socket whose backlog is full answers EAGAIN at once: try again until the deadline.
    if (errno == EAGAIN && family == AF_UNIX && absl::Now() < deadline) {
      ::usleep(10'000);
      continue;
    }
    // EINTR: the connect goes on in the background, as for EINPROGRESS (connect(2)).
    if (errno != EINPROGRESS && errno != EINTR) {
      if (errno == EAGAIN) break;
      return ConnectError(address, errno);
    }
    MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitSocketReady(fd.get(), POLLOUT, deadline));
    if (!ready) break;
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      return ErrnoError("getsockopt(SO_ERROR)");
    }
    if (err != 0) return ConnectError(address, err);
    return fd;
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "connecting to the migration destination %s: no answer in time; is it started with "
      "`minivmm --incoming %s` and reachable?",
      address.text, address.text));
}

using AddrInfoList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

absl::StatusOr<AddrInfoList> ResolveTcp(const MigrationAddress& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(address.port);
  const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    const std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return absl::NotFoundError(absl::StrFormat("migration address %s: cannot resolve host '%s': %s",
                                               address.text, address.host, why));
  }
  return AddrInfoList(found, &::freeaddrinfo);
}

// Small control messages (kAccept, kComplete, kStarted) must not wait for Nagle's algorithm to
// meet the peer's delayed ACK (tens of milliseconds of downtime each).
absl::Status SetNoDelayIfTcp(int fd) {
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return ErrnoError("getsockopt(SO_DOMAIN)");
  }
  if (domain != AF_INET && domain != AF_INET6) return absl::OkStatus();
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    return ErrnoError("setsockopt(TCP_NODELAY)");
  }
  return absl::OkStatus();
}

// True when the accepted peer has already closed without sending a byte.
bool PeerLeftWithoutSending(int fd) {
  uint8_t byte;
  ssize_t n;
  do {
    n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n == 0;
}

absl::Status BadAddress(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("migration address '%s' %s: %s", text, why, kAddressForms));
}

absl::StatusOr<uint16_t> ParsePort(std::string_view text, std::string_view port) {
  uint32_t value = 0;
  bool ok = !port.empty() && port.size() <= 5;
  for (char c : port) {
    if (c < '0' || c > '9') ok = false;
    if (ok) value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!ok || value < 1 || value > 65535) {
    return BadAddress(text, absl::StrFormat("has port '%s', not a number from 1 to 65535", port));
  }
  return static_cast<uint16_t>(value);
}

void RemoveSocketFile(std::string& path) {
  if (!path.empty()) ::unlink(path.c_str());
  path.clear();
}

}  // namespace

absl::StatusOr<MigrationAddress> ParseMigrationAddress(std::string_view text) {
  MigrationAddress address;
  address.text = std::string(text);
  if (text.starts_with("unix:")) {
    address.kind = MigrationAddress::Kind::kUnix;
    address.path = std::string(text.substr(5));
    if (address.path.empty()) return BadAddress(text, "has no path");
    if (address.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return BadAddress(text,
                        absl::StrFormat("has a %d-byte path, over the %d bytes a unix "
                                        "socket path may have",
                                        address.path.size(), sizeof(sockaddr_un::sun_path) - 1));
    }
    return address;
  }
  if (text.starts_with("tcp:")) {
    address.kind = MigrationAddress::Kind::kTcp;
    const std::string_view rest = text.substr(4);
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return BadAddress(text, "has no port");
    const std::string_view host = rest.substr(0, colon);
    if (host.empty()) return BadAddress(text, "has no host");
    if (host.find(':') != std::string_view::npos) {
      return BadAddress(text, "has a ':' in its host (IPv6 literals are not supported)");
    }
    address.host = std::string(host);
    MINIVMM_ASSIGN_OR_RETURN(address.port, ParsePort(text, rest.substr(colon + 1)));
    return address;
  }
  return BadAddress(text, "is of an unknown kind");
}

absl::StatusOr<MigrationChannel> MigrationChannel::Connect(const MigrationAddress& address,
                                                           absl::Duration timeout) {
  return Connect(address, timeout, timeout);
}

absl::StatusOr<MigrationChannel> MigrationChannel::Connect(const MigrationAddress& address,
                                                           absl::Duration timeout,
                                                           absl::Duration io_timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  if (address.kind == MigrationAddress::Kind::kUnix) {
    MINIVMM_ASSIGN_OR_RETURN(sockaddr_un sun, UnixSocketAddress(address.path));
    MINIVMM_ASSIGN_OR_RETURN(
        UniqueFd fd,
        ConnectSocket(address, AF_UNIX, reinterpret_cast<sockaddr*>(&sun), sizeof(sun), deadline));
    return MigrationChannel(std::move(fd), io_timeout);
  }
  MINIVMM_ASSIGN_OR_RETURN(AddrInfoList found, ResolveTcp(address, /*passive=*/false));
  absl::Status last;
  for (const addrinfo* ai = found.get(); ai != nullptr; ai = ai->ai_next) {
    absl::StatusOr<UniqueFd> fd =
        ConnectSocket(address, ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
    if (fd.ok()) {
      MINIVMM_RETURN_IF_ERROR(SetNoDelayIfTcp(fd->get()));
      return MigrationChannel(std::move(*fd), io_timeout);
    }
    last = fd.status();
    if (absl::IsDeadlineExceeded(last)) break;
  }
  return last;
}

absl::StatusOr<MigrationListener> MigrationListener::Listen(const MigrationAddress& address) {
  if (address.kind == MigrationAddress::Kind::kUnix) {
    MINIVMM_ASSIGN_OR_RETURN(sockaddr_un sun, UnixSocketAddress(address.path));
    MINIVMM_RETURN_IF_ERROR(
        RemoveStaleUnixSocket(address.path, sun, absl::StrCat("migration address ", address.text)));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return ErrnoError("socket(AF_UNIX)");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof(sun)) != 0) {
      return ErrnoError(absl::StrFormat("bind(migration socket %s)", address.path));
    }
    // From here the listener's destructor removes the socket file on every error path. Only the
    // user running minivmm may feed it a guest; nobody can connect before listen(), so the
    // moment before chmod exposes nothing.
    MigrationListener listener(std::move(fd), address.path, address.text);
    if (::chmod(address.path.c_str(), 0600) != 0) {
      return ErrnoError(absl::StrFormat("chmod(migration socket %s, 0600)", address.path));
    }
    if (::listen(listener.fd_.get(), 1) != 0) {
      return ErrnoError(absl::StrFormat("listen(migration socket %s)", address.path));
    }
    return listener;
  }
  MINIVMM_ASSIGN_OR_RETURN(AddrInfoList found, ResolveTcp(address, /*passive=*/true));
  absl::Status last;
  for (const addrinfo* ai = found.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
      last = ErrnoError("socket(migration)");
      continue;
    }
    // A destination restarted right after a failed migration must get its port back at once,
    // not after TIME_WAIT.
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return ErrnoError("setsockopt(SO_REUSEADDR)");
    }
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      const int bind_errno = errno;
      last = ErrnoError(absl::StrFormat("bind(migration address %s)", address.text), bind_errno);
      if (bind_errno == EADDRINUSE) {
        last = absl::Status(last.code(), absl::StrCat(last.message(),
                                                      ": another process (another minivmm "
                                                      "--incoming?) has the port; stop it or "
                                                      "choose another port"));
      }
      continue;
    }
    if (::listen(fd.get(), 1) != 0) {
      last = ErrnoError(absl::StrFormat("listen(migration address %s)", address.text));
      continue;
    }
    return MigrationListener(std::move(fd), "", address.text);
  }
  return last;
}

MigrationListener::MigrationListener(MigrationListener&& other) noexcept
    : fd_(std::move(other.fd_)),
      unix_path_(std::exchange(other.unix_path_, {})),
      address_text_(std::move(other.address_text_)) {}

MigrationListener& MigrationListener::operator=(MigrationListener&& other) noexcept {
  if (this != &other) {
    RemoveSocketFile(unix_path_);
    fd_ = std::move(other.fd_);
    unix_path_ = std::exchange(other.unix_path_, {});
    address_text_ = std::move(other.address_text_);
  }
  return *this;
}

MigrationListener::~MigrationListener() { RemoveSocketFile(unix_path_); }

absl::StatusOr<MigrationChannel> MigrationListener::Accept(absl::Duration timeout,
                                                           absl::Duration io_timeout) {
  if (!fd_.valid()) return absl::FailedPreconditionError("the migration listener was moved from");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitSocketReady(fd_.get(), POLLIN, deadline));
    if (!ready) {
      return absl::DeadlineExceededError(
          absl::StrFormat("no migration source connected to %s within %s", address_text_,
                          absl::FormatDuration(timeout)));
    }
    UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) {
      // The connection went away between poll and accept (accept(2) lists these as transient).
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED ||
          errno == EPROTO) {
        continue;
      }
      return ErrnoError(absl::StrFormat("accept(migration address %s)", address_text_));
    }
    if (PeerLeftWithoutSending(fd.get())) continue;
    MINIVMM_RETURN_IF_ERROR(SetNoDelayIfTcp(fd.get()));
    return MigrationChannel(std::move(fd), io_timeout);
  }
}

}  // namespace minivmm
