// A snapshot on disk: a folder holding the VM description (config.toml), the state file
// (state: framing from vmm/snapshot/state_file.h around vm_state.proto) and the guest memory
// (memory, sparse). Disk images are referred to by path in config.toml, as Firecracker and
// Cloud Hypervisor do: the user keeps them unchanged until the snapshot is restored.
#ifndef MINIVMM_VMM_SNAPSHOT_FOLDER_H_
#define MINIVMM_VMM_SNAPSHOT_FOLDER_H_

#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/config/config.h"
#include "vmm/host_backends.h"
#include "vmm/vm.h"
#include "vmm/vm_state.pb.h"

namespace minivmm {

inline constexpr char kSnapshotConfigFile[] = "config.toml";
inline constexpr char kSnapshotStateFile[] = "state";
inline constexpr char kSnapshotMemoryFile[] = "memory";

// Makes `folder` ready to receive a snapshot: it must be absolute, and not exist (its parent
// must) or be an empty folder. Returns whether it created the folder (InvalidArgument naming the
// folder and the fix when it cannot be used, the mkdir error when it cannot be created).
absl::StatusOr<bool> PrepareSnapshotFolder(const std::filesystem::path& folder);

// Writes a snapshot of `vm` into `folder`, which must not exist (its parent must) or be empty.
// Pauses the VM for the copy, flushes the disks, and leaves the VM running or paused as it
// found it. On failure nothing of the snapshot is left behind (a folder it created is removed).
absl::Status WriteSnapshot(Vm& vm, const VmConfig& config, const HostBackends& backends,
                           const std::filesystem::path& folder);

struct SnapshotFiles {
  VmConfig config;
  state::VmState state;
  std::filesystem::path memory_file;
};

// Reads and checks a snapshot folder before any KVM object exists: the state file's framing
// and payload, the description, and the memory file's size. Errors name the file and the fix.
absl::StatusOr<SnapshotFiles> ReadSnapshot(const std::filesystem::path& folder);

}  // namespace minivmm

#endif  // MINIVMM_VMM_SNAPSHOT_FOLDER_H_
