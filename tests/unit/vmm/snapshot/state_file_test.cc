// The state file's framing: what EncodeState writes, every way DecodeState refuses bytes, and
// the file calls that leave either a whole file or none.
#include "vmm/snapshot/state_file.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Debian's abseil has its own string_view, which gmock's string matchers do not take.
std::string Message(const absl::Status& status) { return std::string(status.message()); }
template <typename T>
std::string Message(const absl::StatusOr<T>& value) {
  return Message(value.status());
}

void PutU32(std::string& bytes, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<char>(value >> (8 * i));
}

uint32_t GetU32(const std::string& bytes, size_t offset) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= uint32_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return value;
}

std::string ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteWholeFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

const std::string kPayload = std::string("device state\0with a NUL", 23);

TEST(StateEncodingTest, WritesTheDocumentedHeader) {
  const std::string bytes = EncodeState("123456789");
  ASSERT_EQ(bytes.size(), kStateHeaderSize + 9);
  EXPECT_EQ(bytes.substr(0, 8), "MINIVMMS");
  EXPECT_EQ(GetU32(bytes, 8), kStateFormatVersion);
  EXPECT_EQ(GetU32(bytes, 12), kStateHeaderSize);
  EXPECT_EQ(GetU32(bytes, 16), 9u);
  EXPECT_EQ(GetU32(bytes, 20), 0u);  // high half of the u64 length
  // The CRC-32C check value (RFC 3720 §B.4; "Catalogue of parametrised CRC algorithms").
  EXPECT_EQ(GetU32(bytes, 24), 0xE3069283u);
  EXPECT_EQ(bytes.substr(kStateHeaderSize), "123456789");
}

TEST(StateEncodingTest, RoundTrips) {
  absl::StatusOr<std::string> payload = DecodeState(EncodeState(kPayload), "test");
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, kPayload);
}

TEST(StateEncodingTest, RoundTripsAnEmptyPayload) {
  absl::StatusOr<std::string> payload = DecodeState(EncodeState(""), "test");
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, "");
}

TEST(StateEncodingTest, RejectsTruncatedHeader) {
  const std::string bytes = EncodeState(kPayload).substr(0, 10);
  absl::StatusOr<std::string> payload = DecodeState(bytes, "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Message(payload), "snap/state: truncated: 10 bytes, a state file has at least 28");
}

TEST(StateEncodingTest, RejectsTruncatedPayload) {
  const std::string bytes = EncodeState(kPayload);
  absl::StatusOr<std::string> payload =
      DecodeState(std::string_view(bytes).substr(0, bytes.size() - 3), "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(payload), AllOf(StartsWith("snap/state: truncated:"),
                                      HasSubstr("23-byte payload, only 20 bytes follow")));
}

TEST(StateEncodingTest, RejectsTrailingBytes) {
  absl::StatusOr<std::string> payload = DecodeState(EncodeState(kPayload) + "xy", "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(payload), HasSubstr("2 bytes follow the 23-byte payload"));
}

TEST(StateEncodingTest, RejectsFlippedPayloadByte) {
  std::string bytes = EncodeState(kPayload);
  bytes[kStateHeaderSize + 5] ^= 0x01;
  absl::StatusOr<std::string> payload = DecodeState(bytes, "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(payload), StartsWith("snap/state: corrupt: checksum mismatch"));
}

TEST(StateEncodingTest, RejectsWrongMagic) {
  std::string bytes = EncodeState(kPayload);
  bytes[0] = 'X';
  absl::StatusOr<std::string> payload = DecodeState(bytes, "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(payload), StartsWith("snap/state: not a minivmm state file"));
}

TEST(StateEncodingTest, RejectsNewerVersionNamingBoth) {
  std::string bytes = EncodeState(kPayload);
  PutU32(bytes, 8, kStateFormatVersion + 1);
  absl::StatusOr<std::string> payload = DecodeState(bytes, "the migration source");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(payload),
              HasSubstr(absl::StrCat("the migration source: written by a newer minivmm (format "
                                     "version ",
                                     kStateFormatVersion + 1, "; this one reads up to ",
                                     kStateFormatVersion, ")")));
}

TEST(StateEncodingTest, RejectsOlderUnsupportedVersion) {
  std::string bytes = EncodeState(kPayload);
  PutU32(bytes, 8, kOldestReadableStateFormatVersion - 1);
  absl::StatusOr<std::string> payload = DecodeState(bytes, "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(payload),
              HasSubstr(absl::StrCat("written by an older minivmm (format version ",
                                     kOldestReadableStateFormatVersion - 1)));
}

TEST(StateEncodingTest, RejectsUnexpectedHeaderSize) {
  std::string bytes = EncodeState(kPayload);
  PutU32(bytes, 12, kStateHeaderSize + 4);
  absl::StatusOr<std::string> payload = DecodeState(bytes, "snap/state");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(payload), HasSubstr("corrupt: header size 32"));
}

class StateFileTest : public testing::Test {
 protected:
  testing_scratch::ScratchDir scratch_{"state_file_test"};
  const fs::path dir_ = scratch_.path();
};

TEST_F(StateFileTest, RoundTripsThroughAFile) {
  const fs::path path = dir_ / "state";
  ASSERT_TRUE(WriteStateFile(path, kPayload).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadWholeFile(path), EncodeState(kPayload));
  absl::StatusOr<std::string> payload = ReadStateFile(path);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, kPayload);
}

