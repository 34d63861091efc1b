#include "vmm/boot/kernel_cache.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "tests/unit/testing/test_images.h"
#include "tests/unit/vmm/boot/cache_lookup.h"
#include "vmm/base/unique_fd.h"
#include "vmm/boot/cache_command.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;
using testing_images::LookupCopy;

constexpr char kKey[] = "0123abcd-v1";
// Byte offsets in the entry header: magic[8], u32 format version, u32 header size, ...
constexpr std::streamoff kVersionOffset = 8;
constexpr std::streamoff kHeaderSize = 4096;  // the header page before the content

std::vector<uint8_t> RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(size);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void PatchFile(const fs::path& path, std::streamoff offset, std::string_view bytes) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(offset);
  file.write(bytes.data(), bytes.size());
  ASSERT_TRUE(file.good()) << path;
}

void WriteFile(const fs::path& path, std::string_view bytes) {
  std::ofstream file(path, std::ios::binary);
  file.write(bytes.data(), bytes.size());
  ASSERT_TRUE(file.good()) << path;
}

std::vector<std::string> TempFilesIn(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".tmp-")) names.push_back(name);
  }
  return names;
}

// Sets or unsets an environment variable for one test, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class KernelCacheTest : public ::testing::Test {
 protected:
  fs::path EntryPath(const std::string& key) const { return dir_ / (key + ".vmlinux"); }

  // Stores content under kKey and expects a miss that removes the entry once corrupt() ran.
  void ExpectMissAndRemovalAfter(void (*corrupt)(const fs::path&), std::string_view reason) {
    KernelCache cache(dir_);
    ASSERT_TRUE(cache.Store(kKey, RandomBytes(4096, 1)).ok());
    corrupt(EntryPath(kKey));
    testing::internal::CaptureStderr();
    absl::StatusOr<std::optional<std::vector<uint8_t>>> result = LookupCopy(cache, kKey);
    const std::string log = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, std::nullopt);
    EXPECT_FALSE(fs::exists(EntryPath(kKey)));
    EXPECT_THAT(log, HasSubstr(EntryPath(kKey).string()));
    EXPECT_THAT(log, HasSubstr(reason));
  }

  testing_scratch::ScratchDir scratch_{"kernel_cache_test"};
  const fs::path root_ = scratch_.path();
  const fs::path dir_ = root_ / "cache" / "minivmm";
};

TEST(Sha256HexTest, MatchesFips180TestVectors) {
  EXPECT_EQ(Sha256Hex({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(AsBytes("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(KernelCacheKeyTest, KeyIsSha256OfTheImagePlusFormatVersion) {
  EXPECT_EQ(KernelCache::KeyFor(AsBytes("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad-v" +
                std::to_string(kKernelCacheFormatVersion));
}

TEST_F(KernelCacheTest, LookupInMissingOrEmptyDirectoryIsAMiss) {
  KernelCache cache(dir_);
  for (bool create : {false, true}) {
    if (create) fs::create_directories(dir_);
    absl::StatusOr<std::optional<std::vector<uint8_t>>> result = LookupCopy(cache, kKey);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, std::nullopt);
  }
}

TEST_F(KernelCacheTest, StoreThenLookupReturnsIdenticalBytes) {
  KernelCache cache(dir_);
  const std::vector<uint8_t> content = RandomBytes(3 * 1024 * 1024 + 7, 42);
  ASSERT_TRUE(cache.Store(kKey, content).ok());
  absl::StatusOr<std::optional<std::vector<uint8_t>>> result = LookupCopy(cache, kKey);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, Optional(content));
  EXPECT_EQ(fs::file_size(EntryPath(kKey)), kHeaderSize + content.size());
}

TEST_F(KernelCacheTest, StoreCreatesPrivateDirectoriesAndReplacesAnEntry) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(100, 1)).ok());
  const std::vector<uint8_t> second = RandomBytes(50, 2);
  ASSERT_TRUE(cache.Store(kKey, second).ok());
  EXPECT_THAT(*LookupCopy(cache, kKey), Optional(second));
  for (const fs::path& dir : {dir_, dir_.parent_path()}) {
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
  }
  EXPECT_THAT(TempFilesIn(dir_), IsEmpty());
}

TEST_F(KernelCacheTest, EmptyContentRoundTrips) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, {}).ok());
  EXPECT_THAT(*LookupCopy(cache, kKey), Optional(std::vector<uint8_t>()));
}

