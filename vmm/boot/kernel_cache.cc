#include "vmm/boot/kernel_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/base/unique_fd.h"
#include "vmm/boot/file_memo.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;

constexpr char kEntrySuffix[] = ".vmlinux";
constexpr char kTempPrefix[] = ".tmp-";
// Remembered SHA-256 hashes of kernel files (KeyForFile), one file per kernel file identity.
constexpr char kMemoDirectory[] = "sha256";
// The identity of each entry file known to match its checksum, one file per key: written by
// Store, or by the Lookup that verified it.
constexpr char kVerifiedDirectory[] = "verified";
constexpr char kMagic[8] = {'M', 'V', 'M', 'M', 'K', 'R', 'N', 'L'};

// The entry header, stored in host byte order: the cache is private to one host, and minivmm
// runs only on x86-64 (KVM), so there is no other byte order to meet.
struct EntryHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t header_size;
  uint64_t content_length;
  uint64_t content_xxh3;  // XXH3_64bits: fast enough to verify ~66 MB on every boot.
};
static_assert(sizeof(EntryHeader) == 32, "the on-disk header has no padding");
// The content starts one page into the file (the header, then zeros), so the vmlinux's
// segments keep their page alignment in the file and in its mapping.
constexpr uint64_t kContentOffset = 4096;
static_assert(std::endian::native == std::endian::little);

// Keys become file names: refuse anything that could leave the directory or look like one of
// our temporary files.
absl::Status CheckKey(const std::string& key) {
  const bool valid =
      !key.empty() && key.front() != '.' && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("invalid kernel cache key '%s'", key));
}

absl::Status PreadFull(int fd, const fs::path& path, uint8_t* data, size_t size, off_t offset,
                       size_t* got) {
  *got = 0;
  while (*got < size) {
    const ssize_t n = ::pread(fd, data + *got, size - *got, offset + *got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrFormat("read(%s)", path.string()));
    if (n == 0) break;  // EOF: the caller decides whether a short file is an error.
    *got += n;
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, const fs::path& path, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrFormat("write(%s)", path.string()));
    bytes += n;
    size -= n;
  }
  return absl::OkStatus();
}

// Removes a bad entry, unless a writer has meanwhile renamed a fresh one over it: the path must
// still name the file that was read.
void RemoveBadEntry(int fd, const fs::path& path, std::string_view reason) {
  Log(LogLevel::kWarning, "kernel cache: discarding %s: %s", path.string(), reason);
  struct stat opened, current;
  if (::fstat(fd, &opened) != 0 || ::stat(path.c_str(), &current) != 0) return;
  if (opened.st_dev != current.st_dev || opened.st_ino != current.st_ino) return;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    Log(LogLevel::kWarning, "kernel cache: unlink(%s): %s", path.string(), std::strerror(errno));
  }
}

// The reason an entry of file_size bytes starting with header is unusable, or "" if it is fine
// so far (the checksum is checked once the content is read).
std::string HeaderProblem(const EntryHeader& header, uint64_t file_size) {
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0) return "bad magic";
  if (header.format_version != kKernelCacheFormatVersion) {
    return absl::StrCat("format version ", header.format_version, ", expected ",
                        kKernelCacheFormatVersion);
  }
  if (header.header_size != kContentOffset) {
    return absl::StrCat("header size ", header.header_size);
  }
  if (file_size < kContentOffset || file_size - kContentOffset != header.content_length) {
    return absl::StrCat(
        file_size - kContentOffset < header.content_length ? "truncated" : "too long", ": ",
        file_size, " bytes, header says ", kContentOffset + header.content_length);
  }
  return "";
}

// Deletes the temporary file unless it was renamed into place.
class TempFile {
 public:
  explicit TempFile(fs::path path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const fs::path& path() const { return path_; }
  void Committed() { path_.clear(); }

 private:
  fs::path path_;
};

absl::Status FromErrorCode(std::string_view what, const fs::path& path, std::error_code ec) {
  return ErrnoError(absl::StrFormat("%s(%s)", what, path.string()), ec.value());
}

}  // namespace

std::string Sha256Hex(std::span<const uint8_t> bytes) {
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &digest_size, EVP_sha256(), nullptr) != 1) {
    // No status to return, and any fallback string would make different kernels share a key.
    Log(LogLevel::kError, "EVP_Digest(SHA-256) failed: is libcrypto's default provider broken?");
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), digest_size));
}

absl::StatusOr<KernelCache> KernelCache::ForCurrentUser() {
  // XDG Base Directory spec: a relative XDG_CACHE_HOME is invalid and must be ignored.
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return KernelCache(fs::path(xdg) / "minivmm");
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    return KernelCache(fs::path(home) / ".cache" / "minivmm");
  }
  return absl::FailedPreconditionError("cannot find a cache directory: set XDG_CACHE_HOME or HOME");
}

