#include "vmm/run_vm.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <string>

#include "vmm/api/api_server.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/event_loop.h"
#include "vmm/base/exit_codes.h"
#include "vmm/base/log.h"
#include "vmm/boot/boot_images.h"
#include "vmm/base/seccomp.h"
#include "vmm/console.h"
#include "vmm/migration_source.h"
#include "vmm/mobility_blockers.h"
#include "vmm/vm.h"

namespace minivmm {
namespace {

// SIGINT/SIGTERM/SIGHUP are blocked in every thread and read from a signalfd by the main loop,
// so teardown always runs on the main thread with the vCPUs joined.
absl::StatusOr<UniqueFd> BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return ErrnoError("pthread_sigmask");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd.valid()) return ErrnoError("signalfd");
  return fd;
}

// The API's view of the VM: whichever boot is current (a reboot replaces the Vm).
class CurrentVmControl : public VmControl {
 public:
  explicit CurrentVmControl(const VmConfig& config)
      : config_(config), blockers_(FindMobilityBlockers(config)) {}

  void SetBackends(const HostBackends* backends) { backends_ = backends; }

  void SetCurrent(Vm* vm, StopRequest* stop, int boot) {
    vm_ = vm;
    stop_ = stop;
    boot_ = boot;
  }

  api::VmInfo Info() override {
    api::VmInfo info;
    info.set_name(config_.name);
    info.set_state(vm_ != nullptr && vm_->paused() ? "paused" : "running");
    info.set_vcpus(config_.vcpus);
    info.set_memory_mib(config_.memory_mib);
    // What this boot actually pinned (the full-reservation rule: all of it, with passthrough).
    const uint64_t pinned = vm_ != nullptr ? vm_->pinned_bytes() : 0;
    info.mutable_reservation()->set_pinned(pinned != 0);
    info.mutable_reservation()->set_reserved_mib(pinned >> 20);
    for (const PassthroughConfig& function : config_.passthrough) {
      info.add_passthrough()->set_host_address(function.address);
    }
    info.set_boot(boot_);
    for (const MobilityBlocker& blocker : blockers_) {
      api::Blocker* entry = info.add_blockers();
      entry->set_function(blocker.function);
      entry->set_reason(blocker.reason);
    }
    if (vm_ != nullptr) {
      if (std::optional<absl::Duration> init = vm_->InitStartedAfter()) {
        info.set_init_started_after_s(absl::ToDoubleSeconds(*init));
      }
    }
    return info;
  }
  absl::Status Pause() override {
    if (vm_->paused()) return absl::FailedPreconditionError("the VM is already paused");
    vm_->Pause();
    Log(LogLevel::kInfo, "paused through the API");
    return absl::OkStatus();
  }
  absl::Status Resume() override {
    if (!vm_->paused()) return absl::FailedPreconditionError("the VM is not paused");
    vm_->Resume();
    Log(LogLevel::kInfo, "resumed through the API");
    return absl::OkStatus();
  }
  absl::Status Reboot() override {
    stop_->Request(StopReason::kApiReboot);
    return absl::OkStatus();
  }
  absl::Status Shutdown() override {
    stop_->Request(StopReason::kApiShutdown);
    return absl::OkStatus();
  }
  absl::Status Migrate(const api::MigrateRequest& request) override {
    MINIVMM_RETURN_IF_ERROR(RefuseIfBlocked("migrate", blockers_));
    MINIVMM_ASSIGN_OR_RETURN(const MigrationAddress address,
                             ParseMigrationAddress(request.destination()));
    MigrationLimits limits;
    if (request.downtime_limit_ms() != 0) {
      limits.downtime_target = absl::Milliseconds(request.downtime_limit_ms());
    }
    if (request.timeout_s() != 0) limits.time_limit = absl::Seconds(request.timeout_s());
    MINIVMM_RETURN_IF_ERROR(MigrateVm(*vm_, config_, *backends_, address, limits));
    migrated_to_ = address.text;
    stop_->Request(StopReason::kMigrated);
    return absl::OkStatus();
  }
  const std::string& migrated_to() const { return migrated_to_; }
  absl::Status Snapshot(const std::string& destination) override {
    // Before anything is touched: the VM keeps running as it was.
    MINIVMM_RETURN_IF_ERROR(RefuseIfBlocked("snapshot", blockers_));
    return WriteSnapshot(*vm_, config_, *backends_, destination);
  }

 private:
  const VmConfig& config_;
  const std::vector<MobilityBlocker> blockers_;
  const HostBackends* backends_ = nullptr;
  std::string migrated_to_;
  Vm* vm_ = nullptr;
  StopRequest* stop_ = nullptr;
  int boot_ = 0;
};