TEST_F(KernelCacheTest, TruncatedEntryIsAMissAndIsRemoved) {
  ExpectMissAndRemovalAfter([](const fs::path& p) { fs::resize_file(p, fs::file_size(p) - 1); },
                            "truncated");
}

TEST_F(KernelCacheTest, EntryShorterThanItsHeaderIsAMissAndIsRemoved) {
  ExpectMissAndRemovalAfter([](const fs::path& p) { fs::resize_file(p, 5); }, "truncated");
}

TEST_F(KernelCacheTest, EntryWithTrailingBytesIsAMissAndIsRemoved) {
  ExpectMissAndRemovalAfter([](const fs::path& p) { fs::resize_file(p, fs::file_size(p) + 1); },
                            "too long");
}

TEST_F(KernelCacheTest, CorruptedContentByteIsAMissAndIsRemoved) {
  ExpectMissAndRemovalAfter([](const fs::path& p) { PatchFile(p, kHeaderSize + 1000, "\x5a"); },
                            "checksum");
}

TEST_F(KernelCacheTest, WrongMagicIsAMissAndIsRemoved) {
  ExpectMissAndRemovalAfter([](const fs::path& p) { PatchFile(p, 0, "XVMMKRNL"); }, "magic");
}

TEST_F(KernelCacheTest, OtherFormatVersionIsAMissAndIsRemoved) {
  ExpectMissAndRemovalAfter(
      [](const fs::path& p) { PatchFile(p, kVersionOffset, std::string("\x07\0\0\0", 4)); },
      "format version 7");
}

// A cache directory others can write could hold a vmlinux they chose: refused with one message
// naming the directory and the fix, for lookups and stores alike.
TEST_F(KernelCacheTest, DirectoryWritableByOthersIsRefused) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(4096, 1)).ok());
  fs::permissions(dir_, fs::perms::others_write | fs::perms::group_write, fs::perm_options::add);
  absl::StatusOr<std::optional<SharedBytes>> hit = cache.Lookup(kKey);
  ASSERT_FALSE(hit.ok());
  EXPECT_THAT(hit.status().message(), HasSubstr(dir_.string()));
  EXPECT_THAT(hit.status().message(), HasSubstr("writable by other users"));
  EXPECT_THAT(hit.status().message(), HasSubstr("chmod go-w"));
  EXPECT_FALSE(cache.Store(kKey, RandomBytes(4096, 2)).ok());
  EXPECT_FALSE(cache.PrepareDirectory().ok());
}

// sudo -E keeps the user's HOME: a root minivmm must not use that user's cache.
TEST_F(KernelCacheTest, DirectoryOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the directory away";
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(4096, 1)).ok());
  ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);
  absl::StatusOr<std::optional<SharedBytes>> hit = cache.Lookup(kKey);
  ASSERT_FALSE(hit.ok());
  EXPECT_THAT(hit.status().message(), HasSubstr("belongs to uid 65534"));
  EXPECT_THAT(hit.status().message(), HasSubstr("XDG_CACHE_HOME"));
}

TEST_F(KernelCacheTest, DirectoryThatIsALinkIsRefused) {
  const fs::path real = root_ / "real";
  KernelCache real_cache(real);
  ASSERT_TRUE(real_cache.Store(kKey, RandomBytes(4096, 1)).ok());
  fs::create_directories(dir_.parent_path());
  fs::create_directory_symlink(real, dir_);
  absl::StatusOr<std::optional<SharedBytes>> hit = KernelCache(dir_).Lookup(kKey);
  ASSERT_FALSE(hit.ok());
  EXPECT_THAT(hit.status().message(), HasSubstr("symbolic link"));
}

// An entry that is a link to a valid entry elsewhere is not followed.
TEST_F(KernelCacheTest, EntryThatIsALinkIsNotFollowed) {
  const fs::path other = root_ / "other";
  KernelCache other_cache(other);
  ASSERT_TRUE(other_cache.Store(kKey, RandomBytes(4096, 1)).ok());
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.PrepareDirectory().ok());
  fs::create_symlink(other / (std::string(kKey) + ".vmlinux"), EntryPath(kKey));
  absl::StatusOr<std::optional<SharedBytes>> hit = cache.Lookup(kKey);
  ASSERT_FALSE(hit.ok());
  EXPECT_THAT(hit.status().message(), HasSubstr("symbolic link"));
}

