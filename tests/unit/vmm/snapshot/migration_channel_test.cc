// The migration stream: framing on the wire, every way Receive and Expect refuse what came, the
// timeouts that bound a silent peer, address parsing, and the listener's socket file.
#include "vmm/snapshot/migration_channel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "vmm/base/unique_fd.h"
#include "vmm/snapshot/migration.pb.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::minivmm::testing_scratch::ScratchDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::Duration kShort = absl::Milliseconds(100);
constexpr absl::Duration kLong = absl::Seconds(10);

// Debian's abseil has its own string_view, which gmock's string matchers do not take.
std::string Message(const absl::Status& status) { return std::string(status.message()); }
template <typename T>
std::string Message(const absl::StatusOr<T>& value) {
  return Message(value.status());
}

struct Pair {
  UniqueFd ours;
  UniqueFd peer;
};

Pair SocketPair() {
  int fds[2] = {-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0) << std::strerror(errno);
  return Pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string Header(uint32_t type, uint64_t length, std::string_view magic = "MVMG") {
  std::string bytes(magic);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(type >> (8 * i)));
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(length >> (8 * i)));
  return bytes;
}

std::string Header(MigrationMessage type, uint64_t length) {
  return Header(static_cast<uint32_t>(type), length);
}

void WriteRaw(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    ASSERT_GT(n, 0) << std::strerror(errno);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads exactly n bytes (fewer if the other end closes).
std::string ReadRaw(int fd, size_t n) {
  std::string bytes(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, bytes.data() + got, n - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  bytes.resize(got);
  return bytes;
}

std::string ErrorPayload(const std::string& reason) {
  state::MigrationError error;
  error.set_reason(reason);
  return error.SerializeAsString();
}

const MigrationMessage kAllTypes[] = {
    MigrationMessage::kHello,   MigrationMessage::kAccept,  MigrationMessage::kRefuse,
    MigrationMessage::kMemory,  MigrationMessage::kState,   MigrationMessage::kComplete,
    MigrationMessage::kStarted, MigrationMessage::kAbandon,
};

TEST(MigrationChannelTest, SendWritesTheDocumentedHeaderThenThePayload) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  ASSERT_TRUE(channel.Send(MigrationMessage::kState, "abc").ok());
  EXPECT_EQ(ReadRaw(pair.peer.get(), 19), std::string("MVMG\x05\0\0\0\x03\0\0\0\0\0\0\0abc", 19));
}

TEST(MigrationChannelTest, RoundTripsEveryMessageType) {
  Pair pair = SocketPair();
  MigrationChannel sender(std::move(pair.ours), kLong);
  MigrationChannel receiver(std::move(pair.peer), kLong);
  for (MigrationMessage type : kAllTypes) {
    const std::string payload =
        std::string("payload of ") + std::string(MigrationMessageName(type)) + std::string(1, '\0');
    ASSERT_TRUE(sender.Send(type, payload).ok()) << MigrationMessageName(type);
    absl::StatusOr<MigrationChannel::Message> message = receiver.Receive(1024);
    ASSERT_TRUE(message.ok()) << message.status();
    EXPECT_EQ(message->type, type);
    EXPECT_EQ(message->payload, payload);
  }
  // An empty payload is a header alone.
  ASSERT_TRUE(sender.Send(MigrationMessage::kComplete).ok());
  absl::StatusOr<MigrationChannel::Message> empty = receiver.Receive(0);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->type, MigrationMessage::kComplete);
  EXPECT_EQ(empty->payload, "");
}

TEST(MigrationChannelTest, SendMemoryFramesTheGpaBeforeTheBytes) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  const uint8_t bytes[] = {0xde, 0xad, 0xbe, 0xef};
  ASSERT_TRUE(channel.SendMemory(0x0102030405060708, bytes).ok());
  EXPECT_EQ(ReadRaw(pair.peer.get(), 28),
            Header(MigrationMessage::kMemory, 12) +
                std::string("\x08\x07\x06\x05\x04\x03\x02\x01\xde\xad\xbe\xef", 12));
}

