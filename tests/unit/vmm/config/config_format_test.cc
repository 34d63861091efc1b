// FormatVmConfig: the text it writes parses back to the same VmConfig, whatever the values.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/vmm/config/config_test_fixture.h"
#include "vmm/config/config.h"

namespace minivmm::config_testing {
namespace {

using ::testing::Not;

void ExpectEqualConfigs(const VmConfig& actual, const VmConfig& expected) {
  EXPECT_EQ(actual.name, expected.name);
  EXPECT_EQ(actual.vcpus, expected.vcpus);
  EXPECT_EQ(actual.memory_mib, expected.memory_mib);
  EXPECT_EQ(actual.on_reboot, expected.on_reboot);
  EXPECT_EQ(actual.kernel, expected.kernel);
  EXPECT_EQ(actual.initramfs, expected.initramfs);
  EXPECT_EQ(actual.cmdline, expected.cmdline);
  EXPECT_EQ(actual.decompress, expected.decompress);
  EXPECT_EQ(actual.serial_mode, expected.serial_mode);
  EXPECT_EQ(actual.serial_path, expected.serial_path);
  ASSERT_EQ(actual.disks.size(), expected.disks.size());
  for (size_t i = 0; i < expected.disks.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "disk " << i);
    EXPECT_EQ(actual.disks[i].path, expected.disks[i].path);
    EXPECT_EQ(actual.disks[i].read_only, expected.disks[i].read_only);
    EXPECT_EQ(actual.disks[i].serial, expected.disks[i].serial);
  }
  EXPECT_EQ(actual.rng, expected.rng);
  ASSERT_EQ(actual.nets.size(), expected.nets.size());
  for (size_t i = 0; i < expected.nets.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "net " << i);
    EXPECT_EQ(actual.nets[i].tap, expected.nets[i].tap);
    EXPECT_EQ(actual.nets[i].mac, expected.nets[i].mac);
  }
  EXPECT_EQ(actual.console_device, expected.console_device);
  ASSERT_EQ(actual.passthrough.size(), expected.passthrough.size());
  for (size_t i = 0; i < expected.passthrough.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "passthrough " << i);
    EXPECT_EQ(actual.passthrough[i].address, expected.passthrough[i].address);
    EXPECT_EQ(actual.passthrough[i].sysfs_path, expected.passthrough[i].sysfs_path);
  }
}

class ConfigFormatTest : public ConfigTest {
 protected:
  // Parses the text as a file in another folder than the one the config's files are in, so a
  // path that was not written absolute would not resolve.
  absl::StatusOr<VmConfig> ParseElsewhere(const std::string& text) const {
    return ParseVmConfig(text, dir_ / "subdir" / "restored.toml");
  }
};

TEST_F(ConfigFormatTest, EveryNonDefaultValueParsesBackEqual) {
  VmConfig config;
  config.name = "web-1.test_vm";
  config.vcpus = 4;
  config.memory_mib = 2048;
  config.on_reboot = RebootAction::kRestart;
  config.kernel = dir_ / "vmlinuz";
  config.initramfs = dir_ / "initramfs.cpio.gz";
  config.cmdline = "console=hvc0 quiet panic=-1";
  config.decompress = KernelDecompression::kGuest;
  config.serial_mode = SerialMode::kFile;
  config.serial_path = dir_ / "subdir" / "serial.log";
  config.disks = {{dir_ / "disk.img", true, "root-disk"}, {dir_ / "disk2.img", false, ""}};
  config.rng = true;
  config.nets = {{"tap0", std::array<uint8_t, 6>{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}},
                 {"tap-b", std::nullopt}};
  config.console_device = ConsoleDevice::kVirtio;
  config.passthrough = {{"0000:00:03.0", "/sys/bus/pci/devices/0000:00:03.0"},
                        {"0000:01:00.1", "/run/fake-sysfs/0000:01:00.1"}};

  const std::string text = FormatVmConfig(config);
  absl::StatusOr<VmConfig> parsed = ParseElsewhere(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  ExpectEqualConfigs(*parsed, config);
  EXPECT_THAT(text, HasSubstr("mac = \"52:54:00:ab:cd:ef\"")) << text;
  EXPECT_THAT(text, HasSubstr("device = \"0000:00:03.0\"")) << text;
  EXPECT_THAT(text, HasSubstr("sysfs = \"/run/fake-sysfs/0000:01:00.1\"")) << text;
}

TEST_F(ConfigFormatTest, DefaultsParseBackEqualWithoutOptionalKeys) {
  VmConfig config;
  config.kernel = dir_ / "vmlinuz";
  const std::string text = FormatVmConfig(config);
  absl::StatusOr<VmConfig> parsed = ParseElsewhere(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  ExpectEqualConfigs(*parsed, config);
  // Keys the parser refuses or would misread when present.
  EXPECT_THAT(text, Not(HasSubstr("initramfs"))) << text;
  EXPECT_THAT(text, Not(HasSubstr("path"))) << text;  // serial path with mode = "stdio"
  EXPECT_THAT(text, Not(HasSubstr("[[disk]]"))) << text;
}

// The name cannot hold quotes or backslashes ([A-Za-z0-9._-]); everything else that is text can.
TEST_F(ConfigFormatTest, QuotesBackslashesAndControlCharactersSurvive) {
  const fs::path kernel = dir_ / "we\"ird\\ker'nel \xc3\xa9";
  WriteFile(kernel, "bzImage");
  VmConfig config;
  config.kernel = kernel;
  config.cmdline = "init=\"/bin/sh -c 'echo \\\"hi\\\"'\" path=C:\\dir\\ \t tab '\"\"\"' \\u0041";
  config.disks = {{dir_ / "disk.img", false, "a\"b\\c'd [x] #1"}};
  const std::string text = FormatVmConfig(config);
  absl::StatusOr<VmConfig> parsed = ParseElsewhere(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  ExpectEqualConfigs(*parsed, config);
}

TEST_F(ConfigFormatTest, WritesRelativePathsAbsolute) {
  VmConfig config;
  config.kernel = fs::relative(dir_ / "vmlinuz", fs::current_path());
  ASSERT_TRUE(config.kernel.is_relative());
  const std::string text = FormatVmConfig(config);
  EXPECT_THAT(text, HasSubstr(absl::StrFormat("kernel = \"%s\"", (dir_ / "vmlinuz").string())));
  absl::StatusOr<VmConfig> parsed = ParseElsewhere(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->kernel, dir_ / "vmlinuz");
}

}  // namespace
}  // namespace minivmm::config_testing
