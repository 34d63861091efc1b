#include "vmm/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kBoot[] = "[boot]\nkernel = \"vmlinuz\"\n";

void WriteFile(const fs::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

// Debian's abseil has its own string_view, which gmock's string matchers do not take.
std::string Message(const absl::StatusOr<VmConfig>& config) {
  return std::string(config.status().message());
}

// Each test gets its own folder holding a kernel, an initramfs, an empty file and a subfolder,
// so relative paths in the TOML text below resolve to known files.
class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    std::string name = absl::StrFormat("config_test_%s_%s", info->test_suite_name(), info->name());
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::path(testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "subdir");
    WriteFile(dir_ / "vmlinuz", "bzImage");
    WriteFile(dir_ / "initramfs.cpio.gz", "cpio");
    WriteFile(dir_ / "empty", "");
    WriteFile(dir_ / "disk.img", std::string(1024, '\0'));
    WriteFile(dir_ / "disk2.img", std::string(512, '\0'));
    config_path_ = dir_ / "vm.toml";
  }

  void TearDown() override { fs::remove_all(dir_); }

  absl::StatusOr<VmConfig> Parse(std::string_view text) const {
    return ParseVmConfig(text, config_path_);
  }

  // The "FILE:LINE:COL: " prefix every error message starts with.
  std::string At(int line, int column) const {
    return absl::StrFormat("%s:%d:%d: ", config_path_.string(), line, column);
  }

  fs::path dir_;
  fs::path config_path_;
};

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

// Every way to get the config wrong, with where the message must point and what it must say.
struct ErrorCase {
  std::string name;  // states the behaviour; becomes the test name
  std::string toml;
  int line;
  int column;
  std::vector<std::string> expected;  // substrings of the message after the position
};

// Shown by gtest when a case fails, instead of the struct's bytes.
void PrintTo(const ErrorCase& error, std::ostream* os) { *os << error.name << ":\n" << error.toml; }

