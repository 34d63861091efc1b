// The checks a snapshot folder gets before anything is written to it, and before a restore opens
// KVM: each way a user can get it wrong is one error naming the folder or file.
#include "vmm/snapshot_folder.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "vmm/snapshot/state_file.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class SnapshotFolderTest : public ::testing::Test {
 protected:
  testing_scratch::ScratchDir dir_{"snapshot_folder_test"};
};

TEST_F(SnapshotFolderTest, CreatesANewFolderAndTakesAnEmptyOne) {
  absl::StatusOr<bool> created = PrepareSnapshotFolder(dir_.path() / "new");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(*created);
  EXPECT_TRUE(fs::is_directory(dir_.path() / "new"));
  absl::StatusOr<bool> again = PrepareSnapshotFolder(dir_.path() / "new");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again) << "an existing empty folder is not ours to remove on failure";
}

TEST_F(SnapshotFolderTest, RefusesWhatItCannotUseNamingTheFix) {
  const struct {
    fs::path folder;
    const char* message;
  } kCases[] = {
      {"relative/snap", "is relative: give an absolute path"},
      {dir_.path() / "full", "is not empty: name a new or empty folder"},
      {dir_.path() / "file", "exists and is not a folder"},
      {dir_.path() / "missing" / "snap", "its parent must exist"},
  };
  fs::create_directory(dir_.path() / "full");
  std::ofstream(dir_.path() / "full" / "memory") << "x";
  std::ofstream(dir_.path() / "file") << "x";
  for (const auto& c : kCases) {
    absl::StatusOr<bool> created = PrepareSnapshotFolder(c.folder);
    ASSERT_FALSE(created.ok()) << c.folder;
    EXPECT_THAT(created.status().message(), HasSubstr(c.message)) << c.folder;
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "missing"));
}

TEST_F(SnapshotFolderTest, ReadRefusesAFolderThatIsNotASnapshot) {
  absl::StatusOr<SnapshotFiles> missing = ReadSnapshot(dir_.path() / "nothing");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("is not a snapshot folder"));

  fs::create_directory(dir_.path() / "empty");
  absl::StatusOr<SnapshotFiles> no_state = ReadSnapshot(dir_.path() / "empty");
  ASSERT_FALSE(no_state.ok());
  EXPECT_THAT(no_state.status().message(), HasSubstr((dir_.path() / "empty" / "state").string()));
}

TEST_F(SnapshotFolderTest, ReadRefusesAWellFramedPayloadThatIsNotAVmState) {
  const fs::path folder = dir_.path() / "foreign";
  fs::create_directory(folder);
  // A valid header and checksum around bytes that are no VmState (a field with a bad wire type).
  ASSERT_TRUE(WriteStateFile(folder / "state", std::string("\x0f\xff\xff", 3)).ok());
  absl::StatusOr<SnapshotFiles> read = ReadSnapshot(folder);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("does not parse as a VM state"));
}

}  // namespace
}  // namespace minivmm