std::string KernelCache::KeyFor(std::span<const uint8_t> bzimage) {
  return absl::StrCat(Sha256Hex(bzimage), "-v", kKernelCacheFormatVersion);
}

std::string KernelCache::KeyForFile(int fd, std::span<const uint8_t> bzimage) const {
  struct stat st;
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != bzimage.size()) {
    return KeyFor(bzimage);  // the file changed while it was read: trust only the bytes
  }
  const std::optional<std::string> identity = SettledFileIdentity(st, clock_());
  if (!identity) return KeyFor(bzimage);             // too fresh to be remembered
  if (!CheckTrusted().ok()) return KeyFor(bzimage);  // Lookup says why, once
  const fs::path memo = directory_ / kMemoDirectory / *identity;
  constexpr size_t kSha256HexChars = 64;
  const std::optional<std::string> remembered = ReadMemo(memo);
  if (remembered && remembered->size() == kSha256HexChars &&
      std::all_of(remembered->begin(), remembered->end(),
                  [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; })) {
    return absl::StrCat(*remembered, "-v", kKernelCacheFormatVersion);
  }
  const std::string sha = Sha256Hex(bzimage);
  WriteMemo(memo, sha);
  return absl::StrCat(sha, "-v", kKernelCacheFormatVersion);
}

absl::Status KernelCache::CheckTrusted() const {
  struct stat st;
  if (::lstat(directory_.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(absl::StrFormat("stat(%s)", directory_.string()));
  }
  const std::string fix = "set XDG_CACHE_HOME to a directory of minivmm's own user";
  if (S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "kernel cache %s is a symbolic link, which minivmm does not follow: remove it, or %s",
        directory_.string(), fix));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "kernel cache %s is not a directory: remove it, or %s", directory_.string(), fix));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "kernel cache %s belongs to uid %d, not to minivmm's user (uid %d), who would boot "
        "what that user put there: %s (with sudo, do not keep the user's HOME: no -E)",
        directory_.string(), st.st_uid, ::geteuid(), fix));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "kernel cache %s is writable by other users (mode %04o): chmod go-w it, or %s",
        directory_.string(), st.st_mode & 07777, fix));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<SharedBytes>> KernelCache::Lookup(const std::string& key) const {
  MINIVMM_RETURN_IF_ERROR(CheckKey(key));
  MINIVMM_RETURN_IF_ERROR(CheckTrusted());
  const fs::path path = directory_ / absl::StrCat(key, kEntrySuffix);
  // O_NOFOLLOW: an entry is a file Store renamed into place, never a link to elsewhere.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::nullopt;
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "kernel cache entry %s is a symbolic link, which minivmm does not follow: remove it "
          "(minivmm cache clear)",
          path.string()));
    }
    return ErrnoError(absl::StrFormat("open(%s)", path.string()));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(absl::StrFormat("fstat(%s)", path.string()));
  const uint64_t file_size = st.st_size;
  if (file_size < sizeof(EntryHeader)) {
    RemoveBadEntry(fd.get(), path, absl::StrFormat("truncated: %d bytes", file_size));
    return std::nullopt;
  }

  EntryHeader header;
  size_t got = 0;
  MINIVMM_RETURN_IF_ERROR(
      PreadFull(fd.get(), path, reinterpret_cast<uint8_t*>(&header), sizeof(header), 0, &got));
  // Checked against the file size before allocating, so a corrupt length cannot ask for 2^64.
  std::string problem = got < sizeof(header) ? "truncated" : HeaderProblem(header, file_size);
  if (!problem.empty()) {
    RemoveBadEntry(fd.get(), path, problem);
    return std::nullopt;
  }
  // Mapped, not read: the page cache's pages are used in place. The entry file is never
  // modified after its rename (writers replace it whole), so the mapping stays consistent.
  MINIVMM_ASSIGN_OR_RETURN(SharedBytes content, SharedBytes::MapFile(fd.get(), kContentOffset,
                                                                     header.content_length, path));
  // Verifying ~66 MB on every boot is measurable (~5 ms on a host, 0.2 s nested): an entry
  // verified before and unchanged since (same identity) is trusted.
  const std::optional<std::string> identity = SettledFileIdentity(st, clock_());
  const fs::path verified = directory_ / kVerifiedDirectory / key;
  if (identity && ReadMemo(verified) == identity) return content;
  if (XXH3_64bits(content.data(), content.size()) != header.content_xxh3) {
    RemoveBadEntry(fd.get(), path, "checksum mismatch");
    return std::nullopt;
  }
  if (identity) WriteMemo(verified, *identity);
  return content;
}