TEST_F(StateFileTest, RefusesToOverwriteAnExistingFile) {
  const fs::path path = dir_ / "state";
  WriteWholeFile(path, "precious");
  absl::Status status = WriteStateFile(path, kPayload);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(status), HasSubstr(path.string()));
  EXPECT_EQ(ReadWholeFile(path), "precious");
}

TEST_F(StateFileTest, LeavesNoFileWhenTheFolderIsNotWritable) {
  const fs::path folder = dir_ / "read-only";
  fs::create_directory(folder);
  ::chmod(folder.c_str(), 0500);
  if (::access(folder.c_str(), W_OK) == 0) {
    ::chmod(folder.c_str(), 0700);
    GTEST_SKIP() << "running with CAP_DAC_OVERRIDE (root): permissions are not enforced";
  }
  absl::Status status = WriteStateFile(folder / "state", kPayload);
  ::chmod(folder.c_str(), 0700);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(status), HasSubstr((folder / "state").string()));
  EXPECT_TRUE(fs::is_empty(folder));
}

// Run in a child process: limits the file size so that the write fails with EFBIG after the
// file was created (as a full disk would), then exits 0 when no file is left behind.
void WriteBeyondFileSizeLimit(const fs::path& path) {
  ::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit = {.rlim_cur = 16, .rlim_max = 16};
  ::setrlimit(RLIMIT_FSIZE, &limit);
  const absl::Status status = WriteStateFile(path, std::string(4096, 'x'));
  std::exit(!status.ok() && !fs::exists(path) ? 0 : 1);
}

TEST_F(StateFileTest, LeavesNoFileWhenAWriteFails) {
  const fs::path path = dir_ / "state";
  EXPECT_EXIT(WriteBeyondFileSizeLimit(path), testing::ExitedWithCode(0), "");
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(StateFileTest, ReadNamesAMissingFile) {
  absl::StatusOr<std::string> payload = ReadStateFile(dir_ / "missing");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(payload), HasSubstr((dir_ / "missing").string()));
}

TEST_F(StateFileTest, ReadNamesTheFileInDecodeErrors) {
  const fs::path path = dir_ / "state";
  WriteWholeFile(path, "MINIVMMS");
  absl::StatusOr<std::string> payload = ReadStateFile(path);
  EXPECT_EQ(Message(payload),
            absl::StrCat(path.string(), ": truncated: 8 bytes, a state file has at least 28"));
}

TEST_F(StateFileTest, ReadRefusesAHugeFile) {
  const fs::path path = dir_ / "state";
  WriteWholeFile(path, EncodeState(kPayload));
  fs::resize_file(path, kMaxStateFileBytes + 1);  // sparse: costs no disk
  absl::StatusOr<std::string> payload = ReadStateFile(path);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(payload), AllOf(HasSubstr(path.string()), HasSubstr("64 MiB")));
}

}  // namespace
}  // namespace minivmm
