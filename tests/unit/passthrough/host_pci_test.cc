// Host PCI checks against a fake sysfs tree: addresses, IOMMU groups and driver bindings, and
// the messages that tell the user what to fix.
#include "passthrough/host_pci.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/passthrough/fake_sysfs.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(PciAddressTest, ParsesFullAndShortForms) {
  absl::StatusOr<PciAddress> full = ParsePciAddress("0001:0a:1f.7");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(*full, (PciAddress{1, 0x0a, 0x1f, 7}));
  EXPECT_EQ(full->ToString(), "0001:0a:1f.7");

  absl::StatusOr<std::string> short_form = CanonicalPciAddress("00:03.0");
  ASSERT_TRUE(short_form.ok()) << short_form.status();
  EXPECT_EQ(*short_form, "0000:00:03.0");
}

TEST(PciAddressTest, CanonicalFormIsLowerCase) {
  absl::StatusOr<std::string> address = CanonicalPciAddress("0000:AB:0C.1");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, "0000:ab:0c.1");
}

TEST(PciAddressTest, AcceptsFiveDigitVmdDomains) {
  absl::StatusOr<std::string> address = CanonicalPciAddress("10000:e0:06.0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, "10000:e0:06.0");
}

TEST(PciAddressTest, RejectsMalformedAddresses) {
  for (const char* bad :
       {"", "0000:00:03", "0000:00:03.", "000:00:03.0", "0000:0:03.0", "0000:00:3.0",
        "0000:00:03.8", "0000:00:20.0", "0000:00:03.0x", " 0000:00:03.0", "0000-00-03.0",
        "00:03:00.0.0", "g000:00:03.0", "0000:00:+3.0", "../../../etc", "0000:00:03.0/..",
        "123456789:00:03.0", "0000:00:03.-1"}) {
    absl::StatusOr<PciAddress> address = ParsePciAddress(bad);
    EXPECT_FALSE(address.ok()) << "accepted '" << bad << "'";
    if (!address.ok()) {
      EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(Message(address.status()), HasSubstr("DDDD:BB:DD.F"));
    }
  }
}

TEST(HostPciTest, ReadsGroupDriverAndMembers) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", 7, "vfio-pci");
  sysfs.AddDevice("0000:00:03.1", 7, "");
  sysfs.AddDevice("0000:00:04.0", 8, "e1000e");
  HostPci host(sysfs.root());

  absl::StatusOr<int> group = host.IommuGroupOf("00:03.0");
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(*group, 7);
  absl::StatusOr<std::string> driver = host.DriverOf("0000:00:04.0");
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_EQ(*driver, "e1000e");
  absl::StatusOr<std::string> none = host.DriverOf("0000:00:03.1");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, "");
  absl::StatusOr<std::vector<std::string>> members = host.GroupMembers(7);
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_THAT(*members, ElementsAre("0000:00:03.0", "0000:00:03.1"));
}

TEST(HostPciTest, MissingGroupIsNotFound) {
  FakeSysfs sysfs;
  HostPci host(sysfs.root());
  absl::StatusOr<std::vector<std::string>> members = host.GroupMembers(42);
  ASSERT_FALSE(members.ok());
  EXPECT_EQ(members.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(members.status()), HasSubstr("no IOMMU group 42"));
}

TEST(HostPciTest, AssignableWhenBoundToVfioPciWithAViableGroup) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", 7, "vfio-pci");
  sysfs.AddDevice("0000:00:03.1", 7, "");          // unbound: fine
  sysfs.AddDevice("0000:00:03.2", 7, "pci-stub");  // driver_managed_dma: fine
  sysfs.AddDevice("0000:00:1c.0", 7, "pcieport");  // bridge: fine
  sysfs.AddDevice("0000:00:03.3", 7, "vfio-pci");
  sysfs.AddDevice("0000:00:04.0", 8, "e1000e");  // another group: irrelevant
  HostPci host(sysfs.root());
  absl::Status status = host.CheckAssignable("00:03.0");
  EXPECT_TRUE(status.ok()) << status;
}

