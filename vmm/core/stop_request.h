// Why and when a VM stops. Devices (ACPI power off, i8042 reset), vCPU threads (errors, triple
// fault) and signal handling all report here; the first report wins and wakes the main loop.
#ifndef MINIVMM_VMM_CORE_STOP_REQUEST_H_
#define MINIVMM_VMM_CORE_STOP_REQUEST_H_

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vmm/base/event_fd.h"

namespace minivmm {

enum class StopReason {
  kPowerOff,     // the guest powered off (ACPI S5)
  kReset,        // the guest rebooted (i8042 reset, triple fault, KVM system reset)
  kSignal,       // SIGINT/SIGTERM/SIGHUP to minivmm
  kUserQuit,     // the console escape (Ctrl-A x)
  kApiReboot,    // vm.reboot on the API socket: boot again
  kApiShutdown,  // vm.shutdown on the API socket
  kMigrated,     // vm.migrate succeeded: the guest runs on the destination
  kError,        // a VMM failure; see error()
};

class StopRequest {
 public:
  static absl::StatusOr<std::unique_ptr<StopRequest>> Create();
  StopRequest(const StopRequest&) = delete;
  StopRequest& operator=(const StopRequest&) = delete;

  // Records the first request and signals event_fd(); later requests are ignored.
  void Request(StopReason reason, absl::Status error = absl::OkStatus(), int signal = 0);

  bool requested() const { return requested_.load(std::memory_order_acquire); }
  StopReason reason() const;
  absl::Status error() const;
  int signal() const;
  // Becomes readable once a stop was requested.
  int event_fd() const { return event_.fd(); }

 private:
  explicit StopRequest(EventFd event) : event_(std::move(event)) {}

  EventFd event_;
  std::atomic<bool> requested_{false};
  mutable absl::Mutex mutex_;
  StopReason reason_ ABSL_GUARDED_BY(mutex_) = StopReason::kError;
  absl::Status error_ ABSL_GUARDED_BY(mutex_);
  int signal_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_STOP_REQUEST_H_