TEST_F(KernelCacheTest, KeysThatCouldLeaveTheDirectoryAreRejected) {
  KernelCache cache(dir_);
  EXPECT_EQ(cache.Store("../evil", AsBytes("x")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Lookup(".tmp-x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Lookup("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KernelCacheTest, StoreUnderARegularFileFailsNamingThePath) {
  WriteFile(root_ / "file", "not a directory");
  const fs::path dir = root_ / "file" / "sub";
  absl::Status status = KernelCache(dir).Store(kKey, AsBytes("content"));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(dir.string()));
  EXPECT_THAT(status.message(), HasSubstr("Not a directory"));
}

// KeyForFile's result for the file at path, read whole.
std::string KeyForFileAt(const KernelCache& cache, const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return cache.KeyForFile(fd.get(), bytes);
}

TEST_F(KernelCacheTest, KeyForFileIsTheContentKey) {
  WriteFile(root_ / "bzImage", "kernel bytes");
  EXPECT_EQ(KeyForFileAt(KernelCache(dir_), root_ / "bzImage"),
            KernelCache::KeyFor(AsBytes("kernel bytes")));
}

// A wall clock far enough ahead that every file written by the test counts as settled.
timespec ClockAheadOfRacyWindow() {
  timespec now = WallClockNow();
  now.tv_sec += 10 * kRacyWindowSeconds;
  return now;
}

TEST_F(KernelCacheTest, KeyForFileRemembersTheHashUntilTheFileChanges) {
  KernelCache cache(dir_, ClockAheadOfRacyWindow);
  WriteFile(root_ / "bzImage", "kernel bytes");
  KeyForFileAt(cache, root_ / "bzImage");
  // Replace the remembered hash: a memo hit must return it, proving no rehash happened.
  const std::string planted(64, 'a');
  for (const auto& memo : fs::directory_iterator(dir_ / "sha256")) WriteFile(memo.path(), planted);
  EXPECT_EQ(KeyForFileAt(cache, root_ / "bzImage"),
            absl::StrCat(planted, "-v", kKernelCacheFormatVersion));
  // Another file in its place has another identity: the memo no longer applies.
  WriteFile(root_ / "replacement", "other bytes!");
  fs::rename(root_ / "replacement", root_ / "bzImage");
  EXPECT_EQ(KeyForFileAt(cache, root_ / "bzImage"), KernelCache::KeyFor(AsBytes("other bytes!")));
}

// A file changed less than the racy window ago could change again within the same timestamp
// tick, keeping its identity: it is hashed every time, and nothing is remembered.
TEST_F(KernelCacheTest, KeyForFileRemembersNothingAboutAJustWrittenFile) {
  KernelCache cache(dir_);  // the real clock: the file was written just now
  WriteFile(root_ / "bzImage", "kernel bytes");
  EXPECT_EQ(KeyForFileAt(cache, root_ / "bzImage"), KernelCache::KeyFor(AsBytes("kernel bytes")));
  EXPECT_FALSE(fs::exists(dir_ / "sha256"));
  // Rewritten in place, same size, likely within the same tick: still the new bytes' key.
  { std::ofstream(root_ / "bzImage", std::ios::binary) << "other bytes!"; }
  EXPECT_EQ(KeyForFileAt(cache, root_ / "bzImage"), KernelCache::KeyFor(AsBytes("other bytes!")));
}

TEST_F(KernelCacheTest, ClearAlsoForgetsRememberedHashesAndVerifiedEntries) {
  KernelCache cache(dir_, ClockAheadOfRacyWindow);
  WriteFile(root_ / "bzImage", "kernel bytes");
  KeyForFileAt(cache, root_ / "bzImage");
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(4096, 1)).ok());
  ASSERT_TRUE(LookupCopy(cache, kKey).ok());
  ASSERT_TRUE(fs::exists(dir_ / "sha256"));
  ASSERT_TRUE(fs::exists(dir_ / "verified"));
  ASSERT_TRUE(cache.Clear().ok());
  EXPECT_FALSE(fs::exists(dir_ / "sha256"));
  EXPECT_FALSE(fs::exists(dir_ / "verified"));
}

