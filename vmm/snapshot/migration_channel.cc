#include "vmm/snapshot/migration_channel.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/snapshot/migration.pb.h"

namespace minivmm {
namespace {

// The frame header (migration_channel.h): magic, u32 type, u64 payload length, little-endian.
constexpr char kMagic[4] = {'M', 'V', 'M', 'G'};
constexpr size_t kTypeOffset = 4;
constexpr size_t kLengthOffset = 8;
constexpr size_t kHeaderSize = 16;
using FrameHeader = std::array<uint8_t, kHeaderSize>;
constexpr size_t kGpaSize = 8;  // kMemory's leading guest-physical address

constexpr char kAddressForms[] =
    "use unix:PATH or tcp:HOST:PORT (for example unix:/run/minivmm-migrate.sock or "
    "tcp:192.0.2.10:7000)";

// Little-endian on every host, whatever its byte order.
template <typename Int>
void PutLittleEndian(uint8_t* out, Int value) {
  for (size_t i = 0; i < sizeof(Int); ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

template <typename Int>
Int GetLittleEndian(const uint8_t* in) {
  Int value = 0;
  for (size_t i = 0; i < sizeof(Int); ++i) value |= static_cast<Int>(in[i]) << (8 * i);
  return value;
}

FrameHeader EncodeHeader(MigrationMessage type, uint64_t length) {
  FrameHeader header{};
  std::memcpy(header.data(), kMagic, sizeof(kMagic));
  PutLittleEndian<uint32_t>(header.data() + kTypeOffset, static_cast<uint32_t>(type));
  PutLittleEndian<uint64_t>(header.data() + kLengthOffset, length);
  return header;
}

bool IsKnownType(uint32_t type) {
  return type >= static_cast<uint32_t>(MigrationMessage::kHello) &&
         type <= static_cast<uint32_t>(MigrationMessage::kAbandon);
}

// poll() takes milliseconds: rounded up, so a wait never ends before its deadline; -1 is forever.
int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), INT_MAX));
}

// Waits until `fd` is ready for `events` (or has an error or hang-up, which the next call on it
// reports); false when the deadline passes first.
absl::StatusOr<bool> WaitReady(int fd, short events, absl::Time deadline) {
  for (;;) {
    pollfd entry{.fd = fd, .events = events, .revents = 0};
    const int n = ::poll(&entry, 1, PollTimeoutMs(deadline));
    if (n > 0) return true;
    if (n == 0 && absl::Now() >= deadline) return false;
    if (n < 0 && errno != EINTR) return ErrnoError("poll(migration socket)");
  }
}

// Sends all of `iov` (consumed as it goes), waiting at most io_timeout for each bit of progress.
// MSG_NOSIGNAL: a peer that closed gives EPIPE here rather than killing the VMM with SIGPIPE.
absl::Status SendAll(int fd, std::span<iovec> iov, absl::Duration io_timeout,
                     std::string_view what) {
  size_t first = 0;
  for (;;) {
    while (first < iov.size() && iov[first].iov_len == 0) ++first;
    if (first == iov.size()) return absl::OkStatus();
    msghdr msg{};
    msg.msg_iov = &iov[first];
    msg.msg_iovlen = iov.size() - first;
    const ssize_t sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitReady(fd, POLLOUT, absl::Now() + io_timeout));
      if (!ready) {
        return absl::DeadlineExceededError(
            absl::StrFormat("the migration peer took no data for %s (sending %s)",
                            absl::FormatDuration(io_timeout), what));
      }
      continue;
    }
    if (sent < 0) return ErrnoError(absl::StrFormat("sending %s to the migration peer", what));
    for (size_t left = static_cast<size_t>(sent); left > 0;) {
      const size_t step = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + step;
      iov[first].iov_len -= step;
      left -= step;
      if (iov[first].iov_len == 0) ++first;
    }
  }
}

// Reads up to `out.size()` bytes, fewer only when the peer closes; waits at most io_timeout for
// each bit of progress. `waiting_for` says what for, in the timeout's message.
absl::StatusOr<size_t> ReceiveUpTo(int fd, std::span<uint8_t> out, absl::Duration io_timeout,
                                   std::string_view waiting_for) {
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::recv(fd, out.data() + got, out.size() - got, MSG_DONTWAIT);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitReady(fd, POLLIN, absl::Now() + io_timeout));
      if (!ready) {
        return absl::DeadlineExceededError(
            absl::StrFormat("the migration peer sent nothing for %s (%s)",
                            absl::FormatDuration(io_timeout), waiting_for));
      }
    } else if (errno != EINTR) {
      return ErrnoError("receiving from the migration peer");
    }
  }
  return got;
}

