// A snapshot's state file, and a migration's state message: a fixed header (magic, format
// version, payload length, CRC-32C of the payload) and the payload, a serialized protobuf the
// assembly defines (vmm/vm_state.proto). Reading checks all of it before anything uses the
// payload, so a truncated, corrupt, foreign or newer file is one clear error.
#ifndef MINIVMM_VMM_SNAPSHOT_STATE_FILE_H_
#define MINIVMM_VMM_SNAPSHOT_STATE_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace minivmm {

// The payload's format version. Bump it when vm_state.proto changes in a way an older minivmm
// would misread; a file with a newer version is refused, naming both versions.
inline constexpr uint32_t kStateFormatVersion = 1;
// The oldest format version this minivmm still reads; older files are refused, naming both.
inline constexpr uint32_t kOldestReadableStateFormatVersion = 1;

// The header, little-endian, fixed layout (format version 1):
//   offset  0  u8[8]  magic "MINIVMMS"
//   offset  8  u32    format version (kStateFormatVersion)
//   offset 12  u32    header size in bytes (kStateHeaderSize): where the payload starts. Checked
//                     on reading, so a header that grows in a later version is told apart from
//                     corruption by the version, never misread.
//   offset 16  u64    payload length in bytes
//   offset 24  u32    CRC-32C (Castagnoli, as iSCSI and ext4 use) of the payload
//   offset 28         the payload
inline constexpr size_t kStateHeaderSize = 28;

// ReadStateFile refuses bigger files. Device and vCPU state is kilobytes (guest memory has its
// own file), so anything near this is not a state file, and reading it whole would only waste
// memory.
inline constexpr uint64_t kMaxStateFileBytes = 64ull << 20;

// Header + payload, as bytes (what migration sends, and what WriteStateFile writes).
std::string EncodeState(std::string_view payload);
// Checks the header and the checksum; returns the payload. `what` names the source in errors
// (a path, "the migration source").
absl::StatusOr<std::string> DecodeState(std::string_view bytes, std::string_view what);

// Writes EncodeState(payload) to `path` (a new file, 0600, fsynced).
absl::Status WriteStateFile(const std::filesystem::path& path, std::string_view payload);
// Reads and decodes `path`; errors name the file and say what is wrong with it.
absl::StatusOr<std::string> ReadStateFile(const std::filesystem::path& path);

}  // namespace minivmm

#endif  // MINIVMM_VMM_SNAPSHOT_STATE_FILE_H_
