// One thread per vCPU: KVM_RUN, dispatch of port-I/O and MMIO exits to the buses, and the
// exits that end the VM (power off, reset, errors).
#ifndef MINIVMM_VMM_VCPU_THREAD_H_
#define MINIVMM_VMM_VCPU_THREAD_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "vmm/bus.h"
#include "vmm/kvm.h"
#include "vmm/stop_request.h"

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

  // Installs the (empty) signal handler used to kick vCPUs out of KVM_RUN. Call once.
  static void InstallKickSignalHandler();

  void Start();
  // Makes KVM_RUN return (now or before it is next entered) and joins the thread.
  void StopAndJoin();
  KvmVcpu& vcpu() { return *vcpu_; }
  const ExitCounts& exit_counts() const { return exit_counts_; }  // valid after StopAndJoin

 private:
  void Loop();
  // Handles one exit; returns false when the VM must stop.
  bool HandleExit();
  void HandleIo(kvm_run* run);
  void HandleMmio(kvm_run* run);
  void LogRegisters();

  std::unique_ptr<KvmVcpu> vcpu_;
  Bus* pio_bus_;
  Bus* mmio_bus_;
  StopRequest* stop_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  ExitCounts exit_counts_{};
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_VCPU_THREAD_H_
