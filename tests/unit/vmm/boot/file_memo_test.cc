#include "vmm/boot/file_memo.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Optional;

struct stat StatWithCtime(time_t seconds, long nanoseconds) {
  struct stat st {};
  st.st_dev = 0x803;
  st.st_ino = 1234;
  st.st_size = 4096;
  st.st_mtim = {seconds - 100, 7};
  st.st_ctim = {seconds, nanoseconds};
  return st;
}

TEST(SettledFileIdentityTest, AFileIsSettledOnceItsCtimeIsAWindowOld) {
  const timespec now{1'000'000, 500};
  EXPECT_TRUE(SettledFileIdentity(StatWithCtime(now.tv_sec - kRacyWindowSeconds, 500), now));
  EXPECT_TRUE(SettledFileIdentity(StatWithCtime(now.tv_sec - kRacyWindowSeconds - 1, 999), now));
  EXPECT_FALSE(SettledFileIdentity(StatWithCtime(now.tv_sec - kRacyWindowSeconds, 501), now));
  EXPECT_FALSE(SettledFileIdentity(StatWithCtime(now.tv_sec, 0), now));
  EXPECT_FALSE(SettledFileIdentity(StatWithCtime(now.tv_sec + 60, 0), now));  // clock went back
}

TEST(SettledFileIdentityTest, EveryPartOfTheIdentityCounts) {
  const timespec now{1'000'000, 0};
  const struct stat base = StatWithCtime(900'000, 1);
  const std::string identity = *SettledFileIdentity(base, now);
  auto differs = [&](auto change) {
    struct stat st = base;
    change(st);
    return *SettledFileIdentity(st, now) != identity;
  };
  EXPECT_TRUE(differs([](struct stat& st) { st.st_dev += 1; }));
  EXPECT_TRUE(differs([](struct stat& st) { st.st_ino += 1; }));
  EXPECT_TRUE(differs([](struct stat& st) { st.st_size += 1; }));
  EXPECT_TRUE(differs([](struct stat& st) { st.st_mtim.tv_nsec += 1; }));
  EXPECT_TRUE(differs([](struct stat& st) { st.st_ctim.tv_nsec += 1; }));
  EXPECT_EQ(identity.find('/'), std::string::npos);  // usable as a file name
}

class FileMemoTest : public ::testing::Test {
 protected:
  testing_scratch::ScratchDir scratch_{"file_memo_test"};
  const fs::path root_ = scratch_.path();
};

TEST_F(FileMemoTest, AMissingMemoReadsAsNothing) {
  EXPECT_EQ(ReadMemo(root_ / "absent"), std::nullopt);
}

TEST_F(FileMemoTest, WriteMemoCreatesPrivateDirectoriesAndReplacesWhole) {
  const fs::path memo = root_ / "a" / "b" / "memo";
  WriteMemo(memo, "first, longer content");
  EXPECT_THAT(ReadMemo(memo), Optional(std::string("first, longer content")));
  WriteMemo(memo, "second");
  EXPECT_THAT(ReadMemo(memo), Optional(std::string("second")));
  struct stat st;
  ASSERT_EQ(::stat((root_ / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  for (const auto& entry : fs::directory_iterator(memo.parent_path())) {
    EXPECT_EQ(entry.path().filename(), "memo") << "a temporary file was left behind";
  }
}

// The temporary file of a memo write is new (O_EXCL) with a name nobody can guess, so a link
// planted at a predictable name (the old "<memo>.tmp-<pid>") cannot make a root minivmm truncate
// or overwrite the file it points to.
TEST_F(FileMemoTest, WriteMemoWritesNothingThroughAPlantedLink) {
  const fs::path victim = root_ / "victim";
  { std::ofstream(victim) << "precious"; }
  const fs::path memo = root_ / "memos" / "memo";
  fs::create_directories(memo.parent_path());
  fs::create_symlink(victim, memo.string() + ".tmp-" + std::to_string(::getpid()));
  WriteMemo(memo, "memo content");
  EXPECT_THAT(ReadMemo(memo), Optional(std::string("memo content")));
  std::ifstream in(victim);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious");
}

// A memo is a file minivmm wrote: a link in its place reads as no memo.
TEST_F(FileMemoTest, ReadMemoDoesNotFollowALink) {
  { std::ofstream(root_ / "elsewhere") << "planted"; }
  fs::create_symlink(root_ / "elsewhere", root_ / "memo");
  EXPECT_EQ(ReadMemo(root_ / "memo"), std::nullopt);
}

TEST_F(FileMemoTest, AnUnwritableDirectoryIsNotAnError) {
  { std::ofstream(root_ / "file") << "not a directory"; }
  WriteMemo(root_ / "file" / "memo", "content");  // must not throw or abort
  EXPECT_EQ(ReadMemo(root_ / "file" / "memo"), std::nullopt);
}

TEST_F(FileMemoTest, MakePrivateDirectoriesNamesTheDirectoryThatFailed) {
  { std::ofstream(root_ / "file") << "not a directory"; }
  const absl::Status status = MakePrivateDirectories(root_ / "file" / "sub");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr((root_ / "file").string()));
}

}  // namespace
}  // namespace minivmm