// Once an entry's checksum has matched, the same entry file is not hashed again: proven by
// corrupting the content, then re-planting the memo under the corrupted file's identity.
TEST_F(KernelCacheTest, LookupVerifiesAnEntryFileOnlyOnce) {
  KernelCache cache(dir_, ClockAheadOfRacyWindow);
  const std::vector<uint8_t> content = RandomBytes(8192, 3);
  ASSERT_TRUE(cache.Store(kKey, content).ok());
  ASSERT_THAT(*LookupCopy(cache, kKey), Optional(content));
  const fs::path memo = dir_ / "verified" / kKey;
  ASSERT_TRUE(fs::exists(memo));

  PatchFile(EntryPath(kKey), kHeaderSize + 10, "\x5a");
  struct stat st;
  ASSERT_EQ(::stat(EntryPath(kKey).c_str(), &st), 0);
  const std::optional<std::string> identity = SettledFileIdentity(st, ClockAheadOfRacyWindow());
  ASSERT_TRUE(identity.has_value());
  WriteFile(memo, *identity);
  absl::StatusOr<std::optional<std::vector<uint8_t>>> trusted = LookupCopy(cache, kKey);
  ASSERT_TRUE(trusted.ok());
  ASSERT_TRUE(trusted->has_value());
  EXPECT_EQ((**trusted)[10], 0x5a);
}

// Changing an entry after it was verified changes its identity: the change is caught.
TEST_F(KernelCacheTest, ACorruptionAfterVerificationIsStillDetected) {
  KernelCache cache(dir_, ClockAheadOfRacyWindow);
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(8192, 4)).ok());
  ASSERT_TRUE(LookupCopy(cache, kKey).ok());
  ASSERT_TRUE(fs::exists(dir_ / "verified" / kKey));
  PatchFile(EntryPath(kKey), kHeaderSize + 10, "\x5a");
  // The patch moved the entry's ctime to now: its identity no longer matches the memo.
  KernelCache real_clock(dir_);
  testing::internal::CaptureStderr();
  absl::StatusOr<std::optional<std::vector<uint8_t>>> result = LookupCopy(real_clock, kKey);
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::nullopt);
  EXPECT_THAT(log, HasSubstr("checksum"));
}

// The entry Store wrote is known to match its checksum: the first boot that finds it, once it
// has settled, does not hash it again (LookupVerifiesAnEntryFileOnlyOnce shows a memo is trusted).
TEST_F(KernelCacheTest, StoreRemembersTheEntryFileItWroteAsVerified) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(100, 5)).ok());
  struct stat st;
  ASSERT_EQ(::stat(EntryPath(kKey).c_str(), &st), 0);
  std::ifstream memo(dir_ / "verified" / kKey);
  const std::string remembered((std::istreambuf_iterator<char>(memo)), {});
  EXPECT_EQ(remembered, FileIdentity(st));
}

// A just-written entry is verified on every lookup until it has settled, whatever is remembered:
// a change within the same timestamp tick would keep its identity.
TEST_F(KernelCacheTest, LookupTrustsNoMemoOfAJustWrittenEntry) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, RandomBytes(8192, 5)).ok());
  PatchFile(EntryPath(kKey), kHeaderSize + 10, "\x5a");
  struct stat st;
  ASSERT_EQ(::stat(EntryPath(kKey).c_str(), &st), 0);
  fs::create_directories(dir_ / "verified");
  WriteFile(dir_ / "verified" / kKey, FileIdentity(st));
  testing::internal::CaptureStderr();
  absl::StatusOr<std::optional<std::vector<uint8_t>>> result = LookupCopy(cache, kKey);
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::nullopt);
  EXPECT_THAT(log, HasSubstr("checksum"));
}

TEST_F(KernelCacheTest, PrepareDirectoryCreatesAPrivateDirectory) {
  const fs::path dir = root_ / "a" / "b";
  ASSERT_TRUE(KernelCache(dir).PrepareDirectory().ok());
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(KernelCacheTest, PrepareDirectoryUnderARegularFileFailsNamingThePath) {
  WriteFile(root_ / "file", "not a directory");
  absl::Status status = KernelCache(root_ / "file" / "sub").PrepareDirectory();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr((root_ / "file").string()));
}

