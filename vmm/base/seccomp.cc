#include "vmm/base/seccomp.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/base/internal/sysinfo.h"
#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

// The lists, as X-macros so that the names come with the numbers. Each class's list is the
// one below it plus its own calls (see the header for why they nest).

// What any thread of the process does: the C++ runtime (malloc, futex-based locks, thread
// exit; sanitizer builds also tear down a per-thread signal stack), time, logging to stderr,
// eventfd signals, the kick signal's handler, and the calls a thread makes as it starts (its
// creator's filters apply until its own is installed).
#define MINIVMM_SYSCALLS_ANY_THREAD(X)                                                       \
  X(brk) X(clock_gettime) X(clock_nanosleep) X(close) X(exit) X(exit_group) X(fstat)         \
  X(futex) X(getpid) X(getrandom) X(gettid) X(gettimeofday) X(lseek) X(madvise) X(mmap)      \
  X(mprotect) X(mremap) X(munmap) X(nanosleep) X(newfstatat) X(poll) X(ppoll) X(prctl)       \
  X(read) X(restart_syscall) X(rseq) X(rt_sigprocmask) X(rt_sigreturn) X(sched_getaffinity) \
  X(sched_yield) X(set_robust_list) X(sigaltstack) X(tgkill) X(write) X(writev)

// Console output: write and poll only.
#define MINIVMM_SYSCALLS_OUTPUT_WRITER(X) MINIVMM_SYSCALLS_ANY_THREAD(X)

// Device workers: wait on their fds, move bytes between guest memory and the disk file or the
// tap (socket backends too), make writes durable, punch holes for discard, and interrupt the
// guest: an MSI is an eventfd write, but an INTx level is KVM_IRQ_LINE, an ioctl.
#define MINIVMM_SYSCALLS_DEVICE_WORKER(X)                                                     \
  MINIVMM_SYSCALLS_ANY_THREAD(X)                                                              \
  X(epoll_pwait) X(epoll_wait) X(fallocate) X(fdatasync) X(fsync) X(ioctl) X(pread64)         \
  X(preadv) X(preadv2) X(pwrite64) X(pwritev) X(pwritev2) X(readv) X(recvfrom) X(recvmsg)     \
  X(sendmsg) X(sendto)

// vCPUs: KVM_RUN and every ioctl device emulation makes (irqfds, ioeventfds, GSI routes, VFIO
// interrupts and resets, tap offloads), VFIO region accesses, and what starting and stopping a
// device worker takes (eventfd, epoll, a thread, and the worker installing its own filter).
#define MINIVMM_SYSCALLS_VCPU(X)                                                             \
  MINIVMM_SYSCALLS_DEVICE_WORKER(X)                                                          \
  X(clone) X(clone3) X(dup) X(epoll_create1) X(epoll_ctl) X(eventfd2) X(fcntl)               \
  X(rt_sigaction) X(seccomp)

// The main thread: everything a boot and a reboot need (KVM and VFIO set-up, guest memory,
// pinning, sysfs), the API socket, signals, console input, snapshots, the connection of an
// outgoing migration (socket, connect; a TCP host name is looked up here too), and teardown.
#define MINIVMM_SYSCALLS_MAIN(X)                                                              \
  MINIVMM_SYSCALLS_VCPU(X)                                                                    \
  X(accept) X(accept4) X(access) X(connect) X(dup2) X(dup3) X(faccessat) X(faccessat2)        \
  X(fadvise64) X(flock) X(ftruncate) X(getcwd) X(getdents64) X(getegid) X(geteuid) X(getgid) \
  X(getpeername) X(getrlimit) X(getsockname) X(getsockopt) X(getuid) X(kill) X(lstat)        \
  X(memfd_create) X(mkdir) X(mkdirat) X(mlock) X(mlock2) X(munlock) X(open) X(openat)        \
  X(pipe2) X(prlimit64) X(readlink) X(readlinkat) X(rename) X(renameat) X(renameat2)         \
  X(rmdir) X(sendmmsg) X(setsockopt) X(shutdown) X(signalfd4) X(socket) X(stat) X(statfs)    \
  X(fstatfs)                                                                                  \
  X(statx) X(sysinfo) X(timerfd_create) X(timerfd_settime) X(tkill) X(umask) X(uname)        \
  X(unlink) X(unlinkat) X(wait4)

// Named in reports though no list has them: what a compromised device model would try.
#define MINIVMM_SYSCALLS_NAMED_ONLY(X)                                                    \
  X(bind) X(bpf) X(chmod) X(chown) X(execve) X(execveat) X(fork) X(init_module) X(kexec_load) \
  X(listen) X(mount) X(ptrace) X(setns) X(unshare) X(vfork)

#define MINIVMM_SYSCALL_NUMBER(name) SYS_##name,
#define MINIVMM_SYSCALL_ENTRY(name) {SYS_##name, #name},

struct NamedSyscall {
  int number;
  const char* name;
};

std::vector<int> Sorted(std::initializer_list<int> numbers) {
  std::vector<int> sorted(numbers);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  return sorted;
}

