// vm.toml as it should be: every key parsed, defaults, paths resolved against the config's
// folder. Every way to get it wrong is in config_errors_test.cc.
#include "vmm/config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/vmm/config/config_test_fixture.h"

namespace minivmm::config_testing {
namespace {

TEST_F(ConfigTest, ParsesFullConfig) {
  absl::StatusOr<VmConfig> config = Parse(R"(
[vm]
name = "web-1.test_vm"
vcpus = 4
memory_mib = 2048
on_reboot = "restart"

[boot]
kernel = "vmlinuz"
initramfs = "initramfs.cpio.gz"
cmdline = "console=ttyS0 quiet panic=-1"
decompress = "guest"

[serial]
mode = "file"
path = "serial.log"
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "web-1.test_vm");
  EXPECT_EQ(config->vcpus, 4u);
  EXPECT_EQ(config->memory_mib, 2048u);
  EXPECT_EQ(config->on_reboot, RebootAction::kRestart);
  EXPECT_EQ(config->kernel, dir_ / "vmlinuz");
  EXPECT_EQ(config->initramfs, dir_ / "initramfs.cpio.gz");
  EXPECT_EQ(config->cmdline, "console=ttyS0 quiet panic=-1");
  EXPECT_EQ(config->decompress, KernelDecompression::kGuest);
  EXPECT_EQ(config->serial_mode, SerialMode::kFile);
  EXPECT_EQ(config->serial_path, dir_ / "serial.log");
}

TEST_F(ConfigTest, AppliesDefaultsForOmittedKeys) {
  absl::StatusOr<VmConfig> config = Parse(kBoot);
  ASSERT_TRUE(config.ok()) << config.status();
  const VmConfig defaults;
  EXPECT_EQ(config->name, defaults.name);
  EXPECT_EQ(config->vcpus, defaults.vcpus);
  EXPECT_EQ(config->memory_mib, defaults.memory_mib);
  EXPECT_EQ(config->on_reboot, RebootAction::kExit);
  EXPECT_FALSE(config->initramfs.has_value());
  EXPECT_EQ(config->cmdline, "console=ttyS0");
  EXPECT_EQ(config->decompress, KernelDecompression::kAuto);
  EXPECT_EQ(config->serial_mode, SerialMode::kStdio);
  EXPECT_TRUE(config->serial_path.empty());
}

TEST_F(ConfigTest, AcceptsBoundaryValues) {
  absl::StatusOr<VmConfig> low = Parse("[vm]\nvcpus = 1\nmemory_mib = 32\n" + std::string(kBoot));
  ASSERT_TRUE(low.ok()) << low.status();
  EXPECT_EQ(low->vcpus, 1u);
  EXPECT_EQ(low->memory_mib, kMinMemoryMib);
  absl::StatusOr<VmConfig> high =
      Parse("[vm]\nvcpus = 64\nmemory_mib = 1048576\n" + std::string(kBoot));
  ASSERT_TRUE(high.ok()) << high.status();
  EXPECT_EQ(high->vcpus, kMaxVcpus);
  EXPECT_EQ(high->memory_mib, kMaxMemoryMib);
}

TEST_F(ConfigTest, ResolvesRelativePathsAgainstConfigFolder) {
  fs::create_directory(dir_ / "configs");
  absl::StatusOr<VmConfig> config = ParseVmConfig(R"(
[boot]
kernel = "../vmlinuz"
initramfs = "./../subdir/../initramfs.cpio.gz"
[serial]
mode = "file"
path = "../subdir/serial.log"
)",
                                                  dir_ / "configs" / "vm.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  // Lexically normalized: no "." or ".." left, so logs and errors show the real file.
  EXPECT_EQ(config->kernel, (dir_ / "vmlinuz").lexically_normal());
  EXPECT_EQ(config->initramfs, (dir_ / "initramfs.cpio.gz").lexically_normal());
  EXPECT_EQ(config->serial_path, (dir_ / "subdir" / "serial.log").lexically_normal());
  EXPECT_TRUE(config->kernel.is_absolute());
}

TEST_F(ConfigTest, KeepsAbsolutePaths) {
  absl::StatusOr<VmConfig> config =
      ParseVmConfig(absl::StrFormat("[boot]\nkernel = \"%s\"\n", (dir_ / "vmlinuz").string()),
                    "/elsewhere/vm.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->kernel, dir_ / "vmlinuz");
}

TEST_F(ConfigTest, ResolvesAgainstWorkingDirectoryWhenConfigPathHasNoFolder) {
  const fs::path old_cwd = fs::current_path();
  fs::current_path(dir_);
  absl::StatusOr<VmConfig> config = ParseVmConfig(kBoot, "vm.toml");
  absl::StatusOr<VmConfig> bad = ParseVmConfig("[vm]\nvcpus = 0\n", "vm.toml");
  fs::current_path(old_cwd);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->kernel, (fs::absolute(dir_) / "vmlinuz").lexically_normal());
  // Messages name the config the way the user wrote it.
  EXPECT_THAT(Message(bad), StartsWith("vm.toml:2:9: "));
}

TEST_F(ConfigTest, AcceptsInlineTables) {
  absl::StatusOr<VmConfig> config = Parse("vm = { vcpus = 2 }\nboot = { kernel = \"vmlinuz\" }\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vcpus, 2u);
}

TEST_F(ConfigTest, AcceptsSerialModeNoneWithoutPath) {
  absl::StatusOr<VmConfig> config = Parse(std::string(kBoot) + "[serial]\nmode = \"none\"\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->serial_mode, SerialMode::kNone);
}

TEST_F(ConfigTest, AcceptsCmdlineOfMaximumLength) {
  std::string cmdline(4095, 'a');
  absl::StatusOr<VmConfig> config = Parse(absl::StrFormat("%scmdline = \"%s\"\n", kBoot, cmdline));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cmdline, cmdline);
}

TEST_F(ConfigTest, RejectsUnreadableKernel) {
  if (geteuid() == 0) GTEST_SKIP() << "root can read any file";
  ASSERT_EQ(chmod((dir_ / "vmlinuz").c_str(), 0), 0);
  absl::StatusOr<VmConfig> config = Parse(kBoot);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config), StartsWith(At(2, 10)));
  EXPECT_THAT(Message(config), HasSubstr("Permission denied"));
}

TEST_F(ConfigTest, ParsesDisksInOrderAndRng) {
  absl::StatusOr<VmConfig> config =
      Parse(absl::StrCat(kBoot,
                         "[[disk]]\npath = \"disk.img\"\nserial = \"root-disk\"\n"
                         "[[disk]]\npath = \"disk2.img\"\nread_only = true\n[rng]\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->disks.size(), 2u);
  EXPECT_EQ(config->disks[0].path, dir_ / "disk.img");
  EXPECT_EQ(config->disks[0].serial, "root-disk");
  EXPECT_FALSE(config->disks[0].read_only);
  EXPECT_EQ(config->disks[1].path, dir_ / "disk2.img");
  EXPECT_TRUE(config->disks[1].read_only);
  EXPECT_TRUE(config->rng);
}

TEST_F(ConfigTest, NoDevicesByDefaultAndRngCanBeDisabled) {
  absl::StatusOr<VmConfig> config = Parse(kBoot);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->disks.empty());
  EXPECT_FALSE(config->rng);
  config = Parse(absl::StrCat(kBoot, "[rng]\nenabled = false\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->rng);
}

TEST_F(ConfigTest, ParsesNetsAndConsoleDevice) {
  absl::StatusOr<VmConfig> config = Parse(
      absl::StrCat(kBoot,
                   "[[net]]\ntap = \"tap0\"\nmac = \"52:54:00:AB:cd:01\"\n[[net]]\ntap = \"tap1\"\n"
                   "[console]\ndevice = \"virtio\"\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->nets.size(), 2u);
  EXPECT_EQ(config->nets[0].tap, "tap0");
  ASSERT_TRUE(config->nets[0].mac.has_value());
  EXPECT_EQ(*config->nets[0].mac, (std::array<uint8_t, 6>{0x52, 0x54, 0x00, 0xab, 0xcd, 0x01}));
  EXPECT_EQ(config->nets[1].tap, "tap1");
  EXPECT_FALSE(config->nets[1].mac.has_value());
  EXPECT_EQ(config->console_device, ConsoleDevice::kVirtio);
  config = Parse(kBoot);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->console_device, ConsoleDevice::kSerial);
}

TEST_F(ConfigTest, ParsesPassthroughByAddressAndBySysfsPath) {
  absl::StatusOr<VmConfig> config = Parse(absl::StrCat(
      kBoot,
      "[[passthrough]]\ndevice = \"0000:00:03.0\"\n[[passthrough]]\ndevice = \"3A:00.1\"\n"
      "[[passthrough]]\nsysfs = \"/sys/devices/pci0000:00/0000:00:1f.7\"\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->passthrough.size(), 3u);
  EXPECT_EQ(config->passthrough[0].address, "0000:00:03.0");
  EXPECT_EQ(config->passthrough[0].sysfs_path, "/sys/bus/pci/devices/0000:00:03.0");
  EXPECT_EQ(config->passthrough[1].address, "0000:3a:00.1");
  EXPECT_EQ(config->passthrough[2].address, "0000:00:1f.7");
  EXPECT_EQ(config->passthrough[2].sysfs_path, "/sys/devices/pci0000:00/0000:00:1f.7");
}

TEST_F(ConfigTest, LoadVmConfigReadsFile) {
  WriteFile(config_path_, "[vm]\nvcpus = 3\n[boot]\nkernel = \"vmlinuz\"\n");
  absl::StatusOr<VmConfig> config = LoadVmConfig(config_path_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vcpus, 3u);
  EXPECT_EQ(config->kernel, dir_ / "vmlinuz");
}

TEST_F(ConfigTest, LoadVmConfigReportsErrorsWithFilePosition) {
  WriteFile(config_path_, "[vm]\nmemory_mib = 0\n");
  absl::StatusOr<VmConfig> config = LoadVmConfig(config_path_);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config), StartsWith(At(2, 14) + "[vm] memory_mib"));
}

TEST_F(ConfigTest, LoadVmConfigReportsMissingFile) {
  absl::StatusOr<VmConfig> config = LoadVmConfig(dir_ / "missing.toml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(config), absl::StrFormat("cannot read config %s: No such file or directory",
                                             (dir_ / "missing.toml").string()));
}

}  // namespace
}  // namespace minivmm::config_testing