// Two processes keep replacing one entry with different 8 MiB contents while this one reads
// it: every lookup finds one complete content, never a miss, a mix or a short read.
TEST_F(KernelCacheTest, ConcurrentWritersNeverExposeAPartialEntry) {
  constexpr size_t kSize = 8 * 1024 * 1024;
  const std::vector<std::vector<uint8_t>> contents = {RandomBytes(kSize, 1), RandomBytes(kSize, 2)};
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, contents[0]).ok());
  std::vector<pid_t> writers;
  for (const std::vector<uint8_t>& content : contents) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0; i < 20; ++i) {
        if (!cache.Store(kKey, content).ok()) ::_exit(1);
      }
      ::_exit(0);
    }
    writers.push_back(pid);
  }
  // No ASSERT inside the loop: the writers are always waited for.
  int lookups = 0;
  int bad_lookups = 0;
  for (int running = writers.size(); running > 0;) {
    absl::StatusOr<std::optional<std::vector<uint8_t>>> result = LookupCopy(cache, kKey);
    ++lookups;
    if (!result.ok() || !result->has_value() ||
        (**result != contents[0] && **result != contents[1])) {
      ++bad_lookups;
    }
    running = 0;
    for (pid_t& pid : writers) {
      int wstatus = 0;
      if (pid > 0 && ::waitpid(pid, &wstatus, WNOHANG) == pid) {
        EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
        pid = 0;
      }
      running += pid > 0;
    }
  }
  EXPECT_EQ(bad_lookups, 0) << "of " << lookups << " lookups";
  absl::StatusOr<std::optional<std::vector<uint8_t>>> last = LookupCopy(cache, kKey);
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_TRUE(**last == contents[0] || **last == contents[1]);
  EXPECT_THAT(TempFilesIn(dir_), IsEmpty());
}

TEST_F(KernelCacheTest, ListShowsEntriesSortedByKeyWithTheirSizes) {
  KernelCache cache(dir_);
  EXPECT_THAT(*cache.List(), IsEmpty());
  ASSERT_TRUE(cache.Store("bbb-v1", RandomBytes(10, 1)).ok());
  ASSERT_TRUE(cache.Store("aaa-v1", RandomBytes(20, 1)).ok());
  WriteFile(dir_ / ".tmp-ccc-v1-XXXXXX", "half written");
  WriteFile(dir_ / "notes.txt", "not an entry");
  absl::StatusOr<std::vector<KernelCacheEntryInfo>> entries = cache.List();
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].key, "aaa-v1");
  EXPECT_EQ((*entries)[0].path, EntryPath("aaa-v1"));
  EXPECT_EQ((*entries)[0].size_bytes, kHeaderSize + 20);
  EXPECT_EQ((*entries)[1].key, "bbb-v1");
  EXPECT_EQ((*entries)[1].size_bytes, kHeaderSize + 10);
}

TEST_F(KernelCacheTest, ClearRemovesEntriesAndStaleTempFilesOnly) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store("aaa-v1", RandomBytes(10, 1)).ok());
  ASSERT_TRUE(cache.Store("bbb-v1", RandomBytes(10, 1)).ok());
  WriteFile(dir_ / ".tmp-stale-v1-abcdef", "left by a writer that died");
  WriteFile(dir_ / "notes.txt", "not ours");
  // A Store() in progress holds a lock on its temporary file; Clear() must leave it alone.
  const fs::path busy = dir_ / ".tmp-busy-v1-abcdef";
  WriteFile(busy, "being written");
  UniqueFd busy_fd(::open(busy.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(::flock(busy_fd.get(), LOCK_EX), 0);

  absl::StatusOr<int> removed = cache.Clear();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 3);
  EXPECT_THAT(*cache.List(), IsEmpty());
  EXPECT_THAT(TempFilesIn(dir_), ElementsAre(".tmp-busy-v1-abcdef"));
  EXPECT_TRUE(fs::exists(dir_ / "notes.txt"));
}

