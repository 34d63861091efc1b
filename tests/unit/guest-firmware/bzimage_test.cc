#include "guest-firmware/bzimage.h"

#include <asm/bootparam.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/test_images.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kName[] = "/images/test-bzImage";
constexpr size_t kSetupHeaderOffset = 0x1f1;
constexpr size_t kJumpOffset = 0x200;

// A minimal image the parser accepts: a setup header at 0x1f1 whose jump at 0x200 skips to the
// end of the struct (so every setup_header field is part of the header), then setup_sects
// sectors of setup code, then kernel_bytes of "protected-mode kernel".
struct ImageBuilder {
  uint16_t boot_flag = 0xaa55;
  uint32_t magic = 0x53726448;  // "HdrS"
  uint16_t version = 0x020f;
  uint8_t loadflags = LOADED_HIGH;
  uint16_t xloadflags = XLF_KERNEL_64;
  uint8_t setup_sects = 1;
  size_t kernel_bytes = 4096;
  std::optional<uint32_t> syssize;  // default: kernel_bytes / 16
  // Bytes after 0x202 that the header spans; default: up to the end of struct setup_header.
  uint8_t header_length = kSetupHeaderOffset + sizeof(setup_header) - (kJumpOffset + 2);
  std::optional<size_t> file_size;  // default: setup plus kernel

  std::vector<uint8_t> Build() const {
    const size_t sects = setup_sects == 0 ? 4 : setup_sects;
    const size_t setup_size = (sects + 1) * 512;
    std::vector<uint8_t> file(setup_size + kernel_bytes, 0xcc);
    setup_header hdr{};
    hdr.setup_sects = setup_sects;
    hdr.syssize = syssize.value_or(static_cast<uint32_t>(kernel_bytes / 16));
    hdr.boot_flag = boot_flag;
    hdr.jump = static_cast<uint16_t>(0xeb | (header_length << 8));  // jmp short
    hdr.header = magic;
    hdr.version = version;
    hdr.loadflags = loadflags;
    hdr.xloadflags = xloadflags;
    hdr.cmdline_size = 0x7ff;
    hdr.init_size = 0x100000;
    std::memcpy(file.data() + kSetupHeaderOffset, &hdr, sizeof(hdr));
    for (size_t i = setup_size; i < file.size(); ++i) file[i] = static_cast<uint8_t>(i);
    file.resize(file_size.value_or(file.size()));
    return file;
  }
};

std::string Message(const absl::StatusOr<BzImage>& image) {
  return std::string(image.status().message());
}

TEST(BzImageTest, AcceptsMinimalValidImage) {
  ImageBuilder builder;
  builder.setup_sects = 3;
  const std::vector<uint8_t> file = builder.Build();
  absl::StatusOr<BzImage> image = ParseBzImage(file, kName);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->protocol(), 0x020f);
  EXPECT_EQ(image->setup_size, 4u * 512);
  EXPECT_EQ(image->header.cmdline_size, 0x7ffu);
  EXPECT_EQ(image->header.init_size, 0x100000u);
  ASSERT_EQ(image->protected_mode_kernel().size(), builder.kernel_bytes);
  EXPECT_EQ(image->protected_mode_kernel()[0], file[4 * 512]);
  EXPECT_EQ(image->protected_mode_kernel().back(), file.back());
}

TEST(BzImageTest, ZeroSetupSectsMeansFour) {
  ImageBuilder builder;
  builder.setup_sects = 0;
  absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->setup_size, 5u * 512);
}

TEST(BzImageTest, AcceptsSyssizeThatExactlyCoversTheKernel) {
  ImageBuilder builder;
  builder.kernel_bytes = 4096;
  builder.syssize = 4096 / 16;
  EXPECT_TRUE(ParseBzImage(builder.Build(), kName).ok());
}

TEST(BzImageTest, IgnoresFieldsPastTheEndOfTheKernelsHeader) {
  // A header that ends before xloadflags (0x236): the XLF_KERNEL_64 bit the builder put in the
  // file there is code, not a header field.
  ImageBuilder builder;
  builder.header_length = 0x236 - 0x202;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_FALSE(image.ok());
  EXPECT_THAT(Message(image), HasSubstr("XLF_KERNEL_64"));
}

