#include "vmm/migration_source.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/snapshot/memory_file.h"
#include "vmm/snapshot/migration.pb.h"
#include "vmm/snapshot/state_file.h"

namespace minivmm {
namespace {

constexpr uint64_t kPageSize = 4096;
// Largest kMemory message: big enough for full-speed sends, small enough to bound a receiver.
constexpr uint64_t kMaxRunBytes = 4 << 20;
constexpr uint64_t kMaxAnswerBytes = 64 << 10;


class Sender {
 public:
  Sender(Vm& vm, MigrationChannel& channel) : vm_(vm), channel_(channel) {}

  // Round 0: every page that is not zero (the destination's memory starts zeroed).
  absl::Status SendAllMemory() {
    const std::vector<GuestMemory::Region>& regions = vm_.memory().regions();
    for (const GuestMemory::Region& region : regions) {
      const uint64_t pages = region.size / kPageSize;
      uint64_t page = 0;
      while (page < pages) {
        if (IsZeroPage(region.host + page * kPageSize)) {
          ++page;
          continue;
        }
        uint64_t end = page + 1;
        while (end < pages && (end - page) * kPageSize < kMaxRunBytes &&
               !IsZeroPage(region.host + end * kPageSize)) {
          ++end;
        }
        MINIVMM_RETURN_IF_ERROR(SendRun(region, page, end));
        page = end;
      }
    }
    return absl::OkStatus();
  }

  // Adds the pages written since the last call to those still to send, and counts them. Taking
  // the logs clears them, so pages taken and not sent yet (the round that decided to stop)
  // stay pending until SendDirty. The final pass (devices quiesced) adds every page device
  // emulation wrote during the migration: GuestMemory marks a view when it is handed out,
  // before the device writes through it, so a round may have sent such a page before the
  // write landed.
  absl::StatusOr<uint64_t> CountDirty(bool final_pass) {
    const size_t regions = vm_.memory().regions().size();
    dirty_.resize(regions);
    vmm_written_.resize(regions);
    uint64_t pages = 0;
    for (size_t i = 0; i < regions; ++i) {
      MINIVMM_ASSIGN_OR_RETURN(Vm::DirtyPages taken, vm_.TakeDirtyPages(i));
      std::vector<uint64_t>& pending = dirty_[i];
      std::vector<uint64_t>& ever = vmm_written_[i];
      pending.resize(taken.by_guest.size(), 0);
      ever.resize(taken.by_guest.size(), 0);
      for (size_t w = 0; w < pending.size(); ++w) {
        ever[w] |= taken.by_vmm[w];
        pending[w] |= taken.by_guest[w] | (final_pass ? ever[w] : taken.by_vmm[w]);
        pages += static_cast<uint64_t>(__builtin_popcountll(pending[w]));
      }
    }
    return pages;
  }

  absl::Status SendDirty() {
    const std::vector<GuestMemory::Region>& regions = vm_.memory().regions();
    for (size_t r = 0; r < regions.size(); ++r) {
      const std::vector<uint64_t>& bitmap = dirty_[r];
      const uint64_t pages = regions[r].size / kPageSize;
      auto dirty = [&](uint64_t page) { return (bitmap[page / 64] >> (page % 64)) & 1; };
      uint64_t page = 0;
      while (page < pages) {
        if (!dirty(page)) {
          ++page;
          continue;
        }
        uint64_t end = page + 1;
        while (end < pages && (end - page) * kPageSize < kMaxRunBytes && dirty(end)) ++end;
        MINIVMM_RETURN_IF_ERROR(SendRun(regions[r], page, end));
        page = end;
      }
    }
    for (std::vector<uint64_t>& pending : dirty_) std::fill(pending.begin(), pending.end(), 0);
    return absl::OkStatus();
  }

  uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  absl::Status SendRun(const GuestMemory::Region& region, uint64_t first, uint64_t end) {
    const uint64_t length = (end - first) * kPageSize;
    bytes_sent_ += length;
    return channel_.SendMemory(region.guest_address + first * kPageSize,
                               std::span<const uint8_t>(region.host + first * kPageSize, length));
  }