TEST_F(KernelCacheTest, ClearOfMissingDirectoryRemovesNothing) {
  absl::StatusOr<int> removed = KernelCache(dir_).Clear();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 0);
}

TEST(KernelCacheForCurrentUserTest, UsesAbsoluteXdgCacheHome) {
  ScopedEnv xdg("XDG_CACHE_HOME", "/xdg/cache");
  ScopedEnv home("HOME", "/home/user");
  absl::StatusOr<KernelCache> cache = KernelCache::ForCurrentUser();
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ(cache->directory(), fs::path("/xdg/cache/minivmm"));
}

TEST(KernelCacheForCurrentUserTest, FallsBackToHomeCacheWhenXdgIsUnsetEmptyOrRelative) {
  ScopedEnv home("HOME", "/home/user");
  for (const char* xdg_value : {static_cast<const char*>(nullptr), "", "relative/cache"}) {
    ScopedEnv xdg("XDG_CACHE_HOME", xdg_value);
    absl::StatusOr<KernelCache> cache = KernelCache::ForCurrentUser();
    ASSERT_TRUE(cache.ok()) << cache.status();
    EXPECT_EQ(cache->directory(), fs::path("/home/user/.cache/minivmm"));
  }
}

TEST(KernelCacheForCurrentUserTest, FailsWithoutXdgCacheHomeOrHome) {
  ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
  ScopedEnv home("HOME", nullptr);
  absl::StatusOr<KernelCache> cache = KernelCache::ForCurrentUser();
  EXPECT_EQ(cache.status().message(), "cannot find a cache directory: set XDG_CACHE_HOME or HOME");
}

TEST_F(KernelCacheTest, CacheListPrintsEmptyDirectory) {
  std::ostringstream out, err;
  const std::vector<std::string> args = {"list"};
  EXPECT_EQ(RunCacheCommand(args, KernelCache(dir_), out, err), 0);
  EXPECT_EQ(out.str(), "kernel cache " + dir_.string() + " is empty\n");
  EXPECT_EQ(err.str(), "");
}

TEST_F(KernelCacheTest, CacheListPrintsKeySizeInMibAndPath) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store(kKey, std::vector<uint8_t>(3 * 1024 * 1024)).ok());
  std::ostringstream out, err;
  const std::vector<std::string> args = {"list"};
  EXPECT_EQ(RunCacheCommand(args, cache, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("KEY"));
  EXPECT_THAT(out.str(), HasSubstr(kKey));
  EXPECT_THAT(out.str(), HasSubstr(" 3.0 "));
  EXPECT_THAT(out.str(), HasSubstr(EntryPath(kKey).string()));
}

TEST_F(KernelCacheTest, CacheClearReportsHowManyEntriesWereRemoved) {
  KernelCache cache(dir_);
  ASSERT_TRUE(cache.Store("aaa-v1", AsBytes("a")).ok());
  ASSERT_TRUE(cache.Store("bbb-v1", AsBytes("b")).ok());
  std::ostringstream out, err;
  const std::vector<std::string> args = {"clear"};
  EXPECT_EQ(RunCacheCommand(args, cache, out, err), 0);
  EXPECT_EQ(out.str(), "removed 2 entries from " + dir_.string() + "\n");
  EXPECT_THAT(*cache.List(), IsEmpty());
}

TEST_F(KernelCacheTest, CacheCommandWithUnknownOrMissingSubcommandPrintsUsage) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"purge"}, {}, {"list", "extra"}}) {
    std::ostringstream out, err;
    EXPECT_EQ(RunCacheCommand(args, KernelCache(dir_), out, err), 1);
    EXPECT_EQ(out.str(), "");
    EXPECT_THAT(err.str(), HasSubstr("Usage: minivmm cache list"));
  }
}

TEST_F(KernelCacheTest, CacheCommandUsesTheCurrentUsersCache) {
  ScopedEnv xdg("XDG_CACHE_HOME", root_.c_str());
  testing::internal::CaptureStdout();
  const std::vector<std::string> args = {"list"};
  EXPECT_EQ(RunCacheCommand(args), 0);
  EXPECT_EQ(testing::internal::GetCapturedStdout(),
            "kernel cache " + (root_ / "minivmm").string() + " is empty\n");
}

}  // namespace
}  // namespace minivmm
