// The console's terminal handling: raw mode on a terminal, Ctrl-A x to quit, Ctrl-A Ctrl-A to
// send a Ctrl-A, and the terminal restored afterwards. Driven through a pseudo-terminal that
// stands in for stdin.
#include "vmm/console.h"

#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace minivmm {
namespace {

class ConsoleOnTerminalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::openpty(&master_, &slave_, nullptr, nullptr, nullptr), 0);
    saved_stdin_ = ::dup(STDIN_FILENO);
    ASSERT_GE(::dup2(slave_, STDIN_FILENO), 0);
  }
  void TearDown() override {
    ::dup2(saved_stdin_, STDIN_FILENO);
    ::close(saved_stdin_);
    ::close(slave_);
    ::close(master_);
  }
  // Types bytes on the terminal and returns what the console hands the guest.
  Console::Input Type(Console& console, const std::string& keys) {
    EXPECT_EQ(::write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
    return console.ReadInput();
  }
  int master_ = -1;
  int slave_ = -1;
  int saved_stdin_ = -1;
};

TEST_F(ConsoleOnTerminalTest, PutsTheTerminalInRawModeAndRestoresIt) {
  termios before;
  ASSERT_EQ(::tcgetattr(STDIN_FILENO, &before), 0);
  ASSERT_TRUE(before.c_lflag & ICANON);
  {
    absl::StatusOr<std::unique_ptr<Console>> console = Console::Create(SerialMode::kStdio, {});
    ASSERT_TRUE(console.ok()) << console.status();
    termios raw;
    ASSERT_EQ(::tcgetattr(STDIN_FILENO, &raw), 0);
    EXPECT_FALSE(raw.c_lflag & ICANON);
    EXPECT_FALSE(raw.c_lflag & ISIG);  // Ctrl-C reaches the guest
  }
  termios after;
  ASSERT_EQ(::tcgetattr(STDIN_FILENO, &after), 0);
  EXPECT_TRUE(after.c_lflag & ICANON);
  EXPECT_TRUE(after.c_lflag & ISIG);
}

TEST_F(ConsoleOnTerminalTest, CtrlAThenXQuitsAndKeepsWhatCameBefore) {
  absl::StatusOr<std::unique_ptr<Console>> console = Console::Create(SerialMode::kStdio, {});
  ASSERT_TRUE(console.ok());
  const Console::Input input = Type(**console, "ls\x01x");
  EXPECT_TRUE(input.quit);
  EXPECT_EQ(input.bytes, "ls");
}

TEST_F(ConsoleOnTerminalTest, CtrlATwiceSendsOneCtrlAAndCtrlCPassesThrough) {
  absl::StatusOr<std::unique_ptr<Console>> console = Console::Create(SerialMode::kStdio, {});
  ASSERT_TRUE(console.ok());
  const Console::Input input = Type(**console,
                                    "a\x01\x01"
                                    "b\x03");
  EXPECT_FALSE(input.quit);
  EXPECT_EQ(input.bytes, std::string("a\x01"
                                     "b\x03"));
}

TEST_F(ConsoleOnTerminalTest, EscapeSplitAcrossReadsStillQuits) {
  absl::StatusOr<std::unique_ptr<Console>> console = Console::Create(SerialMode::kStdio, {});
  ASSERT_TRUE(console.ok());
  EXPECT_FALSE(Type(**console, "\x01").quit);
  EXPECT_TRUE(Type(**console, "x").quit);
}

// A stdout whose reader never reads (a full pipe) must not hold a vCPU writing guest output
// for more than a moment, nor the console's teardown: both would hang the VMM's stop.
TEST(ConsoleOutputTest, StdoutThatIsNeverReadDoesNotBlockWritesOrTeardown) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const int saved_stdout = ::dup(STDOUT_FILENO);
  ASSERT_GE(::dup2(pipe_fds[1], STDOUT_FILENO), 0);
  std::atomic<bool> done{false};
  std::thread guest([&] {
    {
      absl::StatusOr<std::unique_ptr<Console>> console = Console::Create(SerialMode::kStdio, {});
      if (console.ok()) {
        const std::string line(1023, 'x');
        for (int i = 0; i < 1024; ++i) {  // 1 MiB: far beyond the pipe's 64 KiB
          (*console)->Write(
              std::span(reinterpret_cast<const uint8_t*>(line.data()), line.size()));
        }
      }
    }  // the console's teardown counts too
    done.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const bool finished_without_reader = done.load();
  // Only now read, so a console that blocked can finish and the test ends either way.
  std::thread drain([&] {
    char buffer[4096];
    while (::read(pipe_fds[0], buffer, sizeof(buffer)) > 0) {
    }
  });
  guest.join();
  ::dup2(saved_stdout, STDOUT_FILENO);
  ::close(saved_stdout);
  ::close(pipe_fds[1]);  // EOF for the drain
  drain.join();
  ::close(pipe_fds[0]);
  EXPECT_TRUE(finished_without_reader) << "console output blocked on a stdout nobody reads";
}

}  // namespace
}  // namespace minivmm
