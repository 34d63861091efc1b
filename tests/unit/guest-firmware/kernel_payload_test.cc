#include "guest-firmware/kernel_payload.h"

#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "guest-firmware/bzimage.h"
#include "guest-firmware/elf_kernel.h"
#include "tests/unit/testing/test_images.h"

namespace minivmm {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kName[] = "/images/test-bzImage";
constexpr uint64_t kKiB = 1 << 10;
constexpr uint64_t kMiB = 1 << 20;

using Bytes = std::vector<uint8_t>;

// Compressible but not trivial: runs of a counter with a slowly changing stride.
Bytes Pattern(size_t size) {
  Bytes bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>((i / 64) * (1 + i / 8192));
  return bytes;
}

void AppendLe32(Bytes& bytes, uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) bytes.push_back(static_cast<uint8_t>(value >> shift));
}

// What the kernel build's size_append does after every compressor.
Bytes WithSizeTrailer(Bytes compressed, size_t uncompressed_size) {
  AppendLe32(compressed, static_cast<uint32_t>(uncompressed_size));
  return compressed;
}

Bytes Gzip(const Bytes& input) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&stream, input.size()));
  stream.next_in = const_cast<Bytef*>(input.data());
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// As the kernel's scripts/xz_wrap.sh: x86 BCJ filter, LZMA2, CRC32 check.
Bytes Xz(const Bytes& input) {
  lzma_options_lzma lzma2;
  EXPECT_FALSE(lzma_lzma_preset(&lzma2, 1));
  lzma_filter filters[] = {
      {LZMA_FILTER_X86, nullptr}, {LZMA_FILTER_LZMA2, &lzma2}, {LZMA_VLI_UNKNOWN, nullptr}};
  Bytes out(lzma_stream_buffer_bound(input.size()));
  size_t out_pos = 0;
  EXPECT_EQ(lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, nullptr, input.data(),
                                      input.size(), out.data(), &out_pos, out.size()),
            LZMA_OK);
  out.resize(out_pos);
  return out;
}

Bytes Zstd(const Bytes& input) {
  Bytes out(ZSTD_compressBound(input.size()));
  const size_t size = ZSTD_compress(out.data(), out.size(), input.data(), input.size(), 3);
  EXPECT_FALSE(ZSTD_isError(size));
  out.resize(size);
  return out;
}

// The legacy frame `lz4 -l` writes: magic 0x184C2102, then 8 MiB input blocks, each as its
// compressed size (32-bit LE) and LZ4 block.
Bytes Lz4Legacy(const Bytes& input) {
  Bytes out;
  AppendLe32(out, 0x184C2102);
  for (size_t pos = 0; pos < input.size(); pos += 8 * kMiB) {
    const int chunk = static_cast<int>(std::min<size_t>(8 * kMiB, input.size() - pos));
    std::vector<char> block(LZ4_compressBound(chunk));
    const int size = LZ4_compress_default(reinterpret_cast<const char*>(input.data() + pos),
                                          block.data(), chunk, static_cast<int>(block.size()));
    EXPECT_GT(size, 0);
    AppendLe32(out, static_cast<uint32_t>(size));
    out.insert(out.end(), block.begin(), block.begin() + size);
  }
  return out;
}

KernelPayload Payload(PayloadCompression compression, const Bytes& bytes) {
  return KernelPayload{compression, bytes};
}

// A BzImage as ParseBzImage would return it, with `payload` at payload_offset after the setup.
BzImage ImageWithPayload(const Bytes& payload, uint32_t payload_offset = 0x40,
                         uint16_t version = 0x020f) {
  BzImage image;
  image.setup_size = 2 * 512;
  image.file.assign(image.setup_size + payload_offset, 0xcc);
  image.file.insert(image.file.end(), payload.begin(), payload.end());
  image.file.insert(image.file.end(), 32, 0xee);  // code after the payload
  image.header.version = version;
  image.header.payload_offset = payload_offset;
  image.header.payload_length = static_cast<uint32_t>(payload.size());
  return image;
}

// ---- ExtractPayload ----------------------------------------------------------------------

