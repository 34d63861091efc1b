// One thread per vCPU: KVM_RUN, dispatch of port-I/O and MMIO exits to the buses, and the
// exits that end the VM (power off, reset, errors).
#ifndef MINIVMM_VMM_VCPU_VCPU_THREAD_H_
#define MINIVMM_VMM_VCPU_VCPU_THREAD_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vmm/core/bus.h"
#include "vmm/core/stop_request.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

// Exit reasons counted per vCPU, so the cost of a boot is visible without external tracing.
enum class ExitKind { kIo, kMmio, kHlt, kShutdown, kSystemEvent, kInterrupted, kOther, kCount };

using ExitCounts = std::array<uint64_t, static_cast<size_t>(ExitKind::kCount)>;
std::string FormatExitCounts(const ExitCounts& counts);

class VcpuThread {
 public:
  VcpuThread(std::unique_ptr<KvmVcpu> vcpu, Bus* pio_bus, Bus* mmio_bus, StopRequest* stop);
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;
  ~VcpuThread();  // stops and joins

  void Start();
  // Makes KVM_RUN return (now or before it is next entered); does not wait.
  void RequestStop();
  // Waits for the thread to end; after RequestStop (or a stop request from the VM).
  void Join();
  void StopAndJoin() {
    RequestStop();
    Join();
  }
  // Takes the vCPU out of KVM_RUN and holds it there until Resume. Returns once the vCPU is
  // held, or its thread has ended (the VM is stopping), so the guest runs no instruction after.
  // Before Start: the thread starts held.
  void Pause();
  void Resume();
  KvmVcpu& vcpu() { return *vcpu_; }
  const ExitCounts& exit_counts() const { return exit_counts_; }  // valid after StopAndJoin

 private:
  void Loop();
  void RunUntilStopped();
  // Holds the thread while a pause is requested (and the VM is not stopping).
  void WaitWhilePaused();
  bool HeldOrExited() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return held_ || exited_; }
  bool ResumedOrStopping() const {
    return !pause_requested_.load(std::memory_order_acquire) ||
           stopping_.load(std::memory_order_acquire);
  }
  // Handles one exit; returns false when the VM must stop.
  bool HandleExit();
  // Before a pause holds the thread: lets KVM finish the instruction of the last exit, so the
  // registers a snapshot reads are consistent. Returns false when the VM must stop.
  bool CompletePendingExit();
  void HandleIo(kvm_run* run);
  void HandleMmio(kvm_run* run);
  void LogRegisters();

  std::unique_ptr<KvmVcpu> vcpu_;
  Bus* pio_bus_;
  Bus* mmio_bus_;
  StopRequest* stop_;
  std::atomic<bool> stopping_{false};
  // Read without the lock before each KVM_RUN. Pause sets it before the kick; Resume clears it
  // under mutex_, so a held thread's Await re-checks.
  std::atomic<bool> pause_requested_{false};
  absl::Mutex mutex_;
  bool held_ ABSL_GUARDED_BY(mutex_) = false;
  bool exited_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
  ExitCounts exit_counts_{};
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_VCPU_VCPU_THREAD_H_
