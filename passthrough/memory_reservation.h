// The full-reservation rule: a VM with any passthrough function has all of its memory
// prefaulted and pinned, because the device may DMA anywhere in guest RAM at any time (VMware's
// DirectPath I/O likewise sets the memory reservation to the VM's whole memory). Pinned memory
// counts against RLIMIT_MEMLOCK, so the limit is checked before anything is created, and the
// message says what to raise it to.
#ifndef MINIVMM_PASSTHROUGH_MEMORY_RESERVATION_H_
#define MINIVMM_PASSTHROUGH_MEMORY_RESERVATION_H_

#include <sys/resource.h>

#include <cstdint>

#include "absl/status/status.h"

namespace minivmm {

// Checks that `pinned_bytes` fit under the soft RLIMIT_MEMLOCK `limit_bytes` (RLIM_INFINITY:
// no limit). The error names both numbers and how to raise the limit. minivmm applies the
// limit even where the kernel would not (CAP_IPC_LOCK), so a VM behaves the same for every user.
absl::Status CheckMemlockLimit(uint64_t pinned_bytes, rlim_t limit_bytes);

// The same against this process's current limit.
absl::Status CheckMemlockLimit(uint64_t pinned_bytes);

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_MEMORY_RESERVATION_H_