TEST(MigrationChannelTest, SendMemoryOfEightMiBArrivesIntact) {
  Pair pair = SocketPair();
  MigrationChannel sender(std::move(pair.ours), kLong);
  MigrationChannel receiver(std::move(pair.peer), kLong);
  std::vector<uint8_t> bytes(8 << 20);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + (i >> 12));
  const uint64_t gpa = 0x1'2345'6000;
  absl::Status sent;
  // A socketpair buffers a few hundred KiB: the reader must run while the sender sends.
  std::thread writer([&] { sent = sender.SendMemory(gpa, bytes); });
  absl::StatusOr<MigrationChannel::Message> message = receiver.Receive(16 << 20);
  writer.join();
  ASSERT_TRUE(sent.ok()) << sent;
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->type, MigrationMessage::kMemory);
  ASSERT_EQ(message->payload.size(), 8 + bytes.size());
  uint64_t got_gpa = 0;
  for (int i = 0; i < 8; ++i)
    got_gpa |= uint64_t{static_cast<uint8_t>(message->payload[i])} << (8 * i);
  EXPECT_EQ(got_gpa, gpa);
  EXPECT_TRUE(std::memcmp(message->payload.data() + 8, bytes.data(), bytes.size()) == 0);
}

TEST(MigrationChannelTest, RefusesABadMagic) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(1, 0, "HTTP"));
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(message),
              AllOf(HasSubstr("not a minivmm migration stream"), HasSubstr("HTTP")));
}

TEST(MigrationChannelTest, RefusesAnUnknownType) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(99, 0));
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(message), HasSubstr("unknown type 99"));
}

TEST(MigrationChannelTest, RefusesAnOversizedPayloadWithoutReadingIt) {
  Pair pair = SocketPair();
  const int our_fd = pair.ours.get();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(MigrationMessage::kMemory, uint64_t{1} << 40) + "next");
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(4096);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(message),
              HasSubstr("a 1099511627776-byte kMemory message exceeds the 4096-byte limit"));
  // The bytes after the header are still in the socket.
  EXPECT_EQ(ReadRaw(our_fd, 4), "next");
}

TEST(MigrationChannelTest, PeerClosingBeforeAMessageIsUnavailable) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  pair.peer.Reset();
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(message), HasSubstr("the migration peer closed the connection"));
}

TEST(MigrationChannelTest, PeerClosingInsideTheHeaderIsDataLoss) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), "MVMG\x05");
  pair.peer.Reset();
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(message), HasSubstr("in the middle of a message header"));
}

TEST(MigrationChannelTest, PeerClosingInsideThePayloadIsDataLossNamingTheMessage) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(MigrationMessage::kState, 100) + "only ten..");
  pair.peer.Reset();
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(message),
              AllOf(HasSubstr("the migration peer closed the connection in the middle of a "
                              "kState message"),
                    HasSubstr("10 of 100 bytes")));
}

TEST(MigrationChannelTest, ReceiveTimesOutWhenThePeerSendsNothing) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kShort);
  const absl::Time start = absl::Now();
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  const absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(message.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(message), HasSubstr("the migration peer sent nothing for 100ms"));
  EXPECT_GE(waited, kShort);
  EXPECT_LT(waited, absl::Seconds(5));
}

TEST(MigrationChannelTest, ReceiveTimesOutWhenThePeerStopsInsideAMessage) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kShort);
  WriteRaw(pair.peer.get(), Header(MigrationMessage::kHello, 10) + "abc");
  absl::StatusOr<MigrationChannel::Message> message = channel.Receive(1024);
  EXPECT_EQ(message.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(message), HasSubstr("in the middle of a kHello message"));
}

TEST(MigrationChannelTest, SendTimesOutWhenThePeerReadsNothing) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kShort);
  std::vector<uint8_t> bytes(8 << 20);  // far more than a socketpair buffers
  const absl::Status sent = channel.SendMemory(0x1000, bytes);
  EXPECT_EQ(sent.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(sent),
              AllOf(HasSubstr("the migration peer took no data for 100ms"), HasSubstr("kMemory")));
}

TEST(MigrationChannelTest, SendToAClosedPeerFailsInsteadOfRaisingSigpipe) {
  // The default disposition kills the process: a SIGPIPE fails this test by ending the binary.
  struct sigaction old_action;
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  ASSERT_EQ(::sigaction(SIGPIPE, &default_action, &old_action), 0);
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  pair.peer.Reset();
  const absl::Status sent = channel.Send(MigrationMessage::kHello, "hello");
  const uint8_t page[4096] = {};
  const absl::Status memory_sent = channel.SendMemory(0, page);
  ::sigaction(SIGPIPE, &old_action, nullptr);
  EXPECT_FALSE(sent.ok());
  EXPECT_THAT(Message(sent), AllOf(HasSubstr("kHello"), HasSubstr("Broken pipe")));
  EXPECT_FALSE(memory_sent.ok());
}