struct Frame {
  MigrationMessage type;
  uint64_t length;
};

absl::StatusOr<Frame> ReceiveHeader(int fd, absl::Duration io_timeout) {
  FrameHeader header;
  MINIVMM_ASSIGN_OR_RETURN(size_t got,
                           ReceiveUpTo(fd, header, io_timeout, "waiting for the next message"));
  if (got == 0) return absl::UnavailableError("the migration peer closed the connection");
  if (got < kHeaderSize) {
    return absl::DataLossError(
        "the migration peer closed the connection in the middle of a message header");
  }
  if (std::memcmp(header.data(), kMagic, sizeof(kMagic)) != 0) {
    const std::string magic = absl::CHexEscape(
        absl::string_view(reinterpret_cast<const char*>(header.data()), sizeof(kMagic)));
    return absl::InvalidArgumentError(absl::StrFormat(
        "not a minivmm migration stream (magic \"%s\", expected \"MVMG\"): is the other end a "
        "minivmm?",
        magic));
  }
  const uint32_t type = GetLittleEndian<uint32_t>(header.data() + kTypeOffset);
  if (!IsKnownType(type)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the migration peer sent a message of unknown type %d (this minivmm speaks migration "
        "protocol version %d)",
        type, kMigrationProtocolVersion));
  }
  return Frame{static_cast<MigrationMessage>(type),
               GetLittleEndian<uint64_t>(header.data() + kLengthOffset)};
}

// Refuses the payload before reading a byte of it, so a corrupt length cannot make us allocate.
absl::StatusOr<std::string> ReceivePayload(int fd, absl::Duration io_timeout, const Frame& frame,
                                           uint64_t max_payload) {
  const std::string_view name = MigrationMessageName(frame.type);
  if (frame.length > max_payload) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a %d-byte %s message exceeds the %d-byte limit", frame.length, name, max_payload));
  }
  std::string payload(frame.length, '\0');
  const std::string waiting_for = absl::StrFormat("in the middle of a %s message", name);
  MINIVMM_ASSIGN_OR_RETURN(
      size_t got,
      ReceiveUpTo(fd, std::span(reinterpret_cast<uint8_t*>(payload.data()), payload.size()),
                  io_timeout, waiting_for));
  if (got < payload.size()) {
    return absl::DataLossError(
        absl::StrFormat("the migration peer closed the connection %s (%d of %d bytes came)",
                        waiting_for, got, payload.size()));
  }
  return payload;
}

absl::Status PeerGaveUp(MigrationMessage type, const std::string& payload) {
  state::MigrationError error;
  std::string reason = "(no reason given)";
  if (!error.ParseFromString(payload)) {
    reason = "(its reason is unreadable)";
  } else if (!error.reason().empty()) {
    reason = error.reason();
  }
  if (type == MigrationMessage::kRefuse) {
    return absl::FailedPreconditionError(absl::StrCat("the destination refused: ", reason));
  }
  return absl::AbortedError(absl::StrCat("the peer abandoned the migration: ", reason));
}

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
    MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitReady(fd.get(), POLLOUT, deadline));
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

absl::StatusOr<sockaddr_un> UnixAddress(const MigrationAddress& address) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (address.path.empty() || address.path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "migration address %s: the path must be 1 to %d bytes long (a unix socket limit)",
        address.text, sizeof(sun.sun_path) - 1));
  }
  std::memcpy(sun.sun_path, address.path.data(), address.path.size());
  return sun;
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