std::vector<ErrorCase> ErrorCases() {
  const std::string boot = kBoot;
  return {
      // Unknown names.
      {"RejectsUnknownSection",
       "[network]\nmode = 1\n" + boot,
       1,
       2,
       {"unknown section 'network'",
        "(valid sections: [vm], [boot], [serial], [disk], [rng], [net], [console], "
        "[passthrough])"}},
      {"RejectsDiskWrittenAsSingleTable",
       boot + "[disk]\npath = \"disk.img\"\n",
       3,
       1,
       {"disk must be an array of tables", "[[disk]]"}},
      {"RejectsDiskWithoutPath",
       boot + "[[disk]]\nread_only = true\n",
       3,
       1,
       {"[disk] path is required", "raw disk image"}},
      {"RejectsMissingDiskImage",
       boot + "[[disk]]\npath = \"nope.img\"\n",
       4,
       8,
       {"[disk] path", "nope.img", "No such file"}},
      {"RejectsOverlongDiskSerial",
       boot + "[[disk]]\npath = \"disk.img\"\nserial = \"123456789012345678901\"\n",
       5,
       10,
       {"[disk] serial must be at most 20 printable ASCII characters"}},
      {"RejectsOneImageForTwoDisks",
       boot + "[[disk]]\npath = \"disk.img\"\n[[disk]]\npath = \"disk.img\"\n",
       6,
       8,
       {"already used by another [[disk]]", "its own image file"}},
      {"RejectsNonBooleanReadOnly",
       boot + "[[disk]]\npath = \"disk.img\"\nread_only = \"yes\"\n",
       5,
       13,
       {"[disk] read_only must be true or false, got string"}},
      {"RejectsUnknownKeyInDisk",
       boot + "[[disk]]\npath = \"disk.img\"\nreadonly = true\n",
       5,
       1,
       {"unknown key 'readonly' in [disk]", "read_only"}},
      {"RejectsNonBooleanRngEnabled",
       boot + "[rng]\nenabled = 1\n",
       4,
       11,
       {"[rng] enabled must be true or false, got integer"}},
      {"RejectsNetWithoutTap",
       boot + "[[net]]\nmac = \"52:54:00:00:00:01\"\n",
       3,
       1,
       {"[net] tap is required"}},
      {"RejectsInvalidTapName",
       boot + "[[net]]\ntap = \"much-too-long-name\"\n",
       4,
       7,
       {"[net] tap must be a valid interface name", "at most 15"}},
      {"RejectsMulticastMac",
       boot + "[[net]]\ntap = \"tap0\"\nmac = \"01:00:5e:00:00:01\"\n",
       5,
       7,
       {"[net] mac must be a unicast MAC address"}},
      {"RejectsMalformedMac",
       boot + "[[net]]\ntap = \"tap0\"\nmac = \"52:54:00:00:00\"\n",
       5,
       7,
       {"[net] mac must be a unicast MAC address, got \"52:54:00:00:00\""}},
      {"RejectsOneTapForTwoNets",
       boot + "[[net]]\ntap = \"tap0\"\n[[net]]\ntap = \"tap0\"\n",
       6,
       7,
       {"'tap0' is already used by another [[net]]"}},
      {"RejectsUnknownConsoleDevice",
       boot + "[console]\ndevice = \"usb\"\n",
       4,
       10,
       {"[console] device must be \"serial\" or \"virtio\", got \"usb\""}},
      {"RejectsMalformedPciAddress",
       boot + "[[passthrough]]\ndevice = \"00:20.0\"\n",
       4,
       10,
       {"[passthrough] device must name a PCI function like 0000:00:03.0, got \"00:20.0\""}},
      {"RejectsPassthroughWithoutDevice",
       boot + "[[passthrough]]\n",
       3,
       1,
       {"[passthrough] needs exactly one of device and sysfs"}},
      {"RejectsPassthroughWithDeviceAndSysfs",
       boot +
           "[[passthrough]]\ndevice = \"00:03.0\"\nsysfs = \"/sys/bus/pci/devices/0000:00:03.0\"\n",
       3,
       1,
       {"exactly one of device and sysfs"}},
      {"RejectsTheSameFunctionTwice",
       boot + "[[passthrough]]\ndevice = \"00:03.0\"\n[[passthrough]]\ndevice = \"0000:00:03.0\"\n",
       6,
       10,
       {"0000:00:03.0 is already passed through", "list each function once"}},
      {"RejectsUnknownTopLevelKey",
       "debug = true\n" + boot,
       1,
       1,
       {"unknown top-level key 'debug'",
        "valid sections: [vm], [boot], [serial], [disk], [rng], [net], [console], [passthrough]"}},
      {"RejectsUnknownKeyInVm",
       "[vm]\nmemroy_mib = 256\n" + boot,
       2,
       1,
       {"unknown key 'memroy_mib' in [vm]", "(valid keys: name, vcpus, memory_mib, on_reboot)"}},
      {"RejectsUnknownKeyInBoot",
       boot + "initrd = \"initramfs.cpio.gz\"\n",
       3,
       1,
       {"unknown key 'initrd' in [boot]", "(valid keys: kernel, initramfs, cmdline, decompress)"}},
      {"RejectsUnknownKeyInSerial",
       boot + "[serial]\nmode = \"stdio\"\nfile = \"x\"\n",
       5,
       1,
       {"unknown key 'file' in [serial]", "(valid keys: mode, path)"}},
      {"RejectsSubtableInVm", "[vm.cpu]\ncount = 2\n" + boot, 1, 5, {"unknown key 'cpu' in [vm]"}},
      // Wrong types.
      {"RejectsVmThatIsNotATable", "vm = 1\n" + boot, 1, 6, {"[vm] must be a table, got integer"}},
      {"RejectsArrayOfBootTables",
       "[[boot]]\nkernel = \"vmlinuz\"\n",
       1,
       1,
       {"[boot] must be a table, got array"}},
      {"RejectsStringVcpus",
       "[vm]\nvcpus = \"2\"\n" + boot,
       2,
       9,
       {"[vm] vcpus must be an integer, got string", "(set vcpus to"}},
      {"RejectsFloatMemory",
       "[vm]\nmemory_mib = 256.0\n" + boot,
       2,
       14,
       {"[vm] memory_mib must be an integer, got floating-point number"}},
      {"RejectsIntegerName",
       "[vm]\nname = 5\n" + boot,
       2,
       8,
       {"[vm] name must be a string, got integer"}},
      {"RejectsBooleanOnReboot",
       "[vm]\non_reboot = true\n" + boot,
       2,
       13,
       {"[vm] on_reboot must be a string, got boolean"}},
      {"RejectsUnknownDecompressMode",
       boot + "decompress = \"host\"\n",
       3,
       14,
       {"[boot] decompress", "\"host\""}},
      {"RejectsIntegerKernel",
       "[boot]\nkernel = 1\n",
       2,
       10,
       {"[boot] kernel must be a string, got integer"}},
      {"RejectsArrayCmdline",
       boot + "cmdline = [\"quiet\"]\n",
       3,
       11,
       {"[boot] cmdline must be a string, got array"}},
      {"RejectsIntegerSerialMode",
       boot + "[serial]\nmode = 1\n",
       4,
       8,
       {"[serial] mode must be a string, got integer"}},
      {"RejectsBooleanSerialPath",
       boot + "[serial]\nmode = \"file\"\npath = false\n",
       5,
       8,
       {"[serial] path must be a string, got boolean"}},
      // Out of range.
      {"RejectsZeroVcpus",
       "[vm]\nvcpus = 0\n" + boot,
       2,
       9,
       {"[vm] vcpus must be between 1 and 64, got 0"}},
      {"RejectsNegativeVcpus", "[vm]\nvcpus = -1\n" + boot, 2, 9, {"between 1 and 64, got -1"}},
      {"RejectsTooManyVcpus", "[vm]\nvcpus = 65\n" + boot, 2, 9, {"between 1 and 64, got 65"}},
      {"RejectsVcpusBeyondUint32",
       "[vm]\nvcpus = 9223372036854775807\n" + boot,
       2,
       9,
       {"got 9223372036854775807"}},
      {"RejectsZeroMemory",
       "[vm]\nname = \"t\"\nmemory_mib = 0\n" + boot,
       3,
       14,
       {"[vm] memory_mib must be between 32 and 1048576, got 0",
        "(set memory_mib to the guest RAM size in MiB)"}},
      {"RejectsNegativeMemory", "[vm]\nmemory_mib = -256\n" + boot, 2, 14, {"got -256"}},
      {"RejectsMemoryBelowMinimum", "[vm]\nmemory_mib = 31\n" + boot, 2, 14, {"got 31"}},
      {"RejectsTooMuchMemory", "[vm]\nmemory_mib = 1048577\n" + boot, 2, 14, {"got 1048577"}},
      // Bad strings.
      {"RejectsEmptyName",
       "[vm]\nname = \"\"\n" + boot,
       2,
       8,
       {"[vm] name must be 1 to 64 characters from [A-Za-z0-9._-], got \"\""}},
      {"RejectsTooLongName",
       "[vm]\nname = \"" + std::string(65, 'a') + "\"\n" + boot,
       2,
       8,
       {"[vm] name must be 1 to 64 characters"}},
      {"RejectsNameWithSlash", "[vm]\nname = \"my/vm\"\n" + boot, 2, 8, {"got \"my/vm\""}},
      {"RejectsUnknownOnReboot",
       "[vm]\non_reboot = \"reboot\"\n" + boot,
       2,
       13,
       {"[vm] on_reboot must be \"exit\" or \"restart\", got \"reboot\""}},
      {"RejectsTooLongCmdline",
       boot + "cmdline = \"" + std::string(4096, 'a') + "\"\n",
       3,
       11,
       {"[boot] cmdline is 4096 bytes, longer than 4095"}},
      {"RejectsCmdlineWithNewline",
       boot + "cmdline = \"quiet\\npanic=-1\"\n",
       3,
       11,
       {"[boot] cmdline must not contain NUL or newline"}},
      {"RejectsCmdlineWithNul",
       boot + "cmdline = \"quiet\\u0000panic=-1\"\n",
       3,
       11,
       {"[boot] cmdline must not contain NUL or newline"}},
      // Boot files.
      {"RejectsMissingBootSection", "[vm]\nvcpus = 1\n", 1, 1, {"missing required section [boot]"}},
      {"RejectsBootWithoutKernel",
       "[vm]\n\n[boot]\ncmdline = \"quiet\"\n",
       3,
       1,
       {"[boot] kernel is required", "(set kernel to the path of a Linux kernel"}},
      {"RejectsEmptyKernelPath",
       "[boot]\nkernel = \"\"\n",
       2,
       10,
       {"[boot] kernel must not be empty"}},
      {"RejectsMissingKernelFile",
       "[boot]\nkernel = \"nope\"\n",
       2,
       10,
       {"[boot] kernel", "/nope': No such file or directory"}},
      {"RejectsKernelThatIsADirectory",
       "[boot]\nkernel = \"subdir\"\n",
       2,
       10,
       {"[boot] kernel", "/subdir' is not a regular file"}},
      {"RejectsEmptyKernelFile",
       "[boot]\nkernel = \"empty\"\n",
       2,
       10,
       {"[boot] kernel", "/empty' is empty"}},
      {"RejectsMissingInitramfsFile",
       boot + "initramfs = \"nope.gz\"\n",
       3,
       13,
       {"[boot] initramfs", "/nope.gz': No such file or directory"}},
      // Serial.
      {"RejectsUnknownSerialMode",
       boot + "[serial]\nmode = \"pty\"\n",
       4,
       8,
       {"[serial] mode must be \"stdio\", \"file\" or \"none\", got \"pty\""}},
      {"RejectsFileModeWithoutPath",
       boot + "[serial]\nmode = \"file\"\n",
       3,
       1,
       {"[serial] path is required when mode = \"file\""}},
      {"RejectsPathWithStdioMode",
       boot + "[serial]\nmode = \"stdio\"\npath = \"out.log\"\n",
       5,
       8,
       {"[serial] path is only used with mode = \"file\""}},
      {"RejectsPathWithNoneMode",
       boot + "[serial]\nmode = \"none\"\npath = \"out.log\"\n",
       5,
       8,
       {"[serial] path is only used with mode = \"file\""}},
      {"RejectsPathWithoutMode",
       boot + "[serial]\npath = \"out.log\"\n",
       4,
       8,
       {"[serial] path is only used with mode = \"file\""}},
      {"RejectsSerialPathInMissingFolder",
       boot + "[serial]\nmode = \"file\"\npath = \"nodir/out.log\"\n",
       5,
       8,
       {"[serial] path", "/nodir' does not exist"}},
      {"RejectsSerialPathThatIsADirectory",
       boot + "[serial]\nmode = \"file\"\npath = \"subdir\"\n",
       5,
       8,
       {"[serial] path", "/subdir' is a directory"}},
      // TOML syntax, reported at toml++'s position.
      {"RejectsMissingValue", "[vm]\nvcpus = \n" + boot, 2, 9, {"fix the TOML syntax"}},
      {"RejectsUnterminatedString", "[vm]\nname = \"abc\n" + boot, 2, 12, {"fix the TOML syntax"}},
      {"RejectsDuplicateKey", "[vm]\nvcpus = 1\nvcpus = 2\n" + boot, 3, 9, {"vcpus"}},
  };
}

class ConfigErrorTest : public ConfigTest, public testing::WithParamInterface<ErrorCase> {};

TEST_P(ConfigErrorTest, ReportsPositionAndReason) {
  const ErrorCase& error = GetParam();
  absl::StatusOr<VmConfig> config = Parse(error.toml);
  ASSERT_FALSE(config.ok()) << "accepted:\n" << error.toml;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config), StartsWith(At(error.line, error.column)));
  for (const std::string& expected : error.expected) {
    EXPECT_THAT(Message(config), HasSubstr(expected));
  }
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigErrorTest, testing::ValuesIn(ErrorCases()),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace minivmm
