#include "vmm/mobility_blockers.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

TEST(MobilityBlockersTest, AVmWithoutPassthroughHasNone) {
  VmConfig config;
  config.disks.push_back({.path = "/disk.img"});
  config.rng = true;
  EXPECT_TRUE(FindMobilityBlockers(config).empty());
  EXPECT_TRUE(RefuseIfBlocked("snapshot", FindMobilityBlockers(config)).ok());
}

TEST(MobilityBlockersTest, EachPassedThroughFunctionBlocksNamingItselfAndTheRule) {
  VmConfig config;
  config.passthrough.push_back({.address = "0000:01:00.0", .sysfs_path = {}});
  config.passthrough.push_back({.address = "0000:02:00.1", .sysfs_path = {}});
  const std::vector<MobilityBlocker> blockers = FindMobilityBlockers(config);
  ASSERT_EQ(blockers.size(), 2u);
  EXPECT_EQ(blockers[0].function, "passthrough function 0000:01:00.0");
  EXPECT_THAT(blockers[1].reason, HasSubstr("its device state lives in the hardware"));

  const absl::Status refused = RefuseIfBlocked("migrate", blockers);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("cannot migrate: passthrough function 0000:01:00.0"));
  EXPECT_THAT(refused.message(), HasSubstr("passthrough function 0000:02:00.1"));
  EXPECT_THAT(refused.message(), HasSubstr("cannot be snapshotted or migrated"));
}

}  // namespace
}  // namespace minivmm
