// Facts learnt from a file's bytes (a kernel's SHA-256, that a cache entry's checksum matched),
// remembered under the file's identity so that the next boot of the same, unchanged file skips
// the work.
//
// The identity is the device, inode, size, mtime and ctime (in ns). Any change to a file sets
// its ctime to the current time, which users cannot set back. But timestamps only move once a
// kernel tick, so a file changed twice within one tick keeps its ctime: like git's "racy" index
// entries, a file whose ctime is less than kRacyWindow old is never remembered.
#ifndef MINIVMM_VMM_BOOT_FILE_MEMO_H_
#define MINIVMM_VMM_BOOT_FILE_MEMO_H_

#include <sys/stat.h>
#include <time.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace minivmm {

// mkdir -p, with mode 0700 on every directory it creates (caches are the user's own). Errors
// name the directory and the errno text.
absl::Status MakePrivateDirectories(const std::filesystem::path& directory);

// Far longer than any timestamp granularity (a jiffy, at most 10 ms).
inline constexpr time_t kRacyWindowSeconds = 2;

// The wall clock, as ctime is kept (CLOCK_REALTIME).
using WallClock = timespec (*)();
timespec WallClockNow();

// The identity of a file with status st, as a file-name-safe string, or nullopt when its ctime
// is within kRacyWindowSeconds of now (or in the future): such a file could still change without
// its identity changing.
std::optional<std::string> SettledFileIdentity(const struct stat& st, timespec now);

// The identity of a file with status st, settled or not. Only for a file whose bytes the caller
// wrote itself and that nobody rewrites in place (a cache entry replaced only by rename): there
// is no other writer whose change could hide within the same tick.
std::string FileIdentity(const struct stat& st);

// The whole content of a memo file (at most 4 KiB), or nullopt if it is missing or unreadable.
std::optional<std::string> ReadMemo(const std::filesystem::path& path);

// Writes a memo atomically (temporary file + rename, so a reader sees all of it or none),
// creating its directory (0700). Best effort: a memo that cannot be written only means the work
// is done again next time.
void WriteMemo(const std::filesystem::path& path, std::string_view content);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BOOT_FILE_MEMO_H_
