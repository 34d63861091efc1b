// Binding host functions to vfio-pci and giving them back, against a fake sysfs and a fake
// kernel: what is written where, and what is refused.
#include "passthrough/vfio_binding.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/passthrough/fake_sysfs.h"
#include "tests/unit/testing/scratch_dir.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing_scratch::ScratchDir;

constexpr char kNic[] = "0000:00:03.0";

class VfioBindingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sysfs_.AddDevice(kNic, 7, "e1000e");
    sysfs_.AddDriver("vfio-pci");
    kernel_.SetNativeDriver(kNic, "e1000e");
  }
  std::string Driver() { return *host_.DriverOf(kNic); }
  // A process in the fake /proc that holds /dev/vfio/GROUP open.
  void AddVfioHolder(int pid, int group) {
    const std::filesystem::path process = proc_.path() / std::to_string(pid);
    std::filesystem::create_directories(process / "fd");
    std::ofstream(process / "comm") << "minivmm\n";
    std::filesystem::create_symlink("/dev/vfio/" + std::to_string(group), process / "fd/12");
  }

  FakeSysfs sysfs_;
  HostPci host_{sysfs_.root()};
  FakeKernel kernel_{&sysfs_};
  ScratchDir proc_{"fake_proc"};
};

TEST_F(VfioBindingTest, BindSetsTheOverrideUnbindsTheHostDriverAndProbes) {
  absl::StatusOr<std::string> done = BindToVfioPci(host_, kernel_, "00:03.0", {});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(*done, "bound 0000:00:03.0 to vfio-pci (was: e1000e; IOMMU group 7)");
  EXPECT_EQ(Driver(), "vfio-pci");
  EXPECT_THAT(kernel_.writes,
              ElementsAre("/bus/pci/devices/0000:00:03.0/driver_override <- vfio-pci",
                          "/bus/pci/devices/0000:00:03.0/driver/unbind <- 0000:00:03.0",
                          "/bus/pci/drivers_probe <- 0000:00:03.0"));
}

TEST_F(VfioBindingTest, BindingABoundFunctionAgainChangesNothing) {
  sysfs_.BindDriver(kNic, "vfio-pci");
  absl::StatusOr<std::string> done = BindToVfioPci(host_, kernel_, kNic, {});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(*done, HasSubstr("already bound to vfio-pci"));
  EXPECT_THAT(kernel_.writes, IsEmpty());
}

TEST_F(VfioBindingTest, AFunctionTheHostUsesIsRefusedUnlessForced) {
  sysfs_.AddNetInterface(kNic, "eth1", /*up=*/true);
  sysfs_.AddNetInterface(kNic, "eth9", /*up=*/false);
  absl::StatusOr<std::string> refused = BindToVfioPci(host_, kernel_, kNic, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("in use by the host (network interface eth1 is up)"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--force"));
  EXPECT_THAT(kernel_.writes, IsEmpty());
  EXPECT_EQ(Driver(), "e1000e");

  absl::StatusOr<std::string> forced = BindToVfioPci(host_, kernel_, kNic, {.force = true});
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(Driver(), "vfio-pci");
}

TEST_F(VfioBindingTest, HostUsesNameUpInterfacesAndDisks) {
  sysfs_.AddNetInterface(kNic, "eth1", /*up=*/true);
  sysfs_.AddNetInterface(kNic, "eth2", /*up=*/false);
  sysfs_.AddDisk(kNic, "sda");
  std::vector<std::string> uses = HostUsesOf(host_, kNic);
  std::sort(uses.begin(), uses.end());
  EXPECT_THAT(uses, ElementsAre("disk sda", "network interface eth1 is up"));
}

TEST_F(VfioBindingTest, BindWithoutVfioPciLoadedSaysModprobe) {
  std::filesystem::remove(sysfs_.root() + "/bus/pci/drivers/vfio-pci");
  absl::StatusOr<std::string> refused = BindToVfioPci(host_, kernel_, kNic, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("modprobe vfio-pci"));
  EXPECT_THAT(kernel_.writes, IsEmpty());
}

TEST_F(VfioBindingTest, BindWithoutAnIommuGroupSaysHowToEnableTheIommu) {
  sysfs_.AddDevice("0000:00:05.0", -1, "e1000e");
  absl::StatusOr<std::string> refused = BindToVfioPci(host_, kernel_, "0000:00:05.0", {});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("intel_iommu=on"));
  EXPECT_THAT(kernel_.writes, IsEmpty());
}

TEST_F(VfioBindingTest, ABindTheKernelDoesNotCompleteIsUndone) {
  // The probe binds nothing (as when vfio-pci rejects the device): the override is cleared
  // and the host driver gets the function back.
  class RefusingKernel : public FakeKernel {
   public:
    using FakeKernel::FakeKernel;
    absl::Status Write(const std::string& path, std::string_view value) override {
      if (path.ends_with("driver_override") && value == "vfio-pci") {
        return FakeKernel::Write(path, "e1000e-refuses");
      }
      return FakeKernel::Write(path, value);
    }
  } kernel(&sysfs_);
  kernel.SetNativeDriver(kNic, "e1000e");
  absl::StatusOr<std::string> failed = BindToVfioPci(host_, kernel, kNic, {});
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().message(), HasSubstr("did not bind 0000:00:03.0 to vfio-pci"));
  EXPECT_THAT(failed.status().message(), HasSubstr("dmesg"));
  EXPECT_EQ(Driver(), "e1000e");
}