  Vm& vm_;
  MigrationChannel& channel_;
  std::vector<std::vector<uint64_t>> dirty_;  // taken from the logs, not sent yet
  std::vector<std::vector<uint64_t>> vmm_written_;  // every page devices wrote, per region
  uint64_t bytes_sent_ = 0;
};

std::string HelloPayload(Vm& vm, const VmConfig& config, const CpuidList& cpuid) {
  state::MigrationHello hello;
  hello.set_protocol_version(kMigrationProtocolVersion);
  hello.set_state_format_version(kStateFormatVersion);
  hello.set_config_toml(FormatVmConfig(config));
  hello.set_cpuid(std::string(reinterpret_cast<const char*>(cpuid.entries().data()),
                              cpuid.entries().size() * sizeof(kvm_cpuid_entry2)));
  hello.set_memory_bytes(vm.memory().total_size());
  return hello.SerializeAsString();
}

// Everything after the destination accepted; the caller undoes what this leaves on failure.
struct Progress {
  bool dirty_log = false;
  bool paused_here = false;
  bool quiesced = false;
};

absl::Status PreCopyAndSwitch(Vm& vm, const HostBackends& backends, MigrationChannel& channel,
                              const MigrationLimits& limits, absl::Time start,
                              Progress* progress) {
  MINIVMM_RETURN_IF_ERROR(vm.StartDirtyLog());
  progress->dirty_log = true;
  Sender sender(vm, channel);
  absl::Time round_start = absl::Now();
  MINIVMM_RETURN_IF_ERROR(sender.SendAllMemory());
  // Bytes per second over the last round: what the final pass can expect.
  double bandwidth = 0;
  uint64_t sent_before = 0;
  for (int round = 1;; ++round) {
    const double seconds = std::max(1e-6, absl::ToDoubleSeconds(absl::Now() - round_start));
    bandwidth = static_cast<double>(sender.bytes_sent() - sent_before) / seconds;
    sent_before = sender.bytes_sent();
    MINIVMM_ASSIGN_OR_RETURN(const uint64_t dirty_pages, sender.CountDirty(/*final_pass=*/false));
    const double dirty_bytes = static_cast<double>(dirty_pages * kPageSize);
    const absl::Duration expected =
        absl::Seconds(bandwidth > 0 ? dirty_bytes / bandwidth : 0);
    Log(LogLevel::kDebug, "migration round %d: %d dirty pages, %.1f MB/s, %.0f ms to send",
        round, dirty_pages, bandwidth / 1e6, absl::ToDoubleMilliseconds(expected));
    if (expected <= limits.downtime_target) break;
    if (absl::Now() - start > limits.time_limit) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "did not converge in %s: the guest writes memory faster than the link carries it "
          "(%d pages dirty after round %d at %.1f MB/s would take %.0f ms, the downtime "
          "target is %.0f ms)",
          absl::FormatDuration(limits.time_limit), dirty_pages, round, bandwidth / 1e6,
          absl::ToDoubleMilliseconds(expected),
          absl::ToDoubleMilliseconds(limits.downtime_target)));
    }
    round_start = absl::Now();
    MINIVMM_RETURN_IF_ERROR(sender.SendDirty());
  }
  // Stop and copy: the guest stands still from here until the destination starts it.
  const absl::Time pause_start = absl::Now();
  if (!vm.paused()) {
    vm.Pause();
    progress->paused_here = true;
  }
  vm.QuiesceDevices();
  progress->quiesced = true;
  for (const DiskBackend& disk : backends.disks) MINIVMM_RETURN_IF_ERROR(disk.backend->Flush());
  MINIVMM_RETURN_IF_ERROR(sender.CountDirty(/*final_pass=*/true).status());
  MINIVMM_RETURN_IF_ERROR(sender.SendDirty());
  MINIVMM_ASSIGN_OR_RETURN(state::VmState state, vm.SaveState());
  std::string payload;
  if (!state.SerializeToString(&payload)) {
    return absl::InternalError("the VM state could not be serialized");
  }
  MINIVMM_RETURN_IF_ERROR(channel.Send(MigrationMessage::kState, EncodeState(payload)));
  MINIVMM_RETURN_IF_ERROR(channel.Send(MigrationMessage::kComplete));
  MINIVMM_RETURN_IF_ERROR(channel.Expect(MigrationMessage::kStarted, kMaxAnswerBytes).status());
  Log(LogLevel::kInfo,
      "migration: %.1f MiB sent in %.2f s; the guest stood still for %.0f ms here",
      static_cast<double>(sender.bytes_sent()) / (1 << 20),
      absl::ToDoubleSeconds(absl::Now() - start),
      absl::ToDoubleMilliseconds(absl::Now() - pause_start));
  return absl::OkStatus();
}

}  // namespace

absl::Status MigrateVm(Vm& vm, const VmConfig& config, const HostBackends& backends,
                       const MigrationAddress& destination, const MigrationLimits& limits) {
  const absl::Time start = absl::Now();
  // One code for every failure past the checks (the API answers 502: the far side failed).
  auto failed = [&](const absl::Status& status) {
    return absl::UnavailableError(absl::StrFormat(
        "migration to %s failed: %s; the guest keeps running here", destination.text,
        status.message()));
  };
  absl::StatusOr<MigrationChannel> channel =
      MigrationChannel::Connect(destination, limits.io_timeout);
  if (!channel.ok()) return failed(channel.status());
  absl::StatusOr<CpuidList> cpuid = vm.GuestCpuid();
  if (!cpuid.ok()) return failed(cpuid.status());
  absl::Status status = channel->Send(MigrationMessage::kHello, HelloPayload(vm, config, *cpuid));
  if (status.ok()) status = channel->Expect(MigrationMessage::kAccept, kMaxAnswerBytes).status();
  if (!status.ok()) return failed(status);
  Log(LogLevel::kInfo, "migration: %s accepted the guest; copying memory", destination.text);

  Progress progress;
  status = PreCopyAndSwitch(vm, backends, *channel, limits, start, &progress);
  if (status.ok()) return absl::OkStatus();
  // Undo: tell the destination (best effort: it may be what failed), let the guest go on.
  state::MigrationError abandon;
  abandon.set_reason(std::string(status.message()));
  (void)channel->Send(MigrationMessage::kAbandon, abandon.SerializeAsString());
  if (progress.dirty_log) vm.StopDirtyLog();
  if (progress.quiesced) vm.ResumeDevices();
  if (progress.paused_here) vm.Resume();
  return failed(status);
}

}  // namespace minivmm
