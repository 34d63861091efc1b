// The fixture of the config tests: each test gets a folder holding a kernel, an initramfs, disk
// images and a subfolder, and parses TOML text as if it were vm.toml in that folder.
#ifndef MINIVMM_TESTS_UNIT_VMM_CONFIG_CONFIG_TEST_FIXTURE_H_
#define MINIVMM_TESTS_UNIT_VMM_CONFIG_CONFIG_TEST_FIXTURE_H_

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
#include "tests/unit/testing/scratch_dir.h"
#include "vmm/config/config.h"

namespace minivmm::config_testing {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

inline constexpr char kBoot[] = "[boot]\nkernel = \"vmlinuz\"\n";

inline void WriteFile(const fs::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

// Debian's abseil has its own string_view, which gmock's string matchers do not take.
inline std::string Message(const absl::StatusOr<VmConfig>& config) {
  return std::string(config.status().message());
}

// Each test gets its own folder holding a kernel, an initramfs, an empty file and a subfolder,
// so relative paths in the TOML text below resolve to known files.
class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "subdir");
    WriteFile(dir_ / "vmlinuz", "bzImage");
    WriteFile(dir_ / "initramfs.cpio.gz", "cpio");
    WriteFile(dir_ / "empty", "");
    WriteFile(dir_ / "disk.img", std::string(1024, '\0'));
    WriteFile(dir_ / "disk2.img", std::string(512, '\0'));
    config_path_ = dir_ / "vm.toml";
  }

  absl::StatusOr<VmConfig> Parse(std::string_view text) const {
    return ParseVmConfig(text, config_path_);
  }

  // The "FILE:LINE:COL: " prefix every error message starts with.
  std::string At(int line, int column) const {
    return absl::StrFormat("%s:%d:%d: ", config_path_.string(), line, column);
  }

  testing_scratch::ScratchDir scratch_{"config_test"};
  const fs::path dir_ = scratch_.path();
  fs::path config_path_;
};

}  // namespace minivmm::config_testing

#endif  // MINIVMM_TESTS_UNIT_VMM_CONFIG_CONFIG_TEST_FIXTURE_H_