// A socket file left by a minivmm that died is replaced; one another process listens on, or a
// file that is not a socket, is not ours and stays.
absl::Status RemoveStaleSocket(const MigrationAddress& address, const sockaddr_un& sun) {
  struct stat st;
  if (::lstat(address.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(absl::StrFormat("lstat(%s)", address.path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "migration address %s: %s exists and is not a socket: remove it or choose another path",
        address.text, address.path));
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe.valid()) return ErrnoError("socket(AF_UNIX)");
  // EAGAIN: a listener with a full backlog, alive all the same.
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof(sun)) == 0 ||
      errno == EAGAIN) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "migration address %s is in use by another process (another minivmm --incoming?): stop "
        "it or choose another path",
        address.text));
  }
  if (errno != ECONNREFUSED) {
    return ErrnoError(absl::StrFormat("probing migration socket %s", address.path));
  }
  if (::unlink(address.path.c_str()) != 0) {
    return ErrnoError(absl::StrFormat("unlink(stale migration socket %s)", address.path));
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

std::string_view MigrationMessageName(MigrationMessage type) {
  switch (type) {
    case MigrationMessage::kHello:
      return "kHello";
    case MigrationMessage::kAccept:
      return "kAccept";
    case MigrationMessage::kRefuse:
      return "kRefuse";
    case MigrationMessage::kMemory:
      return "kMemory";
    case MigrationMessage::kState:
      return "kState";
    case MigrationMessage::kComplete:
      return "kComplete";
    case MigrationMessage::kStarted:
      return "kStarted";
    case MigrationMessage::kAbandon:
      return "kAbandon";
  }
  return "an unknown message";
}

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

MigrationChannel::MigrationChannel(UniqueFd fd, absl::Duration io_timeout)
    : fd_(std::move(fd)), io_timeout_(io_timeout) {}

absl::StatusOr<MigrationChannel> MigrationChannel::Connect(const MigrationAddress& address,
                                                           absl::Duration timeout) {
  return Connect(address, timeout, timeout);
}

absl::StatusOr<MigrationChannel> MigrationChannel::Connect(const MigrationAddress& address,
                                                           absl::Duration timeout,
                                                           absl::Duration io_timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  if (address.kind == MigrationAddress::Kind::kUnix) {
    MINIVMM_ASSIGN_OR_RETURN(sockaddr_un sun, UnixAddress(address));
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

absl::Status MigrationChannel::Send(MigrationMessage type, std::string_view payload) {
  FrameHeader header = EncodeHeader(type, payload.size());
  std::array<iovec, 2> iov = {
      {{header.data(), header.size()}, {const_cast<char*>(payload.data()), payload.size()}}};
  return SendAll(
      fd_.get(), iov, io_timeout_,
      absl::StrFormat("a %d-byte %s message", payload.size(), MigrationMessageName(type)));
}

absl::Status MigrationChannel::SendMemory(uint64_t gpa, std::span<const uint8_t> bytes) {
  FrameHeader header = EncodeHeader(MigrationMessage::kMemory, kGpaSize + bytes.size());
  std::array<uint8_t, kGpaSize> gpa_bytes;
  PutLittleEndian<uint64_t>(gpa_bytes.data(), gpa);
  // sendmsg only reads through iov_base; the cast is iovec's, not a write.
  std::array<iovec, 3> iov = {{{header.data(), header.size()},
                               {gpa_bytes.data(), gpa_bytes.size()},
                               {const_cast<uint8_t*>(bytes.data()), bytes.size()}}};
  return SendAll(fd_.get(), iov, io_timeout_,
                 absl::StrFormat("a %d-byte kMemory message at %#x", bytes.size(), gpa));
}

absl::StatusOr<MigrationChannel::Message> MigrationChannel::Receive(uint64_t max_payload) {
  MINIVMM_ASSIGN_OR_RETURN(Frame frame, ReceiveHeader(fd_.get(), io_timeout_));
  MINIVMM_ASSIGN_OR_RETURN(std::string payload,
                           ReceivePayload(fd_.get(), io_timeout_, frame, max_payload));
  return Message{frame.type, std::move(payload)};
}

absl::StatusOr<std::string> MigrationChannel::Expect(MigrationMessage type, uint64_t max_payload) {
  MINIVMM_ASSIGN_OR_RETURN(Frame frame, ReceiveHeader(fd_.get(), io_timeout_));
  if (frame.type == type) return ReceivePayload(fd_.get(), io_timeout_, frame, max_payload);
  if (frame.type == MigrationMessage::kRefuse || frame.type == MigrationMessage::kAbandon) {
    MINIVMM_ASSIGN_OR_RETURN(std::string payload,
                             ReceivePayload(fd_.get(), io_timeout_, frame,
                                            std::max(max_payload, kMaxMigrationErrorPayload)));
    return PeerGaveUp(frame.type, payload);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("expected %s, got %s (%d bytes)", MigrationMessageName(type),
                      MigrationMessageName(frame.type), frame.length));
}

absl::StatusOr<MigrationListener> MigrationListener::Listen(const MigrationAddress& address) {
  if (address.kind == MigrationAddress::Kind::kUnix) {
    MINIVMM_ASSIGN_OR_RETURN(sockaddr_un sun, UnixAddress(address));
    MINIVMM_RETURN_IF_ERROR(RemoveStaleSocket(address, sun));
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
    MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitReady(fd_.get(), POLLIN, deadline));
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
