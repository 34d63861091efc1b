#include "vmm/snapshot/migration_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unix_socket.h"
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
      MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitSocketReady(fd, POLLOUT, absl::Now() + io_timeout));
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
      MINIVMM_ASSIGN_OR_RETURN(bool ready, WaitSocketReady(fd, POLLIN, absl::Now() + io_timeout));
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

MigrationChannel::MigrationChannel(UniqueFd fd, absl::Duration io_timeout)
    : fd_(std::move(fd)), io_timeout_(io_timeout) {}

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

}  // namespace minivmm
