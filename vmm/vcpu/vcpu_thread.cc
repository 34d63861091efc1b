#include "vmm/vcpu/vcpu_thread.h"

#include <pthread.h>
#include <signal.h>

#include "absl/strings/str_format.h"
#include "vmm/base/log.h"
#include "vmm/base/seccomp.h"
#include "vmm/base/thread_kick.h"

namespace minivmm {
namespace {

constexpr const char* kExitKindNames[] = {"io",           "mmio",        "hlt",  "shutdown",
                                          "system_event", "interrupted", "other"};

}  // namespace

std::string FormatExitCounts(const ExitCounts& counts) {
  std::string out;
  for (size_t i = 0; i < counts.size(); ++i) {
    absl::StrAppendFormat(&out, "%s%s=%d", i ? " " : "", kExitKindNames[i], counts[i]);
  }
  return out;
}

VcpuThread::VcpuThread(std::unique_ptr<KvmVcpu> vcpu, Bus* pio_bus, Bus* mmio_bus,
                       StopRequest* stop)
    : vcpu_(std::move(vcpu)), pio_bus_(pio_bus), mmio_bus_(mmio_bus), stop_(stop) {}

VcpuThread::~VcpuThread() { StopAndJoin(); }


void VcpuThread::Start() {
  InstallThreadKickHandler();  // once per process: RequestStop and Pause kick with it
  thread_ = std::thread([this] { Loop(); });
}

void VcpuThread::RequestStop() {
  if (!thread_.joinable()) return;
  {
    // Under the lock, so a thread held by Pause sees it and ends.
    absl::MutexLock lock(&mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  // immediate_exit covers the window between the thread's last check and KVM_RUN; the signal
  // interrupts a KVM_RUN already in progress (api.rst, "immediate_exit").
  vcpu_->run()->immediate_exit = 1;
  KickThread(thread_.native_handle());
}

void VcpuThread::Join() {
  if (!thread_.joinable()) return;
  thread_.join();
  if (LogEnabled(LogLevel::kDebug)) LogRegisters();
}

void VcpuThread::LogRegisters() {
  absl::StatusOr<kvm_regs> regs = vcpu_->GetRegs();
  absl::StatusOr<kvm_sregs> sregs = vcpu_->GetSregs();
  if (!regs.ok() || !sregs.ok()) return;
  Log(LogLevel::kDebug, "vCPU %d stopped at rip=%#x rsp=%#x cr0=%#x cr3=%#x cr4=%#x efer=%#x",
      vcpu_->id(), regs->rip, regs->rsp, sregs->cr0, sregs->cr3, sregs->cr4, sregs->efer);
}

void VcpuThread::Pause() {
  pause_requested_.store(true, std::memory_order_release);
  // Not started yet (a restore with --paused): the thread holds itself before its first
  // KVM_RUN.
  if (!thread_.joinable()) return;
  // As in StopAndJoin: immediate_exit for a thread about to enter KVM_RUN, the signal for one
  // inside it.
  vcpu_->run()->immediate_exit = 1;
  KickThread(thread_.native_handle());
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(this, &VcpuThread::HeldOrExited));
}

void VcpuThread::Resume() {
  absl::MutexLock lock(&mutex_);
  pause_requested_.store(false, std::memory_order_release);
}

void VcpuThread::WaitWhilePaused() {
  absl::MutexLock lock(&mutex_);
  held_ = true;
  mutex_.Await(absl::Condition(this, &VcpuThread::ResumedOrStopping));
  held_ = false;
  // Pause set immediate_exit; KVM_RUN must run the guest again. A stop sets it anew after
  // taking the lock, so clearing it here cannot lose a stop.
  if (!stopping_.load(std::memory_order_acquire)) vcpu_->run()->immediate_exit = 0;
}

void VcpuThread::Loop() {
  if (absl::Status entered = EnterThreadClass(ThreadClass::kVcpu); !entered.ok()) {
    stop_->Request(StopReason::kError, entered);
  } else {
    RunUntilStopped();
  }
  absl::MutexLock lock(&mutex_);
  exited_ = true;
}

void VcpuThread::RunUntilStopped() {
  while (!stopping_.load(std::memory_order_acquire) && !stop_->requested()) {
    if (pause_requested_.load(std::memory_order_acquire)) {
      if (!CompletePendingExit()) return;
      WaitWhilePaused();
      continue;
    }
    absl::Status status = vcpu_->Run();
    if (absl::IsCancelled(status)) {
      ++exit_counts_[static_cast<size_t>(ExitKind::kInterrupted)];
      continue;
    }
    if (!status.ok()) {
      stop_->Request(StopReason::kError, status);
      return;
    }
    if (!HandleExit()) return;
  }
}

bool VcpuThread::CompletePendingExit() {
  // An I/O or MMIO exit is complete only after the next KVM_RUN (api.rst, "immediate_exit":
  // the data of an IN goes into RAX then); with immediate_exit set, KVM_RUN finishes it and
  // returns at once. A string instruction may exit again; a few rounds finish it.
  constexpr int kMaxRounds = 16;
  for (int round = 0; round < kMaxRounds; ++round) {
    vcpu_->run()->immediate_exit = 1;
    absl::Status status = vcpu_->Run();
    if (absl::IsCancelled(status)) return true;  // nothing (more) pending
    if (!status.ok()) {
      stop_->Request(StopReason::kError, status);
      return false;
    }
    if (!HandleExit()) return false;
  }
  return true;
}

bool VcpuThread::HandleExit() {
  kvm_run* run = vcpu_->run();
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      ++exit_counts_[static_cast<size_t>(ExitKind::kIo)];
      HandleIo(run);
      return true;
    case KVM_EXIT_MMIO:
      ++exit_counts_[static_cast<size_t>(ExitKind::kMmio)];
      HandleMmio(run);
      return true;
    case KVM_EXIT_HLT:
      // With the in-kernel LAPIC, HLT is handled by KVM; an HLT exit means the vCPU halted
      // with interrupts off for good.
      ++exit_counts_[static_cast<size_t>(ExitKind::kHlt)];
      Log(LogLevel::kInfo, "vCPU %d halted", vcpu_->id());
      return false;
    case KVM_EXIT_SHUTDOWN:
      // Triple fault: what a PC does is reset, and Linux uses it as a last-resort reboot.
      ++exit_counts_[static_cast<size_t>(ExitKind::kShutdown)];
      stop_->Request(StopReason::kReset);
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      ++exit_counts_[static_cast<size_t>(ExitKind::kSystemEvent)];
      stop_->Request(run->system_event.type == KVM_SYSTEM_EVENT_RESET ? StopReason::kReset
                                                                      : StopReason::kPowerOff);
      return false;
    case KVM_EXIT_INTR:
      ++exit_counts_[static_cast<size_t>(ExitKind::kInterrupted)];
      return true;
    case KVM_EXIT_FAIL_ENTRY:
      stop_->Request(StopReason::kError,
                     absl::InternalError(absl::StrFormat(
                         "vCPU %d: KVM_EXIT_FAIL_ENTRY, hardware reason %#x", vcpu_->id(),
                         run->fail_entry.hardware_entry_failure_reason)));
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      stop_->Request(StopReason::kError,
                     absl::InternalError(absl::StrFormat("vCPU %d: KVM internal error, suberror %d",
                                                         vcpu_->id(), run->internal.suberror)));
      return false;
    default:
      ++exit_counts_[static_cast<size_t>(ExitKind::kOther)];
      stop_->Request(StopReason::kError,
                     absl::InternalError(absl::StrFormat("vCPU %d: unexpected KVM exit reason %d",
                                                         vcpu_->id(), run->exit_reason)));
      return false;
  }
}

void VcpuThread::HandleIo(kvm_run* run) {
  // The data lives inside the kvm_run page at data_offset; string I/O (rep ins/outs) carries
  // `count` items back to back.
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  const uint16_t port = run->io.port;
  const size_t size = run->io.size;
  for (uint32_t i = 0; i < run->io.count; ++i, data += size) {
    std::span<uint8_t> bytes(data, size);
    const bool handled = run->io.direction == KVM_EXIT_IO_OUT ? pio_bus_->Write(port, bytes)
                                                              : pio_bus_->Read(port, bytes);
    // Guests probe ports that nothing decodes (PCI config, a second UART, ...); that is
    // normal, so it is only visible at debug level, and only the first few times.
    if (!handled && LogEnabled(LogLevel::kDebug)) {
      static LogBudget budget(200);
      if (budget.Take()) {
        Log(LogLevel::kDebug, "vCPU %d: %s of %d bytes at unhandled port %#x", vcpu_->id(),
            run->io.direction == KVM_EXIT_IO_OUT ? "write" : "read", size, port);
      }
    }
  }
}

void VcpuThread::HandleMmio(kvm_run* run) {
  const size_t size = std::min<size_t>(run->mmio.len, sizeof(run->mmio.data));
  std::span<uint8_t> bytes(run->mmio.data, size);
  bool handled = run->mmio.is_write ? mmio_bus_->Write(run->mmio.phys_addr, bytes)
                                    : mmio_bus_->Read(run->mmio.phys_addr, bytes);
  if (!handled) {
    MINIVMM_LOG_GUEST_ERROR("vCPU %d: %s of %d bytes at unmapped MMIO address %#x", vcpu_->id(),
                            run->mmio.is_write ? "write" : "read", size, run->mmio.phys_addr);
  }
}

}  // namespace minivmm