TEST(MigrationChannelTest, WorksOnANonBlockingSocketToo) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  MigrationChannel a(UniqueFd(fds[0]), kLong);
  MigrationChannel b(UniqueFd(fds[1]), kLong);
  std::string big(1 << 20, 'x');
  absl::Status sent;
  std::thread writer([&] { sent = a.Send(MigrationMessage::kState, big); });
  absl::StatusOr<std::string> got = b.Expect(MigrationMessage::kState, 2 << 20);
  writer.join();
  ASSERT_TRUE(sent.ok()) << sent;
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, big);
}

TEST(MigrationChannelExpectTest, ReturnsThePayloadOfTheWantedType) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(MigrationMessage::kAccept, 2) + "ok");
  absl::StatusOr<std::string> payload = channel.Expect(MigrationMessage::kAccept, 16);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, "ok");
}

TEST(MigrationChannelExpectTest, TurnsAbandonIntoAnErrorCarryingTheReason) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  MigrationChannel peer(std::move(pair.peer), kLong);
  ASSERT_TRUE(peer.Send(MigrationMessage::kAbandon, ErrorPayload("disk full on the host")).ok());
  absl::StatusOr<std::string> payload = channel.Expect(MigrationMessage::kStarted, 0);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(Message(payload),
              HasSubstr("the peer abandoned the migration: disk full on the host"));
}

TEST(MigrationChannelExpectTest, TurnsRefuseIntoAnErrorCarryingTheReasonWhateverTheLimit) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  MigrationChannel peer(std::move(pair.peer), kLong);
  const std::string reason =
      "the destination has 2 GiB of free memory; the guest needs " + std::string(200, '4') + " GiB";
  ASSERT_TRUE(peer.Send(MigrationMessage::kRefuse, ErrorPayload(reason)).ok());
  // kAccept is empty: a limit of 0 must not swallow the reason.
  absl::StatusOr<std::string> payload = channel.Expect(MigrationMessage::kAccept, 0);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(payload), HasSubstr("the destination refused: " + reason));
}

TEST(MigrationChannelExpectTest, NamesBothTypesOnAnUnexpectedMessage) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(MigrationMessage::kMemory, 4) + "page");
  absl::StatusOr<std::string> payload = channel.Expect(MigrationMessage::kAccept, 0);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(payload), HasSubstr("expected kAccept, got kMemory"));
}

TEST(MigrationChannelExpectTest, RefusesTheWantedTypeOverTheLimit) {
  Pair pair = SocketPair();
  MigrationChannel channel(std::move(pair.ours), kLong);
  WriteRaw(pair.peer.get(), Header(MigrationMessage::kHello, 100));
  absl::StatusOr<std::string> payload = channel.Expect(MigrationMessage::kHello, 99);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(payload), HasSubstr("a 100-byte kHello message exceeds the 99-byte limit"));
}

TEST(MigrationAddressTest, ParsesAUnixPath) {
  absl::StatusOr<MigrationAddress> address = ParseMigrationAddress("unix:/run/vm/migrate.sock");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->kind, MigrationAddress::Kind::kUnix);
  EXPECT_EQ(address->path, "/run/vm/migrate.sock");
  EXPECT_EQ(address->text, "unix:/run/vm/migrate.sock");
}

TEST(MigrationAddressTest, ParsesTcpWithAnIpv4AddressOrAName) {
  absl::StatusOr<MigrationAddress> address = ParseMigrationAddress("tcp:192.0.2.10:7000");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->kind, MigrationAddress::Kind::kTcp);
  EXPECT_EQ(address->host, "192.0.2.10");
  EXPECT_EQ(address->port, 7000);
  EXPECT_EQ(address->text, "tcp:192.0.2.10:7000");

  absl::StatusOr<MigrationAddress> named = ParseMigrationAddress("tcp:host-b.example:65535");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->host, "host-b.example");
  EXPECT_EQ(named->port, 65535);

  absl::StatusOr<MigrationAddress> lowest = ParseMigrationAddress("tcp:h:1");
  ASSERT_TRUE(lowest.ok()) << lowest.status();
  EXPECT_EQ(lowest->port, 1);
}

