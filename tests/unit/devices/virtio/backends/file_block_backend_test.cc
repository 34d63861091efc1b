#include "devices/virtio/backends/file_block_backend.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"

namespace minivmm::virtio {
namespace {

using testing_scratch::ScratchDir;

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1024;

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  std::iota(bytes.begin(), bytes.end(), seed);
  return bytes;
}

std::string WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0) << path;
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  EXPECT_EQ(::fsync(fd), 0);
  ::close(fd);
  return path;
}

std::vector<uint8_t> ReadFile(const std::string& path, uint64_t offset, size_t length) {
  std::vector<uint8_t> bytes(length);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  EXPECT_EQ(::pread(fd, bytes.data(), length, offset), static_cast<ssize_t>(length));
  ::close(fd);
  return bytes;
}

// How many bytes differ from value (gMock's Each() would print megabytes on failure).
size_t CountNot(const std::vector<uint8_t>& bytes, uint8_t value) {
  return bytes.size() - static_cast<size_t>(std::count(bytes.begin(), bytes.end(), value));
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;  // stat(2): st_blocks counts 512-byte units
}

std::unique_ptr<FileBlockBackend> MustOpen(const std::string& path, bool read_only) {
  absl::StatusOr<std::unique_ptr<FileBlockBackend>> backend =
      FileBlockBackend::Open(path, read_only);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(*backend) : nullptr;
}

class FileBlockBackendTest : public ::testing::Test {
 protected:
  std::string Image(const std::vector<uint8_t>& bytes, const std::string& name = "disk.img") {
    return WriteFile((dir_.path() / name).string(), bytes);
  }

  ScratchDir dir_{"file_block_backend_test"};
};

TEST_F(FileBlockBackendTest, RoundTripsDataThroughScatteredBuffers) {
  const std::string path = Image(std::vector<uint8_t>(64 * kKiB, 0));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->size_bytes(), 64 * kKiB);
  EXPECT_FALSE(backend->read_only());

  const std::vector<uint8_t> a = Pattern(700, 1), b = Pattern(324, 9);
  const std::vector<std::span<const uint8_t>> out = {a, {}, b};
  ASSERT_TRUE(backend->WriteAt(4096, out).ok());
  std::vector<uint8_t> expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(ReadFile(path, 4096, 1024), expected);

  std::vector<uint8_t> x(3), y(1021);
  const std::vector<std::span<uint8_t>> in = {x, y};
  ASSERT_TRUE(backend->ReadAt(4096, in).ok());
  x.insert(x.end(), y.begin(), y.end());
  EXPECT_EQ(x, expected);
  EXPECT_TRUE(backend->Flush().ok());
}

TEST_F(FileBlockBackendTest, TransfersMoreBuffersThanOneSyscallTakes) {
  const std::string path = Image(std::vector<uint8_t>(64 * kKiB, 0));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  const size_t count = IOV_MAX * 2 + 7;
  const std::vector<uint8_t> data = Pattern(count * 8, 3);
  std::vector<std::span<const uint8_t>> out;
  for (size_t i = 0; i < count; ++i) out.push_back(std::span(data).subspan(i * 8, 8));
  ASSERT_TRUE(backend->WriteAt(512, out).ok());
  EXPECT_EQ(ReadFile(path, 512, data.size()), data);

  std::vector<uint8_t> back(data.size());
  std::vector<std::span<uint8_t>> in;
  for (size_t i = 0; i < count; ++i) in.push_back(std::span(back).subspan(i * 8, 8));
  ASSERT_TRUE(backend->ReadAt(512, in).ok());
  EXPECT_EQ(back, data);
}

