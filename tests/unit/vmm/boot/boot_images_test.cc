// How minivmm picks the kernel to boot for a bzImage under decompress = "auto": the cached
// vmlinux, a freshly decompressed and stored one, or the bzImage itself when that cannot be
// done -- never a failure for a cache problem.
#include "vmm/boot/boot_images.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/scratch_dir.h"
#include "tests/unit/testing/test_images.h"
#include "tests/unit/vmm/boot/cache_lookup.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_images::BzImageWithPayload;
using testing_images::Gzip;
using testing_images::LookupCopy;
using testing_images::TinyVmlinux;

class SelectKernelTest : public ::testing::Test {
 protected:
  static BzImage Parse(std::vector<uint8_t> file) {
    absl::StatusOr<BzImage> image = ParseBzImage(std::move(file), "test-bzImage");
    EXPECT_TRUE(image.ok()) << image.status();
    return std::move(*image);
  }

  // Runs the selection and returns what it logged.
  std::string Select(const std::vector<uint8_t>& file, const KernelCache* cache,
                     KernelImage* image) {
    ::testing::internal::CaptureStderr();
    *image = SelectKernelForBzImage(Parse(file), "test-bzImage", cache);
    return ::testing::internal::GetCapturedStderr();
  }

  const std::vector<uint8_t> vmlinux_ = TinyVmlinux(16 << 20, 4096, 0);
  const std::vector<uint8_t> bzimage_ = BzImageWithPayload(Gzip(vmlinux_));
  testing_scratch::ScratchDir scratch_{"boot_images_test"};
  const fs::path root_ = scratch_.path();
};

TEST_F(SelectKernelTest, ColdCacheDecompressesStoresAndBootsTheVmlinux) {
  KernelCache cache(root_ / "cache");
  KernelImage image;
  const std::string log = Select(bzimage_, &cache, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kElfVmlinux);
  EXPECT_EQ(image.bytes, vmlinux_);
  EXPECT_EQ(image.elf.entry, 16u << 20);
  EXPECT_THAT(log, HasSubstr("decompressed the gzip payload"));
  absl::StatusOr<std::optional<std::vector<uint8_t>>> stored =
      LookupCopy(cache, KernelCache::KeyFor(bzimage_));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, vmlinux_);
}

TEST_F(SelectKernelTest, WarmCacheBootsTheStoredVmlinuxWithoutDecompressing) {
  KernelCache cache(root_ / "cache");
  KernelImage image;
  Select(bzimage_, &cache, &image);
  const std::string log = Select(bzimage_, &cache, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kElfVmlinux);
  EXPECT_EQ(image.bytes, vmlinux_);
  EXPECT_THAT(log, HasSubstr("using the cached vmlinux"));
  EXPECT_THAT(log, Not(HasSubstr("decompressed")));
}

TEST_F(SelectKernelTest, KeepsTheBzImagesOwnSetupHeader) {
  KernelCache cache(root_ / "cache");
  KernelImage image;
  Select(bzimage_, &cache, &image);
  EXPECT_EQ(image.header.init_size, 16u << 20);
  EXPECT_EQ(image.header.payload_length, Gzip(vmlinux_).size());
}

TEST_F(SelectKernelTest, UnwritableCacheMeansOneWarningAndAGuestDecompressedBoot) {
  std::ofstream(root_ / "file") << "not a directory";
  KernelCache cache(root_ / "file" / "cache");
  KernelImage image;
  const std::string log = Select(bzimage_, &cache, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kBzImage);
  EXPECT_EQ(image.bytes, bzimage_);
  EXPECT_THAT(log, HasSubstr("the guest decompresses it"));
  EXPECT_THAT(log, Not(HasSubstr("decompressed the")));  // no wasted work
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1);
}

TEST_F(SelectKernelTest, NoCacheMeansAGuestDecompressedBoot) {
  KernelImage image;
  const std::string log = Select(bzimage_, nullptr, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kBzImage);
  EXPECT_THAT(log, HasSubstr("no kernel cache directory"));
}

TEST_F(SelectKernelTest, PayloadThatIsNotAnElfFallsBackToTheGuest) {
  const std::vector<uint8_t> junk(8192, 0x42);
  KernelCache cache(root_ / "cache");
  KernelImage image;
  const std::string log = Select(BzImageWithPayload(Gzip(junk)), &cache, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kBzImage);
  EXPECT_THAT(log, HasSubstr("does not decompress to an ELF vmlinux"));
}

TEST_F(SelectKernelTest, Bzip2PayloadIsLeftToTheGuestsDecompressor) {
  std::vector<uint8_t> payload = {'B', 'Z', 'h', '9'};
  payload.resize(4096);
  KernelCache cache(root_ / "cache");
  KernelImage image;
  const std::string log = Select(BzImageWithPayload(payload), &cache, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kBzImage);
  EXPECT_THAT(log, HasSubstr("bzip2 payload is decompressed by the guest"));
}

TEST_F(SelectKernelTest, CachedEntryThatIsNotAnElfIsRebuilt) {
  KernelCache cache(root_ / "cache");
  const std::string key = KernelCache::KeyFor(bzimage_);
  const std::vector<uint8_t> junk(100, 0x42);
  ASSERT_TRUE(cache.Store(key, junk).ok());
  KernelImage image;
  const std::string log = Select(bzimage_, &cache, &image);
  EXPECT_EQ(image.format, KernelImage::Format::kElfVmlinux);
  EXPECT_THAT(log, HasSubstr("rebuilding it"));
  EXPECT_EQ(*LookupCopy(cache, key), vmlinux_);
}

}  // namespace
}  // namespace minivmm