TEST(ExtractPayloadTest, FindsPayloadRelativeToProtectedModeKernel) {
  const Bytes gzip = Gzip(Pattern(1000));
  const BzImage image = ImageWithPayload(gzip, 0x123);
  absl::StatusOr<KernelPayload> payload = ExtractPayload(image, kName);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(payload->compression, PayloadCompression::kGzip);
  EXPECT_EQ(payload->bytes.data(), image.file.data() + image.setup_size + 0x123);
  EXPECT_EQ(payload->bytes.size(), gzip.size());
}

TEST(ExtractPayloadTest, IdentifiesEachFormatByMagic) {
  const std::vector<std::pair<Bytes, PayloadCompression>> cases = {
      {{0x1f, 0x8b, 0x08}, PayloadCompression::kGzip},
      {{'B', 'Z', 'h', '9'}, PayloadCompression::kBzip2},
      {{0x5d, 0x00, 0x00, 0x00, 0x04}, PayloadCompression::kLzma},
      {{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}, PayloadCompression::kXz},
      {{0x89, 0x4c, 0x5a, 0x4f, 0x00}, PayloadCompression::kLzo},
      {{0x02, 0x21, 0x4c, 0x18}, PayloadCompression::kLz4},
      {{0x28, 0xb5, 0x2f, 0xfd}, PayloadCompression::kZstd},
  };
  for (const auto& [magic, compression] : cases) {
    absl::StatusOr<KernelPayload> payload = ExtractPayload(ImageWithPayload(magic), kName);
    ASSERT_TRUE(payload.ok()) << payload.status();
    EXPECT_EQ(payload->compression, compression) << CompressionName(compression);
  }
}

TEST(ExtractPayloadTest, AcceptsPayloadEndingAtEndOfFile) {
  BzImage image = ImageWithPayload(Xz(Pattern(100)));
  image.file.resize(image.file.size() - 32);  // drop the code after the payload
  EXPECT_TRUE(ExtractPayload(image, kName).ok());
}

TEST(ExtractPayloadTest, RejectsPayloadPastEndOfFile) {
  BzImage image = ImageWithPayload(Xz(Pattern(100)));
  image.header.payload_length += 33;  // one byte past the end
  const absl::StatusOr<KernelPayload> payload = ExtractPayload(image, kName);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(payload.status().message(), AllOf(HasSubstr(kName), HasSubstr("past the end")));
}

TEST(ExtractPayloadTest, RejectsOffsetPlusLengthThatWouldOverflow) {
  BzImage image = ImageWithPayload(Xz(Pattern(100)));
  for (const auto& [offset, length] : {std::pair<uint32_t, uint32_t>{0xffffffff, 0xffffffff},
                                       {0x10, 0xffffffff},
                                       {0xffffffff, 0x10}}) {
    image.header.payload_offset = offset;
    image.header.payload_length = length;
    const absl::StatusOr<KernelPayload> payload = ExtractPayload(image, kName);
    EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(payload.status().message(), HasSubstr("past the end"));
  }
}

