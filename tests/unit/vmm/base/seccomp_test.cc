// seccomp allow-lists: each thread class is refused a system call outside its list (the process
// ends with kExitSeccompViolation and one line naming the class and the call), keeps the calls
// on it, and the lists nest as the thread tree requires. Each case runs in a forked child, since
// a filter cannot be removed and a violation ends the process.
#include "vmm/base/seccomp.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

struct ChildResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string stderr_text;
};

// Runs `body` in a child whose stderr is captured; the child exits 0 when body returns.
ChildResult RunInChild(const std::function<void()>& body) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDERR_FILENO);
    body();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  ChildResult result;
  char buffer[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) {
    result.stderr_text.append(buffer, n);
  }
  ::close(pipe_fds[0]);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

void Enter(ThreadClass thread_class) {
  SetSeccompEnabled(true);
  if (!EnterThreadClass(thread_class).ok()) ::_exit(2);
}

TEST(SeccompTest, DeviceWorkerIsRefusedASocket) {
  const ChildResult child = RunInChild([] {
    Enter(ThreadClass::kDeviceWorker);
    ::syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
  });
  EXPECT_EQ(child.exit_code, kExitSeccompViolation);
  EXPECT_THAT(child.stderr_text, HasSubstr("a device worker thread made system call socket"));
  EXPECT_THAT(child.stderr_text, HasSubstr("--seccomp=off"));
}

TEST(SeccompTest, DeviceWorkerIsRefusedOpeningAFile) {
  const ChildResult child = RunInChild([] {
    Enter(ThreadClass::kDeviceWorker);
    ::syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY);
  });
  EXPECT_EQ(child.exit_code, kExitSeccompViolation);
  EXPECT_THAT(child.stderr_text, HasSubstr("device worker thread made system call openat"));
}

TEST(SeccompTest, VcpuIsRefusedExec) {
  const ChildResult child = RunInChild([] {
    Enter(ThreadClass::kVcpu);
    ::syscall(SYS_execve, "/bin/true", nullptr, nullptr);
  });
  EXPECT_EQ(child.exit_code, kExitSeccompViolation);
  EXPECT_THAT(child.stderr_text, HasSubstr("a vCPU thread made system call execve"));
}

TEST(SeccompTest, ConsoleOutputWriterIsRefusedAnIoctl) {
  const ChildResult child = RunInChild([] {
    Enter(ThreadClass::kOutputWriter);
    ::syscall(SYS_ioctl, STDERR_FILENO, 0, 0);
  });
  EXPECT_EQ(child.exit_code, kExitSeccompViolation);
  EXPECT_THAT(child.stderr_text, HasSubstr("console output thread made system call ioctl"));
}

TEST(SeccompTest, MainThreadIsRefusedPtrace) {
  const ChildResult child = RunInChild([] {
    Enter(ThreadClass::kMain);
    ::syscall(SYS_ptrace, 0, 0, 0, 0);
  });
  EXPECT_EQ(child.exit_code, kExitSeccompViolation);
  EXPECT_THAT(child.stderr_text, HasSubstr("a main thread made system call ptrace"));
}

TEST(SeccompTest, AllowedCallsStillWork) {
  const ChildResult child = RunInChild([] {
    Enter(ThreadClass::kDeviceWorker);
    if (::syscall(SYS_getpid) <= 0) ::_exit(4);
    if (::write(STDERR_FILENO, "ok\n", 3) != 3) ::_exit(3);
  });
  EXPECT_EQ(child.exit_code, 0);
  EXPECT_EQ(child.stderr_text, "ok\n");
}

TEST(SeccompTest, OffInstallsNothing) {
  const ChildResult child = RunInChild([] {
    SetSeccompEnabled(false);
    if (!EnterThreadClass(ThreadClass::kDeviceWorker).ok()) ::_exit(2);
    const int fd = static_cast<int>(::syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
    ::_exit(fd >= 0 ? 0 : 5);
  });
  EXPECT_EQ(child.exit_code, 0);
}

// A thread's filters bind the threads it starts: main starts vCPUs, vCPUs start device
// workers, so each list must hold the next.
TEST(SeccompTest, ListsNestAsThreadsStartEachOther) {
  auto contains = [](ThreadClass outer, ThreadClass inner) {
    const std::span<const int> big = AllowedSyscalls(outer);
    const std::span<const int> small = AllowedSyscalls(inner);
    return std::includes(big.begin(), big.end(), small.begin(), small.end());
  };
  EXPECT_TRUE(contains(ThreadClass::kMain, ThreadClass::kVcpu));
  EXPECT_TRUE(contains(ThreadClass::kVcpu, ThreadClass::kDeviceWorker));
  EXPECT_TRUE(contains(ThreadClass::kDeviceWorker, ThreadClass::kOutputWriter));
  EXPECT_EQ(SyscallName(SYS_ioctl), "ioctl");
}

}  // namespace
}  // namespace minivmm
