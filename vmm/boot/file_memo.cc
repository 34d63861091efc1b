#include "vmm/boot/file_memo.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {
namespace {

constexpr size_t kMaxMemoBytes = 4096;

}  // namespace

timespec WallClockNow() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

absl::Status MakePrivateDirectories(const std::filesystem::path& directory) {
  std::filesystem::path partial;
  for (const std::filesystem::path& part : directory) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError(absl::StrFormat("mkdir(%s)", partial.string()));
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> SettledFileIdentity(const struct stat& st, timespec now) {
  // Settled: ctime <= now - window. Compared in whole seconds plus ns, without overflow.
  const timespec& c = st.st_ctim;
  const bool settled = c.tv_sec < now.tv_sec - kRacyWindowSeconds ||
                       (c.tv_sec == now.tv_sec - kRacyWindowSeconds && c.tv_nsec <= now.tv_nsec);
  if (!settled) return std::nullopt;
  return FileIdentity(st);
}

std::string FileIdentity(const struct stat& st) {
  return absl::StrFormat("%x-%x-%x-%d.%09d-%d.%09d", st.st_dev, st.st_ino, st.st_size,
                         st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec,
                         st.st_ctim.tv_nsec);
}

std::optional<std::string> ReadMemo(const std::filesystem::path& path) {
  // O_NOFOLLOW: a memo is a file we wrote, never a link to something else.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return std::nullopt;
  std::string content(kMaxMemoBytes, '\0');
  size_t got = 0;
  while (got < content.size()) {
    const ssize_t n = ::read(fd.get(), content.data() + got, content.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    got += n;
  }
  content.resize(got);
  return content;
}

void WriteMemo(const std::filesystem::path& path, std::string_view content) {
  if (!MakePrivateDirectories(path.parent_path()).ok()) return;
  // A new file with a name nobody can predict (mkostemp: O_CREAT | O_EXCL, never through a
  // planted link); it keeps concurrent writers apart, and rename makes the last one win, whole.
  std::string temp = absl::StrCat(path.string(), ".tmp-XXXXXX");
  UniqueFd out(::mkostemp(temp.data(), O_CLOEXEC));
  if (!out.valid()) return;
  if (::write(out.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size())) {
    out.Reset();  // closed before the rename
    if (::rename(temp.c_str(), path.c_str()) == 0) return;
  }
  ::unlink(temp.c_str());
}

}  // namespace minivmm
