#include "passthrough/vfio_container.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

// A host without the VFIO driver has no /dev/vfio/vfio: the error names the node and the fix.
TEST(VfioContainerTest, MissingVfioNodeSaysToLoadTheDriver) {
  VfioHostPaths paths;
  paths.dev_vfio = testing::TempDir() + "/no-such-dev-vfio";
  absl::StatusOr<std::unique_ptr<VfioContainer>> container = VfioContainer::Open(paths);
  ASSERT_FALSE(container.ok());
  EXPECT_EQ(container.status().code(), absl::StatusCode::kNotFound);
  const std::string message(container.status().message());
  EXPECT_THAT(message, HasSubstr(paths.dev_vfio + "/vfio"));
  EXPECT_THAT(message, HasSubstr("modprobe vfio-pci"));
}

}  // namespace
}  // namespace minivmm
