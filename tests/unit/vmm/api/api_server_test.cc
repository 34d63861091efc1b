#include "vmm/api/api_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "tests/unit/vmm/api/fake_vm_control.h"
#include "vmm/api/ctl_command.h"
#include "vmm/base/unix_socket.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_scratch::ScratchDir;

// A raw client socket connected to path (or invalid).
UniqueFd ConnectTo(const std::filesystem::path& path) {
  absl::StatusOr<UniqueFd> fd = ConnectUnixSocket(*UnixSocketAddress(path));
  return fd.ok() ? std::move(*fd) : UniqueFd();
}

std::string ReadAll(int fd) {
  std::string out;
  char buffer[1024];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  return out;
}

// Blocking reads and writes on fd give up after `seconds`, so a server that misbehaves fails a
// test instead of hanging it.
void GiveUpAfter(int fd, int seconds) {
  const timeval limit{.tv_sec = seconds, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(*loop);
  }
  void TearDown() override { StopServing(); }

  absl::StatusOr<std::unique_ptr<ApiServer>> CreateServer(
      absl::Duration request_timeout = ApiServer::kRequestTimeout) {
    return ApiServer::Create(socket_path_, loop_.get(), &vm_, request_timeout);
  }
  // Runs the event loop on a thread, as minivmm's main thread does, while the test is a client.
  void Serve() {
    serving_ = true;
    thread_ = std::thread([this] {
      while (serving_) ASSERT_TRUE(loop_->RunOnce(10).ok());
    });
  }
  void StopServing() {
    serving_ = false;
    if (thread_.joinable()) thread_.join();
  }
  // The HTTP status a vm.info request gets, or -1 when the request fails.
  int InfoStatus() {
    absl::StatusOr<HttpAnswer> info = SendApiRequest(socket_path_, "GET", "/api/v1/vm.info");
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->status : -1;
  }
  // What a minivmm that was killed leaves: a bound socket file nobody listens on.
  void LeaveStaleSocket() {
    UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
    const sockaddr_un address = *UnixSocketAddress(socket_path_);
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  }

  ScratchDir dir_{"api_server_test"};
  std::filesystem::path socket_path_ = dir_.path() / "api.sock";
  std::unique_ptr<EventLoop> loop_;
  FakeVmControl vm_;
  std::atomic<bool> serving_{false};
  std::thread thread_;
};

TEST_F(ApiServerTest, ClientGetsInfoAndRunsActionsOverTheSocket) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  absl::StatusOr<HttpAnswer> info = SendApiRequest(socket_path_, "GET", "/api/v1/vm.info");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->status, 200);
  EXPECT_THAT(info->body, HasSubstr(R"("name":"fake")"));
  absl::StatusOr<HttpAnswer> pause = SendApiRequest(socket_path_, "PUT", "/api/v1/vm.pause");
  ASSERT_TRUE(pause.ok()) << pause.status();
  EXPECT_THAT(pause->body, HasSubstr(R"("state":"paused")"));
  absl::StatusOr<HttpAnswer> again = SendApiRequest(socket_path_, "PUT", "/api/v1/vm.pause");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->status, 409);
  StopServing();
  EXPECT_THAT(vm_.calls, ElementsAre("pause", "pause"));
}

TEST_F(ApiServerTest, SocketIsPrivateToTheUserAndRemovedWithTheServer) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  struct stat st;
  ASSERT_EQ(::stat(socket_path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  server->reset();
  EXPECT_FALSE(std::filesystem::exists(socket_path_));
}

TEST_F(ApiServerTest, AStaleSocketFileIsReplaced) {
  LeaveStaleSocket();
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  EXPECT_EQ(InfoStatus(), 200);
}

TEST_F(ApiServerTest, ASocketAnotherServerUsesIsRefusedAndKeepsWorking) {
  absl::StatusOr<std::unique_ptr<ApiServer>> first = CreateServer();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<ApiServer>> second = CreateServer();
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("is in use by another process"));
  EXPECT_THAT(second.status().message(), HasSubstr(socket_path_.string()));
  Serve();
  EXPECT_EQ(InfoStatus(), 200);
}

TEST_F(ApiServerTest, ARegularFileAtThePathIsRefusedAndKept) {
  std::ofstream(socket_path_) << "mine";
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("exists and is not a socket"));
  EXPECT_TRUE(std::filesystem::exists(socket_path_));
}

TEST_F(ApiServerTest, APathTooLongForAUnixSocketIsRefusedNamingTheLimit) {
  socket_path_ = dir_.path() / std::string(120, 'x');
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("must be 1 to 107 bytes long"));
}

TEST_F(ApiServerTest, AMalformedRequestIsAnswered400) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  UniqueFd client = ConnectTo(socket_path_);
  ASSERT_TRUE(client.valid());
  const std::string request = "NONSENSE\r\n\r\n";
  ASSERT_EQ(::write(client.get(), request.data(), request.size()), ssize_t(request.size()));
  const std::string answer = ReadAll(client.get());
  EXPECT_THAT(answer, HasSubstr("HTTP/1.1 400 Bad Request"));
  EXPECT_THAT(answer, HasSubstr("malformed request line"));
}

