// seccomp-bpf allow-lists by thread class, as Firecracker and Cloud Hypervisor install them: a
// guest that finds a bug in a device model gets a thread that can make only the system calls
// its class needs (a device worker cannot open files or sockets, a vCPU cannot exec).
//
// Each thread installs its class's filter as it starts; the main thread installs its own
// before the guest first runs. A thread's filters also bind the threads it starts afterwards
// (the kernel stacks them), so the lists nest: a vCPU starts device workers, so the vCPU list
// holds the worker list; the main thread starts vCPUs, so its list holds the vCPU list.
//
// A call outside the list ends minivmm at once (SECCOMP_RET_TRAP, then a SIGSYS handler writes
// one line naming the thread class and the call and exits with kExitSeccompViolation), so a
// missing entry shows as a clear message rather than a silent EPERM. `--seccomp=off` turns the
// filters off for debugging.
//
// Only system call numbers are filtered, not arguments: ioctl is allowed to the threads that
// drive KVM, VFIO and taps, and to device workers for KVM_IRQ_LINE. (Firecracker filters ioctl
// numbers too; see the README.)
#ifndef MINIVMM_VMM_BASE_SECCOMP_H_
#define MINIVMM_VMM_BASE_SECCOMP_H_

#include <span>
#include <string_view>

#include "absl/status/status.h"

namespace minivmm {

// 128 + SIGSYS, the code a shell shows for a process the kernel killed for a system call.
inline constexpr int kExitSeccompViolation = 159;

enum class ThreadClass {
  kMain,          // start-up, the event loop (API socket, signals, console input), reboots
  kVcpu,          // KVM_RUN and the device emulation it calls into
  kDeviceWorker,  // virtio queue work: guest memory, the disk file, the tap
  kOutputWriter,  // copies guest console output to stdout or the serial log
};
std::string_view ThreadClassName(ThreadClass thread_class);

// Turns the filters on (the default for a VM run) or off, before any thread of the VM starts.
// On also installs the SIGSYS handler that reports a violation.
void SetSeccompEnabled(bool enabled);
bool SeccompEnabled();

// Installs `thread_class`'s filter on the calling thread when seccomp is on; does nothing when
// it is off. Fails if the kernel refuses the filter.
absl::Status EnterThreadClass(ThreadClass thread_class);

// The system calls a class may make, sorted (for tests and the README).
std::span<const int> AllowedSyscalls(ThreadClass thread_class);

// The name of a system call number, or "?" for one minivmm never names.
std::string_view SyscallName(int number);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_SECCOMP_H_