TEST(ExtractPayloadTest, RejectsSetupLargerThanFile) {
  BzImage image = ImageWithPayload(Xz(Pattern(100)));
  image.setup_size = image.file.size() + 1;
  image.header.payload_offset = 0;
  image.header.payload_length = 1;
  EXPECT_EQ(ExtractPayload(image, kName).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExtractPayloadTest, RejectsProtocolOlderThan2_08) {
  const absl::StatusOr<KernelPayload> payload =
      ExtractPayload(ImageWithPayload(Xz(Pattern(100)), 0x40, 0x0207), kName);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(payload.status().message(),
              AllOf(HasSubstr(kName), HasSubstr("2.07"), HasSubstr("2.08")));
}

TEST(ExtractPayloadTest, RejectsEmptyPayload) {
  const absl::StatusOr<KernelPayload> payload = ExtractPayload(ImageWithPayload({}), kName);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(payload.status().message(), HasSubstr("payload_length is 0"));
}

TEST(ExtractPayloadTest, RejectsUnknownMagicNamingTheBytes) {
  const absl::StatusOr<KernelPayload> payload =
      ExtractPayload(ImageWithPayload({0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03}), kName);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(payload.status().message(),
              AllOf(HasSubstr(kName), HasSubstr("de ad be ef 01 02"), Not(HasSubstr("03"))));
}

TEST(ExtractPayloadTest, RejectsPayloadShorterThanItsMagic) {
  const absl::StatusOr<KernelPayload> payload =
      ExtractPayload(ImageWithPayload({0xfd, 0x37, 0x7a}), kName);
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(payload.status().message(), HasSubstr("fd 37 7a"));
}

// ---- DecompressPayload, every host-side format -------------------------------------------

struct Format {
  PayloadCompression compression;
  Bytes (*compress)(const Bytes&);
};

class DecompressFormatTest : public ::testing::TestWithParam<Format> {
 protected:
  KernelPayload Compressed(const Bytes& bytes) {
    compressed_ = GetParam().compress(bytes);
    return Payload(GetParam().compression, compressed_);
  }
  Bytes compressed_;
};

TEST_P(DecompressFormatTest, ReturnsTheOriginalBytes) {
  const Bytes original = Pattern(1 * kMiB);
  absl::StatusOr<Bytes> out = DecompressPayload(Compressed(original), kName, 2 * kMiB);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == original);
}

TEST_P(DecompressFormatTest, AcceptsOutputExactlyAtTheLimit) {
  const Bytes original = Pattern(1 * kMiB);
  absl::StatusOr<Bytes> out = DecompressPayload(Compressed(original), kName, 1 * kMiB);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == original);
}

TEST_P(DecompressFormatTest, RejectsOutputLargerThanTheLimit) {
  const absl::StatusOr<Bytes> out =
      DecompressPayload(Compressed(Bytes(1 * kMiB, 0)), kName, 512 * kKiB);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(out.status().message(),
              AllOf(HasSubstr(kName), HasSubstr(CompressionName(GetParam().compression)),
                    HasSubstr("524288")));
}

TEST_P(DecompressFormatTest, RejectsOutputOneByteOverTheLimit) {
  const absl::StatusOr<Bytes> out =
      DecompressPayload(Compressed(Pattern(1 * kMiB)), kName, 1 * kMiB - 1);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_P(DecompressFormatTest, AcceptsLinuxSizeTrailer) {
  const Bytes original = Pattern(300 * kKiB);
  compressed_ = WithSizeTrailer(GetParam().compress(original), original.size());
  absl::StatusOr<Bytes> out =
      DecompressPayload(Payload(GetParam().compression, compressed_), kName, 1 * kMiB);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == original);
}

TEST_P(DecompressFormatTest, RejectsTruncatedStream) {
  Compressed(Pattern(1 * kMiB));
  compressed_.resize(compressed_.size() / 2);
  const absl::StatusOr<Bytes> out =
      DecompressPayload(Payload(GetParam().compression, compressed_), kName, 2 * kMiB);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.status().message(),
              AllOf(HasSubstr(kName), HasSubstr(CompressionName(GetParam().compression)),
                    HasSubstr("truncated")));
}

TEST_P(DecompressFormatTest, RejectsStreamCutAfterItsMagic) {
  Compressed(Pattern(1 * kMiB));
  compressed_.resize(4);
  EXPECT_EQ(DecompressPayload(Payload(GetParam().compression, compressed_), kName, 2 * kMiB)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

INSTANTIATE_TEST_SUITE_P(HostFormats, DecompressFormatTest,
                         ::testing::Values(Format{PayloadCompression::kGzip, Gzip},
                                           Format{PayloadCompression::kXz, Xz},
                                           Format{PayloadCompression::kZstd, Zstd},
                                           Format{PayloadCompression::kLz4, Lz4Legacy}),
                         [](const ::testing::TestParamInfo<Format>& info) {
                           return std::string(CompressionName(info.param.compression));
                         });

// ---- Format-specific corruption ----------------------------------------------------------

absl::Status DecompressStatus(PayloadCompression compression, const Bytes& bytes) {
  return DecompressPayload(Payload(compression, bytes), kName, 4 * kMiB).status();
}

TEST(DecompressPayloadTest, RejectsGzipWithUnknownMethod) {
  Bytes gzip = Gzip(Pattern(4096));
  gzip[2] = 7;  // CM must be 8, deflate (RFC 1952 §2.3.1)
  const absl::Status status = DecompressStatus(PayloadCompression::kGzip, gzip);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(kName), HasSubstr("gzip payload is corrupt")));
}