TEST(BzImageTest, RejectsFileTooSmallForTheHeader) {
  const absl::StatusOr<BzImage> image = ParseBzImage(std::vector<uint8_t>(0x205, 0), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("too small")));
}

TEST(BzImageTest, RejectsEmptyFile) {
  const absl::StatusOr<BzImage> image = ParseBzImage({}, kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), HasSubstr(kName));
}

TEST(BzImageTest, RejectsMissingBootFlag) {
  ImageBuilder builder;
  builder.boot_flag = 0;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("not a bzImage")));
}

TEST(BzImageTest, RejectsMissingHdrSMagic) {
  ImageBuilder builder;
  builder.magic = 0x53726449;  // "IdrS"
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("not a bzImage")));
}

TEST(BzImageTest, RejectsProtocolOlderThan2_12NamingTheVersion) {
  ImageBuilder builder;
  builder.version = 0x020b;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("2.11"), HasSubstr("2.12")));
}

TEST(BzImageTest, AcceptsProtocol2_12) {
  ImageBuilder builder;
  builder.version = 0x020c;
  EXPECT_TRUE(ParseBzImage(builder.Build(), kName).ok());
}

TEST(BzImageTest, RejectsKernelNotLoadedHigh) {
  ImageBuilder builder;
  builder.loadflags = 0;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("loaded high")));
}

TEST(BzImageTest, RejectsKernelWithout64BitEntryPoint) {
  ImageBuilder builder;
  builder.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("XLF_KERNEL_64")));
}

TEST(BzImageTest, RejectsSetupCodeRunningPastTheEndOfTheFile) {
  ImageBuilder builder;
  builder.setup_sects = 10;     // setup ends at 11 * 512
  builder.file_size = 4 * 512;  // header intact, setup cut short
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("truncated")));
}

TEST(BzImageTest, RejectsImageWithNoProtectedModeKernel) {
  ImageBuilder builder;
  builder.setup_sects = 1;
  builder.kernel_bytes = 0;
  builder.syssize = 0;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("truncated")));
}

TEST(BzImageTest, RejectsSyssizeLargerThanTheFile) {
  ImageBuilder builder;
  builder.kernel_bytes = 4096;
  builder.syssize = 4096 / 16 + 1;
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("truncated")));
}

TEST(BzImageTest, RejectsKernelTruncatedAfterTheSetupCode) {
  ImageBuilder builder;
  builder.kernel_bytes = 8192;
  builder.file_size = 2 * 512 + 4096;  // half the kernel is missing; syssize still says 8 KiB
  const absl::StatusOr<BzImage> image = ParseBzImage(builder.Build(), kName);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(image), AllOf(HasSubstr(kName), HasSubstr("truncated")));
}

using testing_images::FindHostKernel;

std::vector<uint8_t> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST(BzImageTest, ParsesTheHostDebianKernel) {
  const std::optional<fs::path> path = FindHostKernel();
  if (!path) GTEST_SKIP() << "no /boot/vmlinuz-* on this machine";
  std::vector<uint8_t> file = ReadFile(*path);
  if (file.empty()) GTEST_SKIP() << *path << " is not readable";
  const size_t file_size = file.size();

  absl::StatusOr<BzImage> image = ParseBzImage(std::move(file), path->string());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_GE(image->protocol(), kMinBootProtocol);
  EXPECT_EQ(image->header.header, 0x53726448u);
  EXPECT_TRUE(image->header.xloadflags & XLF_KERNEL_64);
  EXPECT_EQ(image->file.size(), file_size);
  EXPECT_GT(image->protected_mode_kernel().size(), 0u);
  EXPECT_EQ(image->setup_size + image->protected_mode_kernel().size(), file_size);
  EXPECT_GE(image->protected_mode_kernel().size(), uint64_t{image->header.syssize} * 16);
  EXPECT_GT(image->header.init_size, 0u);
  EXPECT_GT(image->header.cmdline_size, 0u);
}

}  // namespace
}  // namespace minivmm
