// `minivmm cache list|clear`: inspect or empty the decompressed-kernel cache (kernel_cache.h).
#ifndef MINIVMM_VMM_BOOT_CACHE_COMMAND_H_
#define MINIVMM_VMM_BOOT_CACHE_COMMAND_H_

#include <ostream>
#include <span>
#include <string>

#include "vmm/boot/kernel_cache.h"

namespace minivmm {

// Runs the cache subcommand named by args (the words after "cache") on the current user's
// cache, printing to stdout (errors and usage to stderr); returns the process exit code.
int RunCacheCommand(std::span<const std::string> args);

// The same against a given cache and streams, so tests need neither the environment nor fd 1.
int RunCacheCommand(std::span<const std::string> args, const KernelCache& cache, std::ostream& out,
                    std::ostream& err);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BOOT_CACHE_COMMAND_H_