TEST_F(FileBlockBackendTest, RejectsRangesPastTheEnd) {
  const std::string path = Image(std::vector<uint8_t>(4 * kKiB, 0));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  std::vector<uint8_t> buffer(512);
  const std::vector<std::span<uint8_t>> in = {buffer};
  EXPECT_TRUE(absl::IsOutOfRange(backend->ReadAt(4 * kKiB - 511, in)));
  EXPECT_TRUE(absl::IsOutOfRange(backend->ReadAt(UINT64_MAX, in)));
  const std::vector<std::span<const uint8_t>> out = {buffer};
  EXPECT_TRUE(absl::IsOutOfRange(backend->WriteAt(4 * kKiB, out)));
  EXPECT_TRUE(absl::IsOutOfRange(backend->Discard(0, 8 * kKiB)));
  EXPECT_TRUE(absl::IsOutOfRange(backend->WriteZeroes(4 * kKiB, 512, false)));
}

TEST_F(FileBlockBackendTest, ReadOfImageTruncatedUnderneathIsAnError) {
  const std::string path = Image(std::vector<uint8_t>(4 * kKiB, 1));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(::truncate(path.c_str(), 1024), 0);  // flock is advisory: this still works
  std::vector<uint8_t> buffer(2048);
  const std::vector<std::span<uint8_t>> in = {buffer};
  const absl::Status status = backend->ReadAt(0, in);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST_F(FileBlockBackendTest, MissingFileErrorNamesIt) {
  const std::string path = (dir_.path() / "no-such.img").string();
  const absl::Status status = FileBlockBackend::Open(path, false).status();
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr(path), HasSubstr("No such file")));
}

TEST_F(FileBlockBackendTest, SizeNotWholeSectorsIsRejectedWithTheFix) {
  const std::string path = Image(std::vector<uint8_t>(1000, 0));
  const absl::Status status = FileBlockBackend::Open(path, false).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(path), HasSubstr("1000 bytes"), HasSubstr("truncate -s 1024")));
}

TEST_F(FileBlockBackendTest, RejectsWhatIsNeitherFileNorBlockDevice) {
  const absl::Status status = FileBlockBackend::Open("/dev/null", false).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("/dev/null"));
  EXPECT_TRUE(absl::IsInvalidArgument(FileBlockBackend::Open(dir_.path().string(), true).status()));
}

TEST_F(FileBlockBackendTest, SecondWriterIsRefusedWhileTheFirstHoldsTheImage) {
  const std::string path = Image(std::vector<uint8_t>(4 * kKiB, 0));
  std::unique_ptr<FileBlockBackend> first = MustOpen(path, false);
  ASSERT_NE(first, nullptr);
  for (bool read_only : {false, true}) {
    const absl::Status status = FileBlockBackend::Open(path, read_only).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
    EXPECT_THAT(status.message(), AllOf(HasSubstr(path), HasSubstr("another process")));
  }
  first.reset();  // closing the fd drops the lock
  EXPECT_NE(MustOpen(path, false), nullptr);
}

TEST_F(FileBlockBackendTest, ReadersShareButExcludeWriters) {
  const std::string path = Image(std::vector<uint8_t>(4 * kKiB, 0));
  std::unique_ptr<FileBlockBackend> a = MustOpen(path, true);
  std::unique_ptr<FileBlockBackend> b = MustOpen(path, true);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const absl::Status status = FileBlockBackend::Open(path, false).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST_F(FileBlockBackendTest, ReadOnlyFileOpensReadOnly) {
  const std::vector<uint8_t> contents = Pattern(8 * kKiB, 5);
  const std::string path = Image(contents);
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, true);
  ASSERT_NE(backend, nullptr);
  EXPECT_TRUE(backend->read_only());
  EXPECT_FALSE(backend->supports_discard());
  EXPECT_FALSE(backend->supports_write_zeroes());

  std::vector<uint8_t> buffer(1024);
  const std::vector<std::span<uint8_t>> in = {buffer};
  ASSERT_TRUE(backend->ReadAt(1024, in).ok());
  EXPECT_EQ(buffer, std::vector<uint8_t>(contents.begin() + 1024, contents.begin() + 2048));

  const std::vector<std::span<const uint8_t>> out = {buffer};
  EXPECT_TRUE(absl::IsFailedPrecondition(backend->WriteAt(0, out)));
  EXPECT_TRUE(absl::IsFailedPrecondition(backend->Discard(0, 512)));
  EXPECT_TRUE(absl::IsFailedPrecondition(backend->WriteZeroes(0, 512, true)));
  EXPECT_EQ(ReadFile(path, 0, contents.size()), contents);
}