const std::vector<int>& List(ThreadClass thread_class) {
  static const std::vector<int> main = Sorted({MINIVMM_SYSCALLS_MAIN(MINIVMM_SYSCALL_NUMBER)});
  static const std::vector<int> vcpu = Sorted({MINIVMM_SYSCALLS_VCPU(MINIVMM_SYSCALL_NUMBER)});
  static const std::vector<int> worker =
      Sorted({MINIVMM_SYSCALLS_DEVICE_WORKER(MINIVMM_SYSCALL_NUMBER)});
  static const std::vector<int> writer =
      Sorted({MINIVMM_SYSCALLS_OUTPUT_WRITER(MINIVMM_SYSCALL_NUMBER)});
  switch (thread_class) {
    case ThreadClass::kMain:
      return main;
    case ThreadClass::kVcpu:
      return vcpu;
    case ThreadClass::kDeviceWorker:
      return worker;
    case ThreadClass::kOutputWriter:
      break;
  }
  return writer;
}

constexpr int kMainNumbers[] = {MINIVMM_SYSCALLS_MAIN(MINIVMM_SYSCALL_NUMBER)};
static_assert(std::size(kMainNumbers) < 255, "a BPF jump offset is 8 bits: split the list");

constexpr NamedSyscall kNames[] = {MINIVMM_SYSCALLS_MAIN(MINIVMM_SYSCALL_ENTRY)
                                       MINIVMM_SYSCALLS_NAMED_ONLY(MINIVMM_SYSCALL_ENTRY)};

std::atomic<bool> g_enabled{false};
// The calling thread's class, for the SIGSYS report (initial-exec TLS: safe in a handler).
thread_local ThreadClass t_thread_class = ThreadClass::kMain;

// Async-signal-safe: formats into a stack buffer and writes it with one write().
void OnSeccompViolation(int /*signal*/, siginfo_t* info, void* /*context*/) {
  char line[192];
  size_t at = 0;
  auto append = [&](std::string_view text) {
    const size_t n = std::min(text.size(), sizeof(line) - at);
    std::memcpy(line + at, text.data(), n);
    at += n;
  };
  auto append_number = [&](unsigned value) {
    char digits[12];
    size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0 && n < sizeof(digits));
    while (n > 0 && at < sizeof(line)) line[at++] = digits[--n];
  };
  append("minivmm: error: seccomp: a ");
  append(ThreadClassName(t_thread_class));
  append(" thread made system call ");
  append(SyscallName(info->si_syscall));
  append(" (");
  append_number(static_cast<unsigned>(info->si_syscall));
  append("), which its allow-list does not have; stopping (run with --seccomp=off to debug, "
         "and report it)\n");
  (void)!::write(STDERR_FILENO, line, at);
  ::syscall(SYS_exit_group, kExitSeccompViolation);
}

}  // namespace

std::string_view ThreadClassName(ThreadClass thread_class) {
  switch (thread_class) {
    case ThreadClass::kMain:
      return "main";
    case ThreadClass::kVcpu:
      return "vCPU";
    case ThreadClass::kDeviceWorker:
      return "device worker";
    case ThreadClass::kOutputWriter:
      break;
  }
  return "console output";
}

void SetSeccompEnabled(bool enabled) {
  if (enabled) {
    // Libraries read some host facts lazily, from files, the first time they need them:
    // Abseil's spinlocks the CPU count (from /sys/devices/system/cpu/online, on their first
    // contention, on any thread) and its cycle clock the CPU frequency. Read them now, while
    // every thread may still open files.
    (void)absl::base_internal::NumCPUs();
    (void)absl::base_internal::NominalCPUFrequency();
    (void)std::thread::hardware_concurrency();
    struct sigaction action {};
    action.sa_sigaction = OnSeccompViolation;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &action, nullptr);
  }
  g_enabled.store(enabled);
}

bool SeccompEnabled() { return g_enabled.load(); }

absl::Status EnterThreadClass(ThreadClass thread_class) {
  t_thread_class = thread_class;
  if (!g_enabled.load()) return absl::OkStatus();
  const std::vector<int>& allowed = List(thread_class);
  std::vector<sock_filter> program = {
      // Another architecture's calling convention would give the numbers other meanings.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
  };
  // One comparison per allowed call; the list is short enough that a linear scan is cheaper
  // than anything the guest can make a vCPU do between calls.
  for (size_t i = 0; i < allowed.size(); ++i) {
    const auto to_allow = static_cast<uint8_t>(allowed.size() - i);  // jump to the ALLOW
    program.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(allowed[i]),
                               to_allow, 0));
  }
  program.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
  program.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));

  // Required to install a filter without CAP_SYS_ADMIN, and right for a VMM in any case.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return ErrnoError("prctl(NO_NEW_PRIVS)");
  const sock_fprog fprog = {.len = static_cast<unsigned short>(program.size()),
                            .filter = program.data()};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
    return ErrnoError(absl::StrFormat(
        "seccomp: installing the %s thread's filter (run with --seccomp=off on a kernel "
        "without seccomp filters)",
        ThreadClassName(thread_class)));
  }
  return absl::OkStatus();
}

std::span<const int> AllowedSyscalls(ThreadClass thread_class) { return List(thread_class); }

std::string_view SyscallName(int number) {
  for (const NamedSyscall& named : kNames) {
    if (named.number == number) return named.name;
  }
  return "?";
}

}  // namespace minivmm
