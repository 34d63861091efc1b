// The migration stream between two minivmm processes (unix or TCP socket). Every message is
// framed: a 16-byte header (magic "MVMG", u32 type, u64 payload length, little-endian) and the
// payload. The source speaks first (kHello); the destination answers kAccept or kRefuse, then
// the source sends kMemory messages (pre-copy rounds), kState (the state file's bytes) and
// kComplete, and the destination answers kStarted once the guest runs there. Either side may
// send kAbandon with a reason instead; the source then keeps running the guest.
#ifndef MINIVMM_VMM_SNAPSHOT_MIGRATION_CHANNEL_H_
#define MINIVMM_VMM_SNAPSHOT_MIGRATION_CHANNEL_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

// Bump when the framing or the message sequence changes; each side refuses another version.
inline constexpr uint32_t kMigrationProtocolVersion = 1;

enum class MigrationMessage : uint32_t {
  kHello = 1,     // payload: state::MigrationHello
  kAccept = 2,    // empty
  kRefuse = 3,    // state::MigrationError
  kMemory = 4,    // u64 guest-physical address (little-endian), then the bytes at it
  kState = 5,     // EncodeState(VmState) (vmm/snapshot/state_file.h)
  kComplete = 6,  // empty: everything is sent, the destination may start the guest
  kStarted = 7,   // empty: the guest runs on the destination
  kAbandon = 8,   // state::MigrationError
};
// "kHello", "kAccept", ... as above (what error messages print); "an unknown message" otherwise.
std::string_view MigrationMessageName(MigrationMessage type);

// Expect() reads a kRefuse or kAbandon payload up to this size whatever its max_payload, so that
// the peer's reason is never lost to a limit meant for the message expected.
inline constexpr uint64_t kMaxMigrationErrorPayload = 64 * 1024;

// "unix:PATH" or "tcp:HOST:PORT" (HOST a name or an IPv4 address).
struct MigrationAddress {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp
  uint16_t port = 0;
  std::string text;  // as given, for messages
};
absl::StatusOr<MigrationAddress> ParseMigrationAddress(std::string_view text);

class MigrationChannel {
 public:
  struct Message {
    MigrationMessage type;
    std::string payload;
  };

  // Connects to a destination waiting with --incoming; fails after `timeout` (name resolution
  // excepted: getaddrinfo cannot be bounded). The channel's io_timeout is `timeout` too unless
  // given.
  static absl::StatusOr<MigrationChannel> Connect(const MigrationAddress& address,
                                                  absl::Duration timeout);
  static absl::StatusOr<MigrationChannel> Connect(const MigrationAddress& address,
                                                  absl::Duration timeout,
                                                  absl::Duration io_timeout);
  // io_timeout bounds every send and every receive (a peer that stops answering): each fails
  // when the peer takes or sends no byte for io_timeout, so a large kMemory message on a slow
  // but live link still goes through. `fd` is a connected stream socket, blocking or not (every
  // call here uses MSG_DONTWAIT and poll); a TCP one should have TCP_NODELAY (Connect and Accept
  // set it).
  MigrationChannel(UniqueFd fd, absl::Duration io_timeout);

  absl::Status Send(MigrationMessage type, std::string_view payload = {});
  // A kMemory message for `bytes` at guest-physical `gpa`, without copying them.
  absl::Status SendMemory(uint64_t gpa, std::span<const uint8_t> bytes);
  // The next message; refuses a payload over max_payload bytes, a bad magic or an unknown
  // type, each with a message naming what came.
  absl::StatusOr<Message> Receive(uint64_t max_payload);
  // Receive, then require `type` (a kAbandon or kRefuse instead becomes an error carrying the
  // peer's reason: FailedPrecondition "the destination refused: ..." for kRefuse, Aborted "the
  // peer abandoned the migration: ..." for kAbandon). Another type is InvalidArgument "expected
  // kX, got kY", its payload left unread. After any error the channel is unusable.
  absl::StatusOr<std::string> Expect(MigrationMessage type, uint64_t max_payload);

  // The socket, for checks of its options (TCP_NODELAY).
  int fd() const { return fd_.get(); }


 private:
  UniqueFd fd_;
  absl::Duration io_timeout_;
};

// The destination's listening socket: a unix socket it creates (and removes when destroyed)
// or a TCP port.
class MigrationListener {
 public:
  // A unix path where another process listens is refused (it is probed with a connect); a stale
  // socket file is replaced, any other file refused. The socket file is made 0600.
  static absl::StatusOr<MigrationListener> Listen(const MigrationAddress& address);
  MigrationListener(MigrationListener&&) noexcept;
  MigrationListener& operator=(MigrationListener&&) noexcept;
  ~MigrationListener();

  // Waits for the source (forever when timeout is absl::InfiniteDuration()). A connection that
  // closed before sending anything (the probe of another Listen on the same path) is skipped.
  absl::StatusOr<MigrationChannel> Accept(absl::Duration timeout, absl::Duration io_timeout);

 private:
  MigrationListener(UniqueFd fd, std::string unix_path, std::string address_text)
      : fd_(std::move(fd)),
        unix_path_(std::move(unix_path)),
        address_text_(std::move(address_text)) {}
  UniqueFd fd_;
  std::string unix_path_;     // removed on destruction; empty for TCP
  std::string address_text_;  // for messages
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_SNAPSHOT_MIGRATION_CHANNEL_H_