TEST_F(FileBlockBackendTest, WritableOpenOfReadOnlyFileFailsWithPermissionError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores file modes";
  const std::string path = Image(std::vector<uint8_t>(4 * kKiB, 0));
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  const absl::Status status = FileBlockBackend::Open(path, false).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST_F(FileBlockBackendTest, DiscardPunchesAHole) {
  const std::string path = Image(std::vector<uint8_t>(1024 * kKiB, 0x5a));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  if (!backend->supports_discard()) GTEST_SKIP() << "filesystem cannot punch holes";
  const uint64_t before = AllocatedBytes(path);
  ASSERT_TRUE(backend->Discard(256 * kKiB, 512 * kKiB).ok());
  EXPECT_LE(AllocatedBytes(path), before - 512 * kKiB);
  EXPECT_EQ(backend->size_bytes(), 1024 * kKiB);  // KEEP_SIZE
  EXPECT_EQ(CountNot(ReadFile(path, 256 * kKiB, 512 * kKiB), 0), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, 256 * kKiB - 512, 512), 0x5a), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, 768 * kKiB, 512), 0x5a), 0u);
  EXPECT_TRUE(backend->Discard(0, 0).ok());
}

TEST_F(FileBlockBackendTest, WriteZeroesZeroesExactlyTheRange) {
  const std::string path = Image(std::vector<uint8_t>(256 * kKiB, 0x77));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  EXPECT_TRUE(backend->supports_write_zeroes());
  ASSERT_TRUE(backend->WriteZeroes(512, 3 * 512, /*may_unmap=*/false).ok());
  const uint64_t before = AllocatedBytes(path);
  ASSERT_TRUE(backend->WriteZeroes(64 * kKiB, 128 * kKiB, /*may_unmap=*/true).ok());
  // With unmap allowed, a filesystem that punches holes deallocates the range.
  if (backend->supports_discard()) {
    EXPECT_LE(AllocatedBytes(path), before - 128 * kKiB);
  }
  EXPECT_EQ(CountNot(ReadFile(path, 0, 512), 0x77), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, 512, 3 * 512), 0), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, 4 * 512, 64 * kKiB - 4 * 512), 0x77), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, 64 * kKiB, 128 * kKiB), 0), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, 192 * kKiB, 64 * kKiB), 0x77), 0u);
  EXPECT_EQ(backend->size_bytes(), 256 * kKiB);
}

// tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE, so write-zeroes without unmap falls back
// to writing zero buffers there: more than one 1 MiB chunk of them, unaligned at both ends.
TEST(FileBlockBackendTmpfsTest, WriteZeroesFallsBackToWritingZeroes) {
  struct statfs fs;
  if (::statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "no tmpfs at /dev/shm";
  }
  ScratchDir dir("file_block_backend_test", "/dev/shm");
  const std::string path =
      WriteFile((dir.path() / "disk.img").string(), std::vector<uint8_t>(4096 * kKiB, 1));
  std::unique_ptr<FileBlockBackend> backend = MustOpen(path, false);
  ASSERT_NE(backend, nullptr);
  const uint64_t offset = 512, length = 2560 * kKiB + 1024;
  ASSERT_TRUE(backend->WriteZeroes(offset, length, /*may_unmap=*/false).ok());
  EXPECT_EQ(CountNot(ReadFile(path, 0, offset), 1), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, offset, length), 0), 0u);
  EXPECT_EQ(CountNot(ReadFile(path, offset + length, 4096 * kKiB - offset - length), 1), 0u);
}

}  // namespace
}  // namespace minivmm::virtio