TEST(DecompressPayloadTest, RejectsGzipWithBadCrc) {
  Bytes gzip = Gzip(Pattern(4096));
  gzip[gzip.size() - 8] ^= 0xff;  // CRC32 precedes ISIZE at the end (RFC 1952 §2.3.1)
  const absl::Status status = DecompressStatus(PayloadCompression::kGzip, gzip);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("gzip payload is corrupt"));
}

TEST(DecompressPayloadTest, RejectsXzWithCorruptData) {
  Bytes xz = Xz(Pattern(64 * kKiB));
  xz[xz.size() / 2] ^= 0x55;
  const absl::Status status = DecompressStatus(PayloadCompression::kXz, xz);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(kName), HasSubstr("xz payload is corrupt")));
}

TEST(DecompressPayloadTest, RejectsZstdWithBadFrameHeader) {
  Bytes zstd = Zstd(Pattern(4096));
  zstd[4] = 0xff;  // Frame_Header_Descriptor with the reserved bit set (RFC 8878 §3.1.1.1.1)
  EXPECT_EQ(DecompressStatus(PayloadCompression::kZstd, zstd).code(), absl::StatusCode::kDataLoss);
}

TEST(DecompressPayloadTest, DecodesLz4AcrossSeveral8MiBBlocks) {
  const Bytes original = Pattern(17 * kMiB);
  const Bytes lz4 = Lz4Legacy(original);
  absl::StatusOr<Bytes> out =
      DecompressPayload(Payload(PayloadCompression::kLz4, lz4), kName, 32 * kMiB);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == original);
}

TEST(DecompressPayloadTest, DecodesConcatenatedLz4FramesAndStopsAtZeroBlockSize) {
  const Bytes first = Pattern(1000);
  const Bytes second(500, 0x42);
  Bytes lz4 = Lz4Legacy(first);
  const Bytes more = Lz4Legacy(second);
  lz4.insert(lz4.end(), more.begin(), more.end());
  AppendLe32(lz4, 0);  // zero padding ends the stream (lib/decompress_unlz4.c)
  AppendLe32(lz4, 0xdeadbeef);
  absl::StatusOr<Bytes> out =
      DecompressPayload(Payload(PayloadCompression::kLz4, lz4), kName, 1 * kMiB);
  ASSERT_TRUE(out.ok()) << out.status();
  Bytes expected = first;
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_TRUE(*out == expected);
}

TEST(DecompressPayloadTest, RejectsLz4SizeTrailerThatDisagrees) {
  const Bytes lz4 = WithSizeTrailer(Lz4Legacy(Pattern(1000)), 999);
  const absl::Status status = DecompressStatus(PayloadCompression::kLz4, lz4);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("size trailer"), HasSubstr("999")));
}

TEST(DecompressPayloadTest, RejectsLz4BlockLargerThanAnyCompressed8MiBBlock) {
  Bytes lz4;
  AppendLe32(lz4, 0x184C2102);
  AppendLe32(lz4, 0x7fffffff);
  lz4.resize(lz4.size() + 16, 0);
  const absl::Status status = DecompressStatus(PayloadCompression::kLz4, lz4);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("8 MiB"));
}

TEST(DecompressPayloadTest, RejectsLz4WithCorruptBlock) {
  Bytes lz4;
  AppendLe32(lz4, 0x184C2102);
  AppendLe32(lz4, 3);
  lz4.insert(lz4.end(), {0xf0, 0xff, 0xff});  // a 15+ literal run whose length never ends
  AppendLe32(lz4, 0);
  const absl::Status status = DecompressStatus(PayloadCompression::kLz4, lz4);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("lz4 payload is corrupt"));
}