// Runs one boot of the guest until something requests a stop. The loop outlives the boot: the
// API socket and signals stay watched across reboots.
absl::StatusOr<StopReason> RunOneBoot(Vm& vm, StopRequest& stop, Console& console,
                                      EventLoop* loop) {
  MINIVMM_RETURN_IF_ERROR(loop->Watch(stop.event_fd(), [] {}));
  // Input the UART's FIFO could not take yet; retried while the guest drains the FIFO.
  std::string pending_input;
  if (console.input_fd() >= 0) {
    const int input_fd = console.input_fd();
    absl::Status watched = loop->Watch(input_fd, [&, input_fd] {
      Console::Input input = console.ReadInput();
      if (input.quit) stop.Request(StopReason::kUserQuit);
      if (input.eof) loop->Unwatch(input_fd);
      pending_input += input.bytes;
    });
    // epoll refuses regular files and /dev/null (EPERM): such stdin has nothing to type.
    if (!watched.ok() && !absl::IsPermissionDenied(watched)) return watched;
  }
  vm.Start();
  while (!stop.requested()) {
    if (!pending_input.empty()) {
      const size_t taken = vm.SendConsoleInput(
          std::span(reinterpret_cast<const uint8_t*>(pending_input.data()), pending_input.size()));
      pending_input.erase(0, taken);
    }
    // Poll briefly while input waits for FIFO space; otherwise sleep until an event.
    MINIVMM_RETURN_IF_ERROR(loop->RunOnce(pending_input.empty() ? -1 : 10));
  }
  loop->Unwatch(stop.event_fd());
  if (console.input_fd() >= 0) loop->Unwatch(console.input_fd());
  vm.Stop();
  const std::optional<absl::Duration> init = vm.InitStartedAfter();
  Log(LogLevel::kInfo, "vCPU exits: %s; boot marker %s", FormatExitCounts(vm.TotalExitCounts()),
      init ? absl::StrFormat("at %.3f s", absl::ToDoubleSeconds(*init)) : "not seen");
  return stop.reason();
}

}  // namespace

