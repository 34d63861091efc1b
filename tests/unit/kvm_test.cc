// What a user sees when KVM is not usable: one message that names the device and the fix.
#include "vmm/kvm.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(KvmSystemTest, MissingDeviceSaysHowToGetKvm) {
  absl::StatusOr<KvmSystem> kvm = KvmSystem::Open("/nonexistent/kvm");
  ASSERT_FALSE(kvm.ok());
  EXPECT_EQ(kvm.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(kvm.status().message()),
              AllOf(HasSubstr("/nonexistent/kvm does not exist"), HasSubstr("modprobe kvm_intel"),
                    HasSubstr("nested harness")));
}

TEST(KvmSystemTest, DeviceThatIsNotKvmIsRefusedWithTheApiVersion) {
  absl::StatusOr<KvmSystem> kvm = KvmSystem::Open("/dev/null");
  ASSERT_FALSE(kvm.ok());
  EXPECT_THAT(std::string(kvm.status().message()),
              AllOf(HasSubstr("/dev/null"), HasSubstr("KVM API version -1, minivmm needs 12")));
}

}  // namespace
}  // namespace minivmm
