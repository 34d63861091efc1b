// Content-addressed cache of decompressed kernels ($XDG_CACHE_HOME/minivmm, else
// ~/.cache/minivmm): a bzImage's payload is decompressed once, later boots load the vmlinux
// from here. Entries are written atomically (temporary file + rename), carry their length and
// a checksum of the content, and a truncated or corrupt entry reads as a miss (and is removed)
// so it gets rebuilt. Any number of processes may look up and store concurrently.
#ifndef MINIVMM_VMM_BOOT_KERNEL_CACHE_H_
#define MINIVMM_VMM_BOOT_KERNEL_CACHE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/shared_bytes.h"
#include "vmm/boot/file_memo.h"

namespace minivmm {

// Bumped whenever the entry layout or the meaning of the content changes; part of every key,
// so entries of another format are never read.
inline constexpr uint32_t kKernelCacheFormatVersion = 2;

// Lowercase hex SHA-256 of bytes.
std::string Sha256Hex(std::span<const uint8_t> bytes);

struct KernelCacheEntryInfo {
  std::string key;
  std::filesystem::path path;
  uint64_t size_bytes = 0;
};

class KernelCache {
 public:
  // clock: the wall clock that decides whether a file is settled enough to be remembered
  // (vmm/boot/file_memo.h); tests move it.
  explicit KernelCache(std::filesystem::path directory, WallClock clock = WallClockNow)
      : directory_(std::move(directory)), clock_(clock) {}
  // $XDG_CACHE_HOME/minivmm when XDG_CACHE_HOME is set and absolute, else $HOME/.cache/minivmm.
  static absl::StatusOr<KernelCache> ForCurrentUser();

  const std::filesystem::path& directory() const { return directory_; }

  // The key of a bzImage: its SHA-256 and the format version.
  static std::string KeyFor(std::span<const uint8_t> bzimage);

  // KeyFor(bzimage) for the bytes just read from the open file fd, remembering the hash under
  // the file's identity (vmm/boot/file_memo.h) so that the next boot of the same unchanged file
  // skips hashing it. Memo problems only cost a rehash.
  std::string KeyForFile(int fd, std::span<const uint8_t> bzimage) const;

  // The entry's content (a read-only mapping of the file), or nullopt on a miss (absent, truncated,
  // corrupt, other version). A corrupt entry is removed. The checksum is verified unless the
  // same entry file (same identity, vmm/boot/file_memo.h) was verified before. Errors only for I/O
  // failures other than "not there".
  absl::StatusOr<std::optional<SharedBytes>> Lookup(const std::string& key) const;

  // Whether the directory may be trusted with the kernels minivmm boots: it is absent (Store
  // creates it 0700), or it is a real directory (not a symbolic link) owned by the effective
  // user and writable by nobody else. Otherwise one message naming the directory, what is
  // wrong and the fix. Lookup checks it first, PrepareDirectory and Store once the directory
  // exists: a root minivmm run with another user's HOME (sudo -E) must not boot a vmlinux that user
  // planted.
  absl::Status CheckTrusted() const;

  // Creates the directory (0700) if needed and checks it is writable, so a caller can skip
  // work whose only purpose is to be stored. Errors name the path and the errno text.
  absl::Status PrepareDirectory() const;

  // Stores content under key atomically; creates the directory (0700) if needed, and remembers
  // the new entry file as verified. Fails (with the path and errno text) if the directory cannot
  // be created or written.
  absl::Status Store(const std::string& key, std::span<const uint8_t> content) const;

  absl::StatusOr<std::vector<KernelCacheEntryInfo>> List() const;
  // Removes every entry (and stale temporary files); returns how many files were removed.
  absl::StatusOr<int> Clear() const;

 private:
  std::filesystem::path directory_;
  WallClock clock_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_BOOT_KERNEL_CACHE_H_