TEST(MigrationAddressTest, RejectsMalformedAddressesNamingTheAcceptedForms) {
  const std::string too_long = "unix:/" + std::string(sizeof(sockaddr_un::sun_path), 'a');
  for (const std::string& text :
       {std::string(""), std::string("/tmp/migrate.sock"), std::string("unix:"),
        std::string("udp:host:1"), std::string("tcp:"), std::string("tcp:host"),
        std::string("tcp::7000"), std::string("tcp:host:"), std::string("tcp:host:0"),
        std::string("tcp:host:65536"), std::string("tcp:host:123456"), std::string("tcp:host:7a"),
        std::string("tcp:host:+7"), std::string("tcp:host: 7"), std::string("tcp:::1:7000"),
        too_long}) {
    absl::StatusOr<MigrationAddress> address = ParseMigrationAddress(text);
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << "'" << text << "'";
    EXPECT_THAT(Message(address), HasSubstr("unix:PATH or tcp:HOST:PORT")) << text;
  }
}

MigrationAddress UnixAddressIn(const ScratchDir& dir, const std::string& name = "m.sock") {
  absl::StatusOr<MigrationAddress> address =
      ParseMigrationAddress("unix:" + (dir.path() / name).string());
  EXPECT_TRUE(address.ok()) << address.status();
  return *address;
}

// The source says hello, the destination accepts: both directions work.
void ExpectHandshake(MigrationChannel& source, MigrationChannel& destination) {
  ASSERT_TRUE(source.Send(MigrationMessage::kHello, "hi").ok());
  absl::StatusOr<std::string> hello = destination.Expect(MigrationMessage::kHello, 16);
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(*hello, "hi");
  ASSERT_TRUE(destination.Send(MigrationMessage::kAccept).ok());
  absl::StatusOr<std::string> accept = source.Expect(MigrationMessage::kAccept, 0);
  EXPECT_TRUE(accept.ok()) << accept.status();
}

TEST(MigrationListenerTest, UnixConnectAndAcceptMakeAChannel) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(address);
  ASSERT_TRUE(listener.ok()) << listener.status();
  struct stat st;
  ASSERT_EQ(::lstat(address.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600);

  absl::StatusOr<MigrationChannel> source = MigrationChannel::Connect(address, kLong);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<MigrationChannel> destination = listener->Accept(kLong, kLong);
  ASSERT_TRUE(destination.ok()) << destination.status();
  ExpectHandshake(*source, *destination);
}

TEST(MigrationListenerTest, RemovesItsSocketFileWhenDestroyed) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  {
    absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(address);
    ASSERT_TRUE(listener.ok()) << listener.status();
    EXPECT_TRUE(fs::exists(address.path));
  }
  EXPECT_FALSE(fs::exists(address.path));
}

TEST(MigrationListenerTest, RefusesAPathAnotherListenerServesAndKeepsServingIt) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  absl::StatusOr<MigrationListener> first = MigrationListener::Listen(address);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<MigrationListener> second = MigrationListener::Listen(address);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(second), HasSubstr("in use"));
  ASSERT_TRUE(fs::exists(address.path));

  // The second Listen's probe connection is skipped: the real source is the one accepted.
  absl::StatusOr<MigrationChannel> source = MigrationChannel::Connect(address, kLong);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<MigrationChannel> destination = first->Accept(kLong, kLong);
  ASSERT_TRUE(destination.ok()) << destination.status();
  ExpectHandshake(*source, *destination);
}

TEST(MigrationListenerTest, ReplacesAStaleSocketFile) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  {
    // A socket bound and closed without unlink: what a minivmm that died leaves.
    UniqueFd dead(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, address.path.c_str(), sizeof(sun.sun_path) - 1);
    ASSERT_EQ(::bind(dead.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
  }
  ASSERT_TRUE(fs::exists(address.path));
  absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(address);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<MigrationChannel> source = MigrationChannel::Connect(address, kLong);
  EXPECT_TRUE(source.ok()) << source.status();
}

TEST(MigrationListenerTest, RefusesAFileThatIsNotASocketAndLeavesIt) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  std::ofstream(address.path) << "precious";
  absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(address);
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(listener), HasSubstr("not a socket"));
  EXPECT_TRUE(fs::is_regular_file(address.path));
}

