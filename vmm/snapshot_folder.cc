#include "vmm/snapshot_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <system_error>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/base/unique_fd.h"
#include "vmm/snapshot/memory_file.h"
#include "vmm/snapshot/state_file.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

absl::Status WriteTextFile(const fs::path& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("create %s", path.string()));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrFormat("write %s", path.string()));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return ErrnoError(absl::StrFormat("fsync %s", path.string()));
  return absl::OkStatus();
}

// With the VM paused and its devices quiesced: every file of the snapshot, the state last (a
// folder without it is not a snapshot).
absl::Status WriteFiles(Vm& vm, const VmConfig& config, const HostBackends& backends,
                        const fs::path& folder) {
  for (const DiskBackend& disk : backends.disks) {
    MINIVMM_RETURN_IF_ERROR(disk.backend->Flush());
  }
  MINIVMM_ASSIGN_OR_RETURN(state::VmState state, vm.SaveState());
  MINIVMM_RETURN_IF_ERROR(WriteMemoryFile(folder / kSnapshotMemoryFile, vm.memory()));
  MINIVMM_RETURN_IF_ERROR(WriteTextFile(folder / kSnapshotConfigFile, FormatVmConfig(config)));
  std::string payload;
  if (!state.SerializeToString(&payload)) {
    return absl::InternalError("the VM state could not be serialized");
  }
  MINIVMM_RETURN_IF_ERROR(WriteStateFile(folder / kSnapshotStateFile, payload));
  // The files' names are durable only once the folder itself is synced.
  UniqueFd directory(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory.valid() || ::fsync(directory.get()) != 0) {
    return ErrnoError(absl::StrFormat("fsync %s", folder.string()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> PrepareSnapshotFolder(const fs::path& folder) {
  if (!folder.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "snapshot destination '%s' is relative: give an absolute path", folder.string()));
  }
  std::error_code error;
  if (fs::exists(folder, error)) {
    if (!fs::is_directory(folder, error)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "snapshot destination %s exists and is not a folder: name a new folder",
          folder.string()));
    }
    if (!fs::is_empty(folder, error) || error) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "snapshot destination %s is not empty: name a new or empty folder", folder.string()));
    }
    return false;
  }
  if (::mkdir(folder.c_str(), 0700) != 0) {
    return ErrnoError(absl::StrFormat(
        "cannot create the snapshot folder %s (its parent must exist and be writable)",
        folder.string()));
  }
  return true;
}

absl::Status WriteSnapshot(Vm& vm, const VmConfig& config, const HostBackends& backends,
                           const fs::path& folder) {
  MINIVMM_ASSIGN_OR_RETURN(const bool created, PrepareSnapshotFolder(folder));
  const absl::Time start = absl::Now();
  const bool was_paused = vm.paused();
  vm.Pause();
  vm.QuiesceDevices();
  absl::Status written = WriteFiles(vm, config, backends, folder);
  vm.ResumeDevices();
  if (!was_paused) vm.Resume();
  if (!written.ok()) {
    std::error_code ignored;
    for (const char* name : {kSnapshotStateFile, kSnapshotConfigFile, kSnapshotMemoryFile}) {
      fs::remove(folder / name, ignored);
    }
    if (created) fs::remove(folder, ignored);
    return absl::Status(written.code(), absl::StrFormat("snapshot to %s failed: %s",
                                                        folder.string(), written.message()));
  }
  Log(LogLevel::kInfo, "snapshot written to %s in %.2f s (the VM was %s and is again)",
      folder.string(), absl::ToDoubleSeconds(absl::Now() - start),
      was_paused ? "paused" : "running");
  return absl::OkStatus();
}

absl::StatusOr<SnapshotFiles> ReadSnapshot(const fs::path& folder) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    return absl::NotFoundError(absl::StrFormat(
        "%s is not a snapshot folder (minivmm ctl snapshot DIR writes one)", folder.string()));
  }
  SnapshotFiles files;
  MINIVMM_ASSIGN_OR_RETURN(const std::string payload,
                           ReadStateFile(folder / kSnapshotStateFile));
  if (!files.state.ParseFromString(payload)) {
    return absl::DataLossError(absl::StrFormat(
        "%s: the payload does not parse as a VM state (corrupt, or not written by minivmm)",
        (folder / kSnapshotStateFile).string()));
  }
  MINIVMM_ASSIGN_OR_RETURN(files.config, LoadVmConfig(folder / kSnapshotConfigFile));
  uint64_t memory_bytes = 0;
  for (const state::MemoryRegion& region : files.state.memory()) {
    if (region.size() > (uint64_t{1} << 48) || memory_bytes + region.size() < memory_bytes) {
      return absl::DataLossError(absl::StrFormat("%s: implausible memory region size %d",
                                                 (folder / kSnapshotStateFile).string(),
                                                 region.size()));
    }
    memory_bytes += region.size();
  }
  files.memory_file = folder / kSnapshotMemoryFile;
  MINIVMM_RETURN_IF_ERROR(CheckMemoryFile(files.memory_file, memory_bytes));
  return files;
}

}  // namespace minivmm
