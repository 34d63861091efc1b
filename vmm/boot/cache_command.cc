#include "vmm/boot/cache_command.h"

#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "vmm/base/exit_codes.h"

namespace minivmm {
namespace {

constexpr char kUsage[] =
    "Usage: minivmm cache list    show the cached decompressed kernels\n"
    "       minivmm cache clear   remove them\n";

bool IsKnownSubcommand(std::span<const std::string> args) {
  return args.size() == 1 && (args[0] == "list" || args[0] == "clear");
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "minivmm: " << status.message() << "\n";
  return kExitError;
}

int List(const KernelCache& cache, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::vector<KernelCacheEntryInfo>> entries = cache.List();
  if (!entries.ok()) return Fail(err, entries.status());
  if (entries->empty()) {
    out << absl::StrFormat("kernel cache %s is empty\n", cache.directory().string());
    return 0;
  }
  // A key is 64 hex digits of SHA-256 plus "-vN".
  out << absl::StrFormat("%-70s %9s  %s\n", "KEY", "SIZE_MIB", "PATH");
  for (const KernelCacheEntryInfo& entry : *entries) {
    out << absl::StrFormat("%-70s %9.1f  %s\n", entry.key, entry.size_bytes / (1024.0 * 1024.0),
                           entry.path.string());
  }
  return 0;
}

}  // namespace

int RunCacheCommand(std::span<const std::string> args) {
  // Usage first, so a typo is reported even when no cache directory can be found.
  if (!IsKnownSubcommand(args)) {
    std::cerr << kUsage;
    return kExitError;
  }
  absl::StatusOr<KernelCache> cache = KernelCache::ForCurrentUser();
  if (!cache.ok()) return Fail(std::cerr, cache.status());
  return RunCacheCommand(args, *cache, std::cout, std::cerr);
}

int RunCacheCommand(std::span<const std::string> args, const KernelCache& cache, std::ostream& out,
                    std::ostream& err) {
  if (!IsKnownSubcommand(args)) {
    err << kUsage;
    return kExitError;
  }
  if (args[0] == "list") return List(cache, out, err);
  absl::StatusOr<int> removed = cache.Clear();
  if (!removed.ok()) return Fail(err, removed.status());
  out << absl::StrFormat("removed %d entries from %s\n", *removed, cache.directory().string());
  return 0;
}

}  // namespace minivmm