TEST_F(VfioBindingTest, BindNotesAGroupMemberThatStillBlocksTheGroup) {
  sysfs_.AddDevice("0000:00:03.1", 7, "snd_hda_intel");
  absl::StatusOr<std::string> done = BindToVfioPci(host_, kernel_, kNic, {});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(*done, HasSubstr("\nnote: IOMMU group 7"));
  EXPECT_THAT(*done, HasSubstr("0000:00:03.1, bound to snd_hda_intel"));
}

TEST_F(VfioBindingTest, ReleaseClearsTheOverrideAndTheHostDriverProbesAgain) {
  ASSERT_TRUE(BindToVfioPci(host_, kernel_, kNic, {}).ok());
  kernel_.writes.clear();
  absl::StatusOr<std::string> done = ReleaseFromVfioPci(host_, kernel_, proc_.path(), kNic);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(*done, "released 0000:00:03.0: the host's e1000e driver has it again");
  EXPECT_EQ(Driver(), "e1000e");
  EXPECT_THAT(kernel_.writes,
              ElementsAre("/bus/pci/devices/0000:00:03.0/driver_override <- \n",
                          "/bus/pci/devices/0000:00:03.0/driver/unbind <- 0000:00:03.0",
                          "/bus/pci/drivers_probe <- 0000:00:03.0"));
}

TEST_F(VfioBindingTest, ReleaseWhileAVmHoldsTheGroupIsRefusedNamingTheProcess) {
  sysfs_.BindDriver(kNic, "vfio-pci");
  AddVfioHolder(4242, 7);
  AddVfioHolder(4343, 8);  // another group: not in the way
  absl::StatusOr<std::string> refused = ReleaseFromVfioPci(host_, kernel_, proc_.path(), kNic);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("IOMMU group 7 is open in pid 4242 (minivmm): power that VM off first"));
  EXPECT_THAT(kernel_.writes, IsEmpty());
  EXPECT_EQ(Driver(), "vfio-pci");
}

TEST_F(VfioBindingTest, ReleaseOfAFunctionNotOnVfioPciSaysSo) {
  absl::StatusOr<std::string> refused = ReleaseFromVfioPci(host_, kernel_, proc_.path(), kNic);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("not bound to vfio-pci (driver: e1000e): nothing to release"));
}

TEST_F(VfioBindingTest, AMalformedAddressTouchesNothing) {
  absl::StatusOr<std::string> refused = BindToVfioPci(host_, kernel_, "../../etc", {});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("DDDD:BB:DD.F"));
  EXPECT_THAT(kernel_.writes, IsEmpty());
}

}  // namespace
}  // namespace minivmm