TEST(HostPciTest, MissingDeviceSaysCheckLspci) {
  FakeSysfs sysfs;
  HostPci host(sysfs.root());
  absl::Status status = host.CheckAssignable("0000:00:05.0");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(status), "no PCI device 0000:00:05.0: check lspci -D");
  EXPECT_EQ(host.IommuGroupOf("0000:00:05.0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(host.DriverOf("0000:00:05.0").status().code(), absl::StatusCode::kNotFound);
}

TEST(HostPciTest, BadAddressIsRejectedBeforeTouchingSysfs) {
  FakeSysfs sysfs;
  HostPci host(sysfs.root());
  EXPECT_EQ(host.CheckAssignable("../../..").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host.DriverOf("x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostPciTest, DeviceBoundToAnotherDriverNamesItAndTheFix) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", 7, "e1000e");
  HostPci host(sysfs.root());
  absl::Status status = host.CheckAssignable("0000:00:03.0");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string message = Message(status);
  EXPECT_THAT(message, HasSubstr("0000:00:03.0 is bound to e1000e, not vfio-pci"));
  EXPECT_THAT(message, HasSubstr("bind it to vfio-pci: minivmm passthrough bind 0000:00:03.0"));
  EXPECT_THAT(message, HasSubstr("echo 0000:00:03.0 > " + sysfs.root() +
                                 "/bus/pci/devices/0000:00:03.0/driver/unbind"));
  EXPECT_THAT(message, HasSubstr("echo vfio-pci > " + sysfs.root() +
                                 "/bus/pci/devices/0000:00:03.0/driver_override"));
  EXPECT_THAT(message, HasSubstr("echo 0000:00:03.0 > " + sysfs.root() + "/bus/pci/drivers_probe"));
}

TEST(HostPciTest, UnboundDeviceGetsTheBindHintWithoutUnbind) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", 7, "");
  HostPci host(sysfs.root());
  absl::Status status = host.CheckAssignable("0000:00:03.0");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr("0000:00:03.0 is not bound to any driver"));
  EXPECT_THAT(Message(status), HasSubstr("minivmm passthrough bind 0000:00:03.0"));
  EXPECT_THAT(Message(status), ::testing::Not(HasSubstr("unbind")));
}

TEST(HostPciTest, GroupMemberBoundToAnotherDriverIsNamed) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", 7, "vfio-pci");
  sysfs.AddDevice("0000:00:03.1", 7, "snd_hda_intel");
  HostPci host(sysfs.root());
  absl::Status status = host.CheckAssignable("0000:00:03.0");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string message = Message(status);
  EXPECT_THAT(message, HasSubstr("IOMMU group 7 of 0000:00:03.0"));
  EXPECT_THAT(message, HasSubstr("also holds 0000:00:03.1, bound to snd_hda_intel"));
  EXPECT_THAT(message, HasSubstr("minivmm passthrough bind 0000:00:03.1"));
}

TEST(HostPciTest, NoIommuGroupsSaysEnableTheIommu) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", -1, "vfio-pci");
  HostPci host(sysfs.root());
  absl::StatusOr<int> group = host.IommuGroupOf("0000:00:03.0");
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message = Message(group.status());
  EXPECT_THAT(message, HasSubstr("no IOMMU group for 0000:00:03.0: the host has no IOMMU enabled"));
  EXPECT_THAT(message, HasSubstr("/kernel/iommu_groups is empty"));
  EXPECT_THAT(message, HasSubstr("enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on / "
                                 "amd_iommu=on"));
  // CheckAssignable reaches the same message once the driver is right.
  EXPECT_EQ(Message(host.CheckAssignable("0000:00:03.0")), message);
}

TEST(HostPciTest, DeviceOutsideAnEnabledIommuSaysSo) {
  FakeSysfs sysfs;
  sysfs.AddDevice("0000:00:03.0", -1, "vfio-pci");
  sysfs.AddDevice("0000:00:04.0", 3, "e1000e");
  HostPci host(sysfs.root());
  absl::StatusOr<int> group = host.IommuGroupOf("0000:00:03.0");
  ASSERT_FALSE(group.ok());
  EXPECT_THAT(Message(group.status()), HasSubstr("no IOMMU group for 0000:00:03.0"));
  EXPECT_THAT(Message(group.status()), ::testing::Not(HasSubstr("is empty")));
}

}  // namespace
}  // namespace minivmm
