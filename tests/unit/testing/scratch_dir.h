// A private directory for one test, made with mkdtemp under the test temp dir and removed with
// everything in it when the test ends. Unique names matter: the plain and sanitizer builds run
// the same tests at the same time, and a fixed name would let one clear the other's files.
#ifndef MINIVMM_TESTS_UNIT_TESTING_SCRATCH_DIR_H_
#define MINIVMM_TESTS_UNIT_TESTING_SCRATCH_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace minivmm::testing_scratch {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix,
                      const std::filesystem::path& parent = ::testing::TempDir()) {
    std::string pattern = (parent / (prefix + ".XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp(" << pattern << ") failed";
      return;
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace minivmm::testing_scratch

#endif  // MINIVMM_TESTS_UNIT_TESTING_SCRATCH_DIR_H_
