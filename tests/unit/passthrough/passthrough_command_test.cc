// `minivmm passthrough` over a fake sysfs: what check and list print, and that bind/release
// report the outcome and fail with one line.
#include "passthrough/passthrough_command.h"

#include <cstdio>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/passthrough/fake_sysfs.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class PassthroughCommandTest : public ::testing::Test {
 protected:
  // Runs the command, capturing what it prints; returns its exit code.
  int Run(std::vector<std::string> args, bool force = false) {
    std::FILE* out_file = std::tmpfile();
    std::FILE* err_file = std::tmpfile();
    const int code = RunPassthroughCommand(
        args, force, {.pci = &host_, .writer = &kernel_, .proc_root = "/nonexistent"}, out_file,
        err_file);
    out_ = Slurp(out_file);
    err_ = Slurp(err_file);
    return code;
  }
  static std::string Slurp(std::FILE* file) {
    std::rewind(file);
    std::string text;
    char buffer[512];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
    std::fclose(file);
    return text;
  }

  FakeSysfs sysfs_;
  HostPci host_{sysfs_.root()};
  FakeKernel kernel_{&sysfs_};
  std::string out_, err_;
};

TEST_F(PassthroughCommandTest, CheckWithoutIommuGroupsSaysTheIommuIsOffAndHowToTurnItOn) {
  EXPECT_EQ(Run({"check"}), 1);
  EXPECT_THAT(err_, HasSubstr("the IOMMU is off"));
  EXPECT_THAT(err_, HasSubstr("intel_iommu=on"));
}

TEST_F(PassthroughCommandTest, CheckCountsGroupsAndNeedsVfioPci) {
  sysfs_.AddDevice("0000:00:03.0", 3, "e1000e");
  sysfs_.AddDevice("0000:00:04.0", 4, "e1000e");
  EXPECT_EQ(Run({"check"}), 1);
  EXPECT_THAT(out_, HasSubstr("IOMMU: on (2 groups)"));
  EXPECT_THAT(err_, HasSubstr("modprobe vfio-pci"));
  sysfs_.AddDriver("vfio-pci");
  EXPECT_EQ(Run({"check"}), 0);
  EXPECT_THAT(out_, HasSubstr("vfio-pci: loaded"));
}

TEST_F(PassthroughCommandTest, ListShowsIdsGroupsDriversAndWhatBlocksEachFunction) {
  sysfs_.AddDevice("0000:00:03.0", 3, "vfio-pci");
  sysfs_.AddDevice("0000:00:04.0", 4, "e1000e");
  sysfs_.AddDevice("0000:00:05.0", -1, "");
  sysfs_.WriteAttribute("0000:00:03.0", "vendor", "0x8086");
  sysfs_.WriteAttribute("0000:00:03.0", "device", "0x10d3");
  sysfs_.WriteAttribute("0000:00:03.0", "class", "0x020000");
  sysfs_.AddNetInterface("0000:00:04.0", "eth0", /*up=*/true);
  EXPECT_EQ(Run({"list"}), 0);
  EXPECT_THAT(out_, MatchesRegex("BDF +ID +CLASS +GROUP +DRIVER +STATUS\n"
                                 "0000:00:03.0 +8086:10d3 +020000 +3 +vfio-pci +ready for a VM\n"
                                 "0000:00:04.0 .* 4 +e1000e +host uses it: network interface "
                                 "eth0 is up\n"
                                 "0000:00:05.0 .* - +- +no IOMMU group\n"));
}

TEST_F(PassthroughCommandTest, BindAndReleasePrintWhatTheyDid) {
  sysfs_.AddDevice("0000:00:03.0", 3, "e1000e");
  sysfs_.AddDriver("vfio-pci");
  kernel_.SetNativeDriver("0000:00:03.0", "e1000e");
  EXPECT_EQ(Run({"bind", "00:03.0"}), 0);
  EXPECT_EQ(out_, "bound 0000:00:03.0 to vfio-pci (was: e1000e; IOMMU group 3)\n");
  EXPECT_EQ(Run({"release", "00:03.0"}), 0);
  EXPECT_EQ(out_, "released 0000:00:03.0: the host's e1000e driver has it again\n");
}

TEST_F(PassthroughCommandTest, ARefusedBindIsOneErrorLineAndExitCode1) {
  sysfs_.AddDevice("0000:00:03.0", 3, "e1000e");
  sysfs_.AddDriver("vfio-pci");
  sysfs_.AddNetInterface("0000:00:03.0", "eth0", /*up=*/true);
  EXPECT_EQ(Run({"bind", "0000:00:03.0"}), 1);
  EXPECT_THAT(err_, MatchesRegex("minivmm passthrough: PCI device 0000:00:03.0 is in use by "
                                 "the host [^\n]*--force\n"));
  EXPECT_EQ(Run({"bind", "0000:00:03.0"}, /*force=*/true), 0);
}

TEST_F(PassthroughCommandTest, UnknownOrIncompleteCommandsPrintUsage) {
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{}, {"bind"}, {"frobnicate"}, {"list", "extra"}}) {
    EXPECT_EQ(Run(args), 1);
    EXPECT_THAT(err_, HasSubstr("usage: minivmm passthrough"));
  }
}

}  // namespace
}  // namespace minivmm