absl::Status KernelCache::PrepareDirectory() const {
  MINIVMM_RETURN_IF_ERROR(MakePrivateDirectories(directory_));
  // Checked once it exists: MakePrivateDirectories also accepts one that was there already.
  MINIVMM_RETURN_IF_ERROR(CheckTrusted());
  if (::access(directory_.c_str(), W_OK | X_OK) != 0) {
    return ErrnoError(absl::StrFormat("cannot write kernel cache %s", directory_.string()));
  }
  return absl::OkStatus();
}

absl::Status KernelCache::Store(const std::string& key, std::span<const uint8_t> content) const {
  MINIVMM_RETURN_IF_ERROR(CheckKey(key));
  MINIVMM_RETURN_IF_ERROR(PrepareDirectory());
  std::string name_template = (directory_ / absl::StrCat(kTempPrefix, key, "-XXXXXX")).string();
  UniqueFd fd(::mkostemp(name_template.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("mkstemp(%s)", name_template));
  TempFile temp(name_template);
  // Held until the fd closes: tells Clear() this temporary file is being written, not stale.
  if (::flock(fd.get(), LOCK_EX) != 0) {
    return ErrnoError(absl::StrFormat("flock(%s)", temp.path().string()));
  }

  EntryHeader header = {};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.format_version = kKernelCacheFormatVersion;
  header.header_size = kContentOffset;
  header.content_length = content.size();
  header.content_xxh3 = XXH3_64bits(content.data(), content.size());
  std::vector<uint8_t> first_page(kContentOffset, 0);
  std::memcpy(first_page.data(), &header, sizeof(header));
  MINIVMM_RETURN_IF_ERROR(WriteFull(fd.get(), temp.path(), first_page.data(), first_page.size()));
  MINIVMM_RETURN_IF_ERROR(WriteFull(fd.get(), temp.path(), content.data(), content.size()));
  // Without fsync a crash could leave the rename on disk but not the data (ext4 delayed
  // allocation): an empty entry. The checksum would catch it, but only after a wasted read.
  if (::fsync(fd.get()) != 0) {
    return ErrnoError(absl::StrFormat("fsync(%s)", temp.path().string()));
  }
  const fs::path final_path = directory_ / absl::StrCat(key, kEntrySuffix);
  // rename() replaces atomically: readers see the old entry or the new one, never a mix.
  if (::rename(temp.path().c_str(), final_path.c_str()) != 0) {
    return ErrnoError(absl::StrFormat("rename(%s, %s)", temp.path().string(), final_path.string()));
  }
  temp.Committed();
  // The bytes on disk are the ones just checksummed and synced, so the entry counts as verified:
  // the first boot that finds it (once it has settled, see Lookup) skips hashing ~66 MB again.
  // The identity is taken after the rename, which may move the ctime. Best effort, like all memos.
  struct stat st;
  if (::fstat(fd.get(), &st) == 0)
    WriteMemo(directory_ / kVerifiedDirectory / key, FileIdentity(st));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<KernelCacheEntryInfo>> KernelCache::List() const {
  std::vector<KernelCacheEntryInfo> entries;
  std::error_code ec;
  fs::directory_iterator it(directory_, ec);
  if (ec == std::errc::no_such_file_or_directory) return entries;
  if (ec) return FromErrorCode("opendir", directory_, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (path.extension() != kEntrySuffix || name.starts_with('.')) continue;
    std::error_code stat_ec;
    const uint64_t size = fs::file_size(path, stat_ec);
    if (stat_ec == std::errc::no_such_file_or_directory) continue;  // removed meanwhile
    if (stat_ec) return FromErrorCode("stat", path, stat_ec);
    entries.push_back({path.stem().string(), path, size});
  }
  if (ec) return FromErrorCode("readdir", directory_, ec);
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });
  return entries;
}

absl::StatusOr<int> KernelCache::Clear() const {
  std::vector<fs::path> doomed;
  std::error_code ec;
  fs::directory_iterator it(directory_, ec);
  if (ec == std::errc::no_such_file_or_directory) return 0;
  if (ec) return FromErrorCode("opendir", directory_, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.starts_with(kTempPrefix)) {
      // A Store() in progress holds the lock; only a writer that died leaves an unlocked one.
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
      doomed.push_back(path);
    } else if (path.extension() == kEntrySuffix) {
      doomed.push_back(path);
    }
  }
  if (ec) return FromErrorCode("readdir", directory_, ec);
  // What was remembered about kernels and entries goes with the entries.
  fs::remove_all(directory_ / kMemoDirectory, ec);
  fs::remove_all(directory_ / kVerifiedDirectory, ec);
  int removed = 0;
  for (const fs::path& path : doomed) {
    if (::unlink(path.c_str()) == 0) {
      ++removed;
    } else if (errno != ENOENT) {  // ENOENT: another Clear() got there first
      return ErrnoError(absl::StrFormat("unlink(%s)", path.string()));
    }
  }
  return removed;
}

}  // namespace minivmm