absl::StatusOr<int> RunVm(const VmConfig& config, const RunOptions& options) {
  const absl::Time vmm_start = options.vmm_start;
  // Before any thread starts: each installs its class's filter as it begins.
  SetSeccompEnabled(options.seccomp);
  // Everything the user can get wrong (a socket in use, the files) is checked before KVM is
  // opened. The API is served only while a boot runs, so no request sees a half-built VM.
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<EventLoop> loop, EventLoop::Create());
  CurrentVmControl control(config);
  std::unique_ptr<ApiServer> api;
  if (!options.api_socket.empty()) {
    MINIVMM_ASSIGN_OR_RETURN(api, ApiServer::Create(options.api_socket, loop.get(), &control));
  }
  // The kernel cache is optional: without a usable cache directory the guest decompresses.
  absl::StatusOr<KernelCache> cache = KernelCache::ForCurrentUser();
  MINIVMM_ASSIGN_OR_RETURN(BootImages images,
                           LoadBootImages(config, cache.ok() ? &*cache : nullptr));
  Log(LogLevel::kDebug, "boot images ready %.3f s after start",
      absl::ToDoubleSeconds(absl::Now() - vmm_start));
  MINIVMM_ASSIGN_OR_RETURN(HostBackends backends, OpenHostBackends(config));
  control.SetBackends(&backends);
  MINIVMM_ASSIGN_OR_RETURN(KvmSystem kvm, KvmSystem::Open());
  // Before any thread starts (the console's output thread is the first): threads inherit the
  // mask, so SIGTERM and friends reach the signalfd, not a thread that would die of them.
  MINIVMM_ASSIGN_OR_RETURN(UniqueFd signal_fd, BlockTerminationSignals());
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<Console> console,
                           Console::Create(config.serial_mode, config.serial_path));
  // Signals stop whichever boot is current.
  StopRequest* current_stop = nullptr;
  MINIVMM_RETURN_IF_ERROR(loop->Watch(signal_fd.get(), [&] {
    signalfd_siginfo info;
    if (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info) && current_stop != nullptr) {
      current_stop->Request(StopReason::kSignal, absl::OkStatus(),
                            static_cast<int>(info.ssi_signo));
    }
  }));
  if (api != nullptr) {
    Log(LogLevel::kInfo, "API socket %s (minivmm ctl --api_socket %s info)",
        options.api_socket.string(), options.api_socket.string());
  }
  // Set-up is done (files, sockets, KVM); from here the main thread only runs boots and the
  // event loop, under its own allow-list, before the guest's first instruction.
  MINIVMM_RETURN_IF_ERROR(EnterThreadClass(ThreadClass::kMain));
  if (!options.seccomp) Log(LogLevel::kWarning, "seccomp filters are off (--seccomp=off)");

  for (int boot = 1;; ++boot) {
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<StopRequest> stop, StopRequest::Create());
    current_stop = stop.get();
    // The first boot of `--restore` continues the snapshot, that of `--incoming` the migrated
    // guest; a reboot after either boots afresh.
    const bool restoring = boot == 1 && options.restore != nullptr;
    const bool receiving = boot == 1 && options.incoming != nullptr;
    MINIVMM_ASSIGN_OR_RETURN(
        std::unique_ptr<Vm> vm,
        receiving   ? ReceiveMigration(*options.incoming, kvm, backends, console.get(),
                                       stop.get(), vmm_start)
        : restoring ? Vm::Restore(kvm, config, backends, console.get(), stop.get(), vmm_start,
                                  options.restore->state, options.restore->memory_file)
                    : Vm::Create(kvm, config, images, backends, console.get(), stop.get(),
                                 vmm_start));
    if (receiving) {
      // The source lets go of the guest on this word; the vCPUs start right after.
      if (absl::Status confirmed = ConfirmMigration(*options.incoming); !confirmed.ok()) {
        return absl::Status(confirmed.code(),
                            absl::StrFormat("incoming migration: the source did not hear that "
                                            "the guest runs here: %s",
                                            confirmed.message()));
      }
      Log(LogLevel::kInfo, "migrated guest '%s' runs here (%d vCPUs, %d MiB)", config.name,
          config.vcpus, config.memory_mib);
    } else if (restoring) {
      if (options.start_paused) vm->Pause();
      Log(LogLevel::kInfo, "restored '%s' (%d vCPUs, %d MiB)%s, %.2f s after start",
          config.name, config.vcpus, config.memory_mib,
          options.start_paused ? ", paused (minivmm ctl resume runs it)" : "",
          absl::ToDoubleSeconds(absl::Now() - vmm_start));
    } else {
      Log(LogLevel::kInfo, "booting '%s' (%d vCPUs, %d MiB)%s, %.2f s after start", config.name,
          config.vcpus, config.memory_mib, boot > 1 ? absl::StrFormat(", boot %d", boot) : "",
          absl::ToDoubleSeconds(absl::Now() - vmm_start));
    }
    control.SetCurrent(vm.get(), stop.get(), boot);
    MINIVMM_ASSIGN_OR_RETURN(StopReason reason, RunOneBoot(*vm, *stop, *console, loop.get()));
    control.SetCurrent(nullptr, nullptr, boot);
    vm.reset();
    if (const uint64_t dropped = console->dropped_output_bytes(); dropped > 0) {
      Log(LogLevel::kWarning,
          "console: %d bytes of guest output dropped so far: its reader stopped reading",
          dropped);
    }
    const int signal_number = stop->signal();
    switch (reason) {
      case StopReason::kPowerOff:
        Log(LogLevel::kInfo, "guest powered off");
        return kExitPoweredOff;
      case StopReason::kReset:
        if (config.on_reboot == RebootAction::kRestart) {
          Log(LogLevel::kInfo, "guest rebooted: restarting (on_reboot = \"restart\")");
          continue;
        }
        Log(LogLevel::kInfo, "guest rebooted: exiting with code %d (on_reboot = \"exit\")",
            kExitGuestReboot);
        return kExitGuestReboot;
      case StopReason::kApiReboot:
        Log(LogLevel::kInfo, "rebooting through the API");
        continue;
      case StopReason::kApiShutdown:
        Log(LogLevel::kInfo, "shut down through the API");
        return kExitPoweredOff;
      case StopReason::kMigrated:
        Log(LogLevel::kInfo, "guest migrated to %s: it runs there now; exiting",
            control.migrated_to());
        return kExitPoweredOff;
      case StopReason::kSignal:
        Log(LogLevel::kInfo, "stopped by signal %d (%s)", signal_number, strsignal(signal_number));
        return kExitSignalBase + signal_number;
      case StopReason::kUserQuit:
        Log(LogLevel::kInfo, "stopped from the console (Ctrl-A x)");
        return kExitSignalBase + SIGINT;
      case StopReason::kError:
        return stop->error();
    }
  }
}

}  // namespace minivmm
