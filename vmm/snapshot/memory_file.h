// The guest memory of a snapshot: every RAM region back to back, in the order given, as one
// sparse file. Pages that read as zero are not written (left as holes), so a 1 GiB guest that
// touched 100 MiB costs about 100 MiB of disk, and restoring maps the file privately so only
// the pages the guest touches are read.
#ifndef MINIVMM_VMM_SNAPSHOT_MEMORY_FILE_H_
#define MINIVMM_VMM_SNAPSHOT_MEMORY_FILE_H_

#include <cstdint>
#include <filesystem>
#include <span>

#include "absl/status/status.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {

// Whether the 4 KiB page at `page` holds only zeros: such pages are left out of a snapshot's
// memory file (holes) and of a migration's first copy (the destination's memory starts zeroed).
bool IsZeroPage(const uint8_t* page);

// Writes `memory`'s regions to `path` (a new file, 0600): the file's size is the regions'
// total, zero pages are holes. fsyncs before returning.
absl::Status WriteMemoryFile(const std::filesystem::path& path, const GuestMemory& memory);

// Checks that `path` exists and is exactly `expected_size` bytes long; the error names the file,
// its size and the size the state file expects.
absl::Status CheckMemoryFile(const std::filesystem::path& path, uint64_t expected_size);

// Replaces the contents of `memory`'s regions with the file's (CheckMemoryFile first): each
// region is mapped from the file MAP_PRIVATE | MAP_FIXED over its current mapping, so pages load
// lazily on first touch and the guest's writes never reach the file (the same snapshot can be
// restored again). Memory already pinned for DMA is refused.
absl::Status LoadMemoryFile(const std::filesystem::path& path, GuestMemory& memory);

}  // namespace minivmm

#endif  // MINIVMM_VMM_SNAPSHOT_MEMORY_FILE_H_