TEST(DecompressPayloadTest, LeavesBzip2LzmaAndLzoToTheGuest) {
  for (PayloadCompression compression :
       {PayloadCompression::kBzip2, PayloadCompression::kLzma, PayloadCompression::kLzo}) {
    EXPECT_FALSE(CanDecompressOnHost(compression));
    const absl::Status status = DecompressStatus(compression, {'B', 'Z', 'h', '9', 0, 0});
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr(CompressionName(compression)), HasSubstr("by the guest")));
  }
  EXPECT_TRUE(CanDecompressOnHost(PayloadCompression::kXz));
}

TEST(DecompressPayloadTest, RejectsUnknownCompression) {
  EXPECT_EQ(DecompressStatus(PayloadCompression::kUnknown, {1, 2, 3, 4}).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- The host's real Debian kernel -------------------------------------------------------

using testing_images::FindHostKernel;

// Decompressing the ~8 MB xz payload takes a good fraction of a second: do it once.
class HostKernelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::optional<std::filesystem::path> path = FindHostKernel();
    if (!path.has_value()) return;
    name_ = new std::string(path->string());
    std::ifstream file(*path, std::ios::binary);
    absl::StatusOr<BzImage> image =
        ParseBzImage(Bytes(std::istreambuf_iterator<char>(file), {}), *name_);
    ASSERT_TRUE(image.ok()) << image.status();
    image_ = new BzImage(*std::move(image));
    absl::StatusOr<KernelPayload> payload = ExtractPayload(*image_, *name_);
    ASSERT_TRUE(payload.ok()) << payload.status();
    payload_ = new KernelPayload(*payload);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Bytes> vmlinux = DecompressPayload(*payload_, *name_, 512 * kMiB);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(vmlinux.ok()) << vmlinux.status();
    vmlinux_ = new Bytes(*std::move(vmlinux));
    std::printf("%s: %s payload %zu bytes -> %zu bytes in %.3f s\n", name_->c_str(),
                std::string(CompressionName(payload_->compression)).c_str(), payload_->bytes.size(),
                vmlinux_->size(), took.count());
  }
  void SetUp() override {
    if (name_ == nullptr) GTEST_SKIP() << "no /boot/vmlinuz-* on this host";
    ASSERT_NE(vmlinux_, nullptr) << "decompressing the host kernel failed";
  }
  // Leaked on purpose: shared by the suite's tests, gone with the process.
  static inline std::string* name_ = nullptr;
  static inline BzImage* image_ = nullptr;
  static inline KernelPayload* payload_ = nullptr;
  static inline Bytes* vmlinux_ = nullptr;
};

TEST_F(HostKernelTest, PayloadIsXz) {
  EXPECT_EQ(payload_->compression, PayloadCompression::kXz);
  EXPECT_TRUE(CanDecompressOnHost(payload_->compression));
}

TEST_F(HostKernelTest, DecompressesToAnX86_64Elf) {
  ASSERT_TRUE(LooksLikeElf(*vmlinux_));
  absl::StatusOr<ElfKernel> elf = ParseElfKernel(*vmlinux_, *name_);
  ASSERT_TRUE(elf.ok()) << elf.status();
  EXPECT_FALSE(elf->segments.empty());
}

TEST_F(HostKernelTest, DecompressedSizeMatchesTheSizeTrailer) {
  const std::span<const uint8_t> trailer = payload_->bytes.last(4);
  const uint32_t size =
      trailer[0] | trailer[1] << 8 | trailer[2] << 16 | static_cast<uint32_t>(trailer[3]) << 24;
  EXPECT_EQ(vmlinux_->size(), size);
}

TEST_F(HostKernelTest, RejectsItsPayloadCutShort) {
  KernelPayload cut = *payload_;
  cut.bytes = cut.bytes.first(64 * kKiB);
  const absl::StatusOr<Bytes> out = DecompressPayload(cut, *name_, 512 * kMiB);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.status().message(), AllOf(HasSubstr(*name_), HasSubstr("xz payload")));
}

TEST_F(HostKernelTest, RejectsALimitBelowItsSize) {
  KernelPayload head = *payload_;
  head.bytes = head.bytes.first(1 * kMiB);  // enough to produce well over 1 MiB
  const absl::StatusOr<Bytes> out = DecompressPayload(head, *name_, 1 * kMiB);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace minivmm