TEST_F(ApiServerTest, AnIdleClientDoesNotBlockOthersAndTooManyAreTurnedAway) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  std::vector<UniqueFd> idle;
  idle.push_back(ConnectTo(socket_path_));
  EXPECT_EQ(InfoStatus(), 200);
  while (idle.size() < ApiServer::kMaxConnections) idle.push_back(ConnectTo(socket_path_));
  EXPECT_EQ(InfoStatus(), 503);
  // Once the idle clients go, the server answers again.
  idle.clear();
  absl::StatusOr<HttpAnswer> later;
  for (int i = 0; i < 100; ++i) {
    later = SendApiRequest(socket_path_, "GET", "/api/v1/vm.info");
    if (later.ok() && later->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->status, 200);
}

// Sixteen clients that connect and never send lose their slots once their time is up, so a
// seventeenth is served rather than turned away forever.
TEST_F(ApiServerTest, IdleClientsPastTheRequestTimeoutMakeRoomAndAreAnswered408) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer(absl::Milliseconds(200));
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  std::vector<UniqueFd> idle;
  while (idle.size() < ApiServer::kMaxConnections) idle.push_back(ConnectTo(socket_path_));
  for (UniqueFd& fd : idle) GiveUpAfter(fd.get(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(InfoStatus(), 200);
  EXPECT_THAT(ReadAll(idle.front().get()), HasSubstr("HTTP/1.1 408 Request Timeout"));
}

// What the server drops from a client it turns away is bounded even for a source that never
// runs dry (/dev/zero stands in for a client writing without pause): the main thread goes on.
TEST(DiscardPendingInputTest, StopsAtTheLimitForAnEndlessSource) {
  UniqueFd zero(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(zero.valid());
  EXPECT_EQ(DiscardPendingInput(zero.get(), ApiServer::kMaxDrainBytes), ApiServer::kMaxDrainBytes);
}

TEST(DiscardPendingInputTest, TakesWhatWasSentAndStopsWhenNothingIsLeft) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd ours(fds[0]), peer(fds[1]);
  const std::string sent(10000, 'x');
  ASSERT_EQ(::write(peer.get(), sent.data(), sent.size()), ssize_t(sent.size()));
  EXPECT_EQ(DiscardPendingInput(ours.get(), ApiServer::kMaxDrainBytes), sent.size());
}

TEST_F(ApiServerTest, AClientThatHangsUpMidRequestIsForgotten) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  // One slot short of the limit stays open; a half-sent request then takes the last slot and
  // hangs up. Only if the server forgets it is there room for the next request.
  std::vector<UniqueFd> idle;
  while (idle.size() + 1 < ApiServer::kMaxConnections) idle.push_back(ConnectTo(socket_path_));
  {
    UniqueFd quitter = ConnectTo(socket_path_);
    ASSERT_TRUE(quitter.valid());
    const std::string partial = "GET /api/v1/vm.info HTTP/1.1\r\nHost: x";
    ASSERT_EQ(::write(quitter.get(), partial.data(), partial.size()), ssize_t(partial.size()));
  }
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    status = InfoStatus();
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status, 200);
  StopServing();
  EXPECT_THAT(vm_.calls, ::testing::IsEmpty());
}

TEST_F(ApiServerTest, CtlWithoutAServerSaysWhichSocketNobodyServes) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCtlCommand({"info"}, socket_path_.string()), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("no minivmm serves " + socket_path_.string() + " (no such socket)"));
  EXPECT_THAT(err, HasSubstr("--api_socket"));
  LeaveStaleSocket();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCtlCommand({"info"}, socket_path_.string()), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("(nothing listens on it)"));
}

TEST_F(ApiServerTest, CtlPrintsTheServersErrorAndFails) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCtlCommand({"resume"}, socket_path_.string()), 1);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "minivmm ctl: resume: the VM is not paused (HTTP 409)\n");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunCtlCommand({"pause"}, socket_path_.string()), 0);
  EXPECT_THAT(::testing::internal::GetCapturedStdout(), HasSubstr(R"("state":"paused")"));
}

TEST_F(ApiServerTest, CtlSnapshotSendsTheFolderAsAnAbsolutePath) {
  absl::StatusOr<std::unique_ptr<ApiServer>> server = CreateServer();
  ASSERT_TRUE(server.ok()) << server.status();
  Serve();
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunCtlCommand({"snapshot", "snaps/./one"}, socket_path_.string()), 0);
  ::testing::internal::GetCapturedStdout();
  const std::string expected =
      (std::filesystem::current_path() / "snaps/one").lexically_normal().string();
  EXPECT_THAT(vm_.calls, ::testing::ElementsAre("snapshot " + expected));
}

TEST(CtlCommandTest, UnknownCommandOrMissingSocketPrintsUsage) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCtlCommand({"teleport"}, "/tmp/x.sock"), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("unknown command 'teleport'"));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCtlCommand({"snapshot"}, "/tmp/x.sock"), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("snapshot DIR"));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCtlCommand({"info"}, ""), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("pass --api_socket PATH"));
}

}  // namespace
}  // namespace minivmm
