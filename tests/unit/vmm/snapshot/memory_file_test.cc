// The guest memory file: regions back to back, zero pages left as holes, and a private mapping
// on load so the guest's writes never reach the file.
#include "vmm/snapshot/memory_file.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMiB = 1ull << 20;
// Two regions with a gap between them, like RAM below and above the PCI hole.
constexpr GuestRegionSpec kSpecs[] = {{0, 16 * kMiB}, {64 * kMiB, 8 * kMiB}};
constexpr uint64_t kTotal = 24 * kMiB;

// Debian's abseil has its own string_view, which gmock's string matchers do not take.
std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  std::iota(bytes.begin(), bytes.end(), seed);
  return bytes;
}

// One bulk read: a character-at-a-time stream iterator takes seconds for 24 MiB unoptimised.
std::string ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(fs::file_size(path), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(in.good()) << path;
  return bytes;
}

// Every region's bytes, back to back: what the file must hold.
std::string Contents(const GuestMemory& memory) {
  std::string bytes(memory.total_size(), '\0');
  uint64_t offset = 0;
  for (const GuestMemory::Region& region : memory.regions()) {
    std::span<uint8_t> chunk(reinterpret_cast<uint8_t*>(bytes.data()) + offset, region.size);
    EXPECT_TRUE(memory.Read(region.guest_address, chunk).ok());
    offset += region.size;
  }
  return bytes;
}

GuestMemory NewMemory() {
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(kSpecs);
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

// A few scattered non-zero pages: a run of three, single pages at both regions' first and last
// pages, and a page whose only non-zero byte is its last.
GuestMemory MemoryWithSomePages() {
  GuestMemory memory = NewMemory();
  EXPECT_TRUE(memory.Write(0, Pattern(kPage, 1)).ok());
  EXPECT_TRUE(memory.Write(5 * kPage, Pattern(3 * kPage, 7)).ok());
  EXPECT_TRUE(memory.Write(16 * kMiB - kPage, Pattern(kPage, 9)).ok());
  EXPECT_TRUE(memory.Write(64 * kMiB, Pattern(100, 42)).ok());
  EXPECT_TRUE(memory.WriteObject<uint8_t>(64 * kMiB + 3 * kMiB - 1, 0xff).ok());
  return memory;
}

class MemoryFileTest : public testing::Test {
 protected:
  testing_scratch::ScratchDir scratch_{"memory_file_test"};
  const fs::path dir_ = scratch_.path();
  const fs::path path_ = dir_ / "memory";
};

TEST_F(MemoryFileTest, WritesRegionsBackToBackWithHoles) {
  GuestMemory memory = MemoryWithSomePages();
  ASSERT_TRUE(WriteMemoryFile(path_, memory).ok());
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kTotal);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // 7 non-zero pages written; the file system may round up, but nowhere near 24 MiB.
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kTotal / 16);
  EXPECT_EQ(ReadWholeFile(path_), Contents(memory));
}

TEST_F(MemoryFileTest, RefusesAnExistingPath) {
  std::ofstream(path_) << "precious";
  absl::Status status = WriteMemoryFile(path_, NewMemory());
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), HasSubstr(path_.string()));
  EXPECT_EQ(ReadWholeFile(path_), "precious");
}

// Run in a child process: limits the file size so a write fails after the file was created,
// then exits 0 when no file is left behind.
void WriteBeyondFileSizeLimit(const fs::path& path) {
  ::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit = {.rlim_cur = 2 * kPage, .rlim_max = 2 * kPage};
  ::setrlimit(RLIMIT_FSIZE, &limit);
  const absl::Status status = WriteMemoryFile(path, MemoryWithSomePages());
  std::exit(!status.ok() && !fs::exists(path) ? 0 : 1);
}

TEST_F(MemoryFileTest, LeavesNoFileWhenAWriteFails) {
  EXPECT_EXIT(WriteBeyondFileSizeLimit(path_), testing::ExitedWithCode(0), "");
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(MemoryFileTest, LoadsTheSameBytes) {
  GuestMemory original = MemoryWithSomePages();
  ASSERT_TRUE(WriteMemoryFile(path_, original).ok());
  GuestMemory restored = NewMemory();
  ASSERT_TRUE(restored.Write(10 * kPage, Pattern(kPage, 3)).ok());  // replaced by the load
  absl::Status status = LoadMemoryFile(path_, restored);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Contents(restored), Contents(original));
}

TEST_F(MemoryFileTest, GuestWritesDoNotReachTheFile) {
  GuestMemory original = MemoryWithSomePages();
  ASSERT_TRUE(WriteMemoryFile(path_, original).ok());
  const std::string file_before = ReadWholeFile(path_);

  GuestMemory restored = NewMemory();
  ASSERT_TRUE(LoadMemoryFile(path_, restored).ok());
  ASSERT_TRUE(restored.Write(0, Pattern(2 * kPage, 200)).ok());      // a page from the file
  ASSERT_TRUE(restored.Write(70 * kMiB, Pattern(kPage, 201)).ok());  // a hole
  EXPECT_EQ(ReadWholeFile(path_), file_before);

  // The same snapshot restores again, into the same memory or a fresh one.
  ASSERT_TRUE(LoadMemoryFile(path_, restored).ok());
  EXPECT_EQ(Contents(restored), Contents(original));
  GuestMemory again = NewMemory();
  ASSERT_TRUE(LoadMemoryFile(path_, again).ok());
  EXPECT_EQ(Contents(again), Contents(original));
}

TEST_F(MemoryFileTest, RefusesAFileOfTheWrongSize) {
  ASSERT_TRUE(WriteMemoryFile(path_, MemoryWithSomePages()).ok());
  fs::resize_file(path_, kTotal - kPage);
  const std::string expected =
      absl::StrCat(path_.string(), " is ", kTotal - kPage, " bytes, the state file describes ",
                   kTotal, " bytes of guest memory");
  absl::Status status = CheckMemoryFile(path_, kTotal);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr(expected));
  GuestMemory memory = NewMemory();
  EXPECT_THAT(Message(LoadMemoryFile(path_, memory)), HasSubstr(expected));
}

TEST_F(MemoryFileTest, NamesAMissingFile) {
  absl::Status status = CheckMemoryFile(path_, kTotal);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), AllOf(HasSubstr(path_.string()), HasSubstr("No such file")));
}

TEST_F(MemoryFileTest, RefusesMemoryPinnedForDma) {
  ASSERT_TRUE(WriteMemoryFile(path_, MemoryWithSomePages()).ok());
  GuestMemory memory = NewMemory();
  memory.MarkPinnedForDma();
  absl::Status status = LoadMemoryFile(path_, memory);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr("pinned for device DMA"));
}

}  // namespace
}  // namespace minivmm
