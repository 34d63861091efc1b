// OutputPump: output reaches a reader in order; a reader that stops reading costs a producer
// at most the stall timeout once, then nothing, and cannot hold up destruction.
#include "vmm/base/output_pump.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace minivmm {
namespace {

using Clock = std::chrono::steady_clock;

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe2(fds_, O_CLOEXEC), 0); }
  ~Pipe() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }
  void CloseReadEnd() { Close(0); }
  void CloseWriteEnd() { Close(1); }

 private:
  void Close(int end) {
    ::close(fds_[end]);
    fds_[end] = -1;
  }

  int fds_[2] = {-1, -1};
};

std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  return out;
}

std::span<const uint8_t> Bytes(const std::string& text) {
  return std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// The writer thread notices a closed reader on its own time.
bool WaitForDropped(const OutputPump& pump, uint64_t bytes) {
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (pump.dropped_bytes() < bytes && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pump.dropped_bytes() == bytes;
}

constexpr OutputPump::Options kQuick = {.capacity = 4096,
                                        .stall_timeout = absl::Milliseconds(50),
                                        .flush_timeout = absl::Milliseconds(200)};

TEST(OutputPumpTest, ReaderGetsEverythingInOrderAndTheRestAtDestruction) {
  Pipe pipe;
  std::string sent;
  for (int i = 0; i < 20000; ++i) sent += std::to_string(i) + " ";  // > capacity and pipe
  std::string received;
  std::thread reader([&] { received = ReadAll(pipe.read_end()); });
  {
    absl::StatusOr<std::unique_ptr<OutputPump>> pump = OutputPump::Start(pipe.write_end(), kQuick);
    ASSERT_TRUE(pump.ok()) << pump.status();
    for (size_t at = 0; at < sent.size(); at += 1000) {
      (*pump)->Write(Bytes(sent.substr(at, 1000)));
    }
    EXPECT_EQ((*pump)->dropped_bytes(), 0u);
  }  // flushes
  pipe.CloseWriteEnd();  // EOF for the reader
  reader.join();
  EXPECT_EQ(received, sent);
}

TEST(OutputPumpTest, ReaderThatNeverReadsCostsOneStallThenNothing) {
  Pipe pipe;  // nobody reads: the pipe (64 KiB) and then the pump (4 KiB) fill up
  absl::StatusOr<std::unique_ptr<OutputPump>> pump = OutputPump::Start(pipe.write_end(), kQuick);
  ASSERT_TRUE(pump.ok()) << pump.status();
  const std::string block(1024, 'x');
  const auto start = Clock::now();
  for (int i = 0; i < 1024; ++i) (*pump)->Write(Bytes(block));  // 1 MiB
  const auto took = Clock::now() - start;
  // One wait of stall_timeout when the buffer first fills, none after (not 1024 waits).
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_GT((*pump)->dropped_bytes(), 1024u * 1024 - 64 * 1024 - 4096 - 1024);

  const auto destroy_start = Clock::now();
  pump->reset();  // the writer is blocked in write(): destruction must interrupt it
  EXPECT_LT(Clock::now() - destroy_start, std::chrono::seconds(2));
}

TEST(OutputPumpTest, ClosedReaderDropsOutputWithoutStalling) {
  Pipe pipe;
  pipe.CloseReadEnd();  // writes fail with EPIPE (SIGPIPE is ignored below, as minivmm does)
  std::signal(SIGPIPE, SIG_IGN);
  absl::StatusOr<std::unique_ptr<OutputPump>> pump = OutputPump::Start(pipe.write_end(), kQuick);
  ASSERT_TRUE(pump.ok()) << pump.status();
  const std::string block(1024, 'x');
  const auto start = Clock::now();
  for (int i = 0; i < 64; ++i) (*pump)->Write(Bytes(block));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(WaitForDropped(**pump, 64 * 1024));
}

}  // namespace
}  // namespace minivmm