TEST(MigrationListenerTest, MovesTransferTheSocketFile) {
  ScratchDir dir("migration");
  const MigrationAddress a = UnixAddressIn(dir, "a.sock");
  const MigrationAddress b = UnixAddressIn(dir, "b.sock");
  absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(a);
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::optional<MigrationListener> moved;
  {
    MigrationListener from(std::move(*listener));
    moved.emplace(std::move(from));
  }
  // Neither moved-from listener removed the file; the one holding it still accepts.
  ASSERT_TRUE(fs::exists(a.path));
  absl::StatusOr<MigrationChannel> source = MigrationChannel::Connect(a, kLong);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE(moved->Accept(kLong, kLong).ok());

  // Assigning over a listener removes the socket file it had.
  absl::StatusOr<MigrationListener> other = MigrationListener::Listen(b);
  ASSERT_TRUE(other.ok()) << other.status();
  *moved = std::move(*other);
  EXPECT_FALSE(fs::exists(a.path));
  EXPECT_TRUE(fs::exists(b.path));
  listener = absl::UnknownError("gone");
  other = absl::UnknownError("gone");
  EXPECT_TRUE(fs::exists(b.path));
  moved.reset();
  EXPECT_FALSE(fs::exists(b.path));
}

TEST(MigrationListenerTest, AcceptTimesOutNamingTheAddress) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(address);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<MigrationChannel> channel = listener->Accept(kShort, kLong);
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(channel),
              AllOf(HasSubstr("no migration source connected"), HasSubstr(address.text)));
}

TEST(MigrationConnectTest, ToAMissingUnixSocketSaysToStartTheDestination) {
  ScratchDir dir("migration");
  const MigrationAddress address = UnixAddressIn(dir);
  absl::StatusOr<MigrationChannel> channel = MigrationChannel::Connect(address, kLong);
  EXPECT_FALSE(channel.ok());
  EXPECT_THAT(Message(channel),
              AllOf(HasSubstr(address.text), HasSubstr("minivmm --incoming " + address.text)));
}

// A port bound on 127.0.0.1 and not listening: connecting there is refused at once.
uint16_t BoundPort(const UniqueFd& fd) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  socklen_t len = sizeof(sin);
  EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len), 0);
  return ntohs(sin.sin_port);
}

MigrationAddress TcpAddress(uint16_t port) {
  absl::StatusOr<MigrationAddress> address =
      ParseMigrationAddress("tcp:127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(address.ok()) << address.status();
  return *address;
}

TEST(MigrationConnectTest, ToATcpPortNobodyListensOnSaysToStartTheDestination) {
  UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const MigrationAddress address = TcpAddress(BoundPort(holder));
  absl::StatusOr<MigrationChannel> channel = MigrationChannel::Connect(address, kLong);
  EXPECT_FALSE(channel.ok());
  EXPECT_THAT(Message(channel), HasSubstr("minivmm --incoming " + address.text));
}

bool NoDelay(int fd) {
  int value = 0;
  socklen_t len = sizeof(value);
  EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &len), 0);
  return value != 0;
}

TEST(MigrationListenerTest, TcpConnectAndAcceptMakeAChannelWithoutNagle) {
  uint16_t port;
  {
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    port = BoundPort(probe);  // free a moment ago; closed so Listen can take it
  }
  const MigrationAddress address = TcpAddress(port);
  absl::StatusOr<MigrationListener> listener = MigrationListener::Listen(address);
  if (!listener.ok() && absl::StrContains(Message(listener), "in use")) {
    GTEST_SKIP() << "port " << port << " was taken meanwhile: " << listener.status();
  }
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<MigrationChannel> source = MigrationChannel::Connect(address, kLong, kLong);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<MigrationChannel> destination = listener->Accept(kLong, kLong);
  ASSERT_TRUE(destination.ok()) << destination.status();
  EXPECT_TRUE(NoDelay(source->fd()));
  EXPECT_TRUE(NoDelay(destination->fd()));
  ExpectHandshake(*source, *destination);
}

}  // namespace
}  // namespace minivmm
