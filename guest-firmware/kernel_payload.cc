#include "guest-firmware/kernel_payload.h"

#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace minivmm {
namespace {

using namespace std::string_view_literals;

// Boot protocol 2.08 added payload_offset and payload_length (boot.rst, "Details of Header
// Fields").
constexpr uint16_t kPayloadProtocol = 0x0208;

// Each format's name and leading bytes, as the kernel's own table (lib/decompress.c,
// compressed_formats[]) and the formats' specifications define them.
struct Format {
  PayloadCompression compression;
  std::string_view name;
  std::string_view magic;
};
constexpr Format kFormats[] = {
    {PayloadCompression::kGzip, "gzip", "\x1f\x8b"sv},              // RFC 1952 §2.3.1 ID1 ID2
    {PayloadCompression::kBzip2, "bzip2", "BZh"sv},                 // bzip2 stream header
    {PayloadCompression::kLzma, "lzma", "\x5d\x00\x00"sv},          // lzma_alone: lc=3 lp=0 pb=2
    {PayloadCompression::kXz, "xz", "\xfd\x37\x7a\x58\x5a\x00"sv},  // xz file format §2.1.1.1
    {PayloadCompression::kLzo, "lzo", "\x89\x4c\x5a\x4f"sv},        // lzop: "\x89LZO"
    {PayloadCompression::kLz4, "lz4", "\x02\x21\x4c\x18"sv},        // LZ4 legacy, LE 0x184C2102
    {PayloadCompression::kZstd, "zstd", "\x28\xb5\x2f\xfd"sv},      // RFC 8878 §3.1.1
};

// The output buffer grows by doubling, from at least this much.
constexpr uint64_t kMinGrowth = 4 << 20;
// xz: the kernel compresses with a 32 MiB dictionary (scripts/xz_wrap.sh); a hostile header
// must not make liblzma allocate more than this.
constexpr uint64_t kXzMemoryLimit = 128ull << 20;
// zstd: the kernel uses level 22 (arch/x86/boot/compressed/Makefile), a 2^27-byte window,
// which is also libzstd's default ZSTD_WINDOWLOG_LIMIT_DEFAULT.
constexpr int kZstdWindowLogMax = 27;
// LZ4 legacy frame (lz4 -l): magic, then blocks of at most 8 MiB uncompressed, each prefixed by
// its 32-bit LE compressed size (lib/decompress_unlz4.c, LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE).
constexpr uint32_t kLz4LegacyMagic = 0x184C2102;
constexpr int kLz4BlockSize = 8 << 20;

uint32_t Le32(std::span<const uint8_t> bytes) {
  return static_cast<uint32_t>(bytes[0]) | static_cast<uint32_t>(bytes[1]) << 8 |
         static_cast<uint32_t>(bytes[2]) << 16 | static_cast<uint32_t>(bytes[3]) << 24;
}

absl::Status Invalid(const std::string& name, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrFormat("kernel %s: %s", name, why));
}

// The file and format that every decompression error names.
class Context {
 public:
  Context(const std::string& name, PayloadCompression compression, uint64_t max_output)
      : name_(name), format_(CompressionName(compression)), max_output_(max_output) {}

  absl::Status Corrupt(absl::string_view why) const {
    return absl::DataLossError(
        absl::StrFormat("kernel %s: %s payload is corrupt: %s", name_, format_, why));
  }
  absl::Status Truncated() const {
    return absl::DataLossError(absl::StrFormat(
        "kernel %s: %s payload is truncated (input ends before the end of the stream)", name_,
        format_));
  }
  absl::Status TooLarge() const {
    return absl::ResourceExhaustedError(
        absl::StrFormat("kernel %s: %s payload decompresses to more than the %d-byte limit", name_,
                        format_, max_output_));
  }
  absl::Status NoDecoder() const {
    return absl::ResourceExhaustedError(
        absl::StrFormat("kernel %s: cannot set up the %s decoder (out of memory)", name_, format_));
  }

 private:
  const std::string& name_;
  std::string_view format_;
  uint64_t max_output_;
};

// The decompressed bytes, never allocated past max_output: capacity grows by explicit
// reserve() so std::vector's own growth policy cannot overshoot the limit.
class OutputBuffer {
 public:
  OutputBuffer(uint64_t max_output, uint64_t size_hint) : max_(max_output) {
    // Capacity only: pages the decoder never writes are never touched.
    if (size_hint <= max_) data_.reserve(size_hint);
  }

  // Up to `want` bytes of free space after the output so far, at least `at_least` unless that
  // would pass max_output; empty once max_output bytes have been produced.
  std::span<uint8_t> Space(size_t want, size_t at_least) {
    const uint64_t need = std::min<uint64_t>(at_least, max_ - used_);
    if (data_.size() - used_ < need) {
      // Double (amortized growth), but first fill a hinted capacity that holds the need.
      uint64_t size = std::max({used_ + need, 2 * uint64_t{data_.size()}, kMinGrowth});
      if (used_ + need <= data_.capacity()) size = std::min<uint64_t>(size, data_.capacity());
      size = std::min(size, max_);
      data_.reserve(size);
      data_.resize(size);
    }
    return std::span(data_).subspan(used_, std::min<uint64_t>(data_.size() - used_, want));
  }
  void Commit(size_t produced) { used_ += produced; }
  uint64_t size() const { return used_; }
  std::vector<uint8_t> Take() {
    data_.resize(used_);
    return std::move(data_);
  }

 private:
  uint64_t max_;
  uint64_t used_ = 0;
  std::vector<uint8_t> data_;
};

struct Progress {
  size_t consumed = 0;
  size_t produced = 0;
  bool finished = false;  // the end of the compressed stream was reached
};

// One streaming decompressor. Step errors carry only the library's reason; the caller adds the
// file and the format.
class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  virtual bool Init() = 0;  // false: out of memory
  virtual absl::StatusOr<Progress> Step(std::span<const uint8_t> in, std::span<uint8_t> out) = 0;
};

// zlib and liblzma count in uInt/size_t; zlib's uInt may be narrower than a span's size.
uInt ClampToUInt(size_t size) { return static_cast<uInt>(std::min<size_t>(size, UINT_MAX)); }

class XzDecoder final : public StreamDecoder {
 public:
  ~XzDecoder() override { lzma_end(&stream_); }
  bool Init() override {
    // No LZMA_CONCATENATED: decoding stops at the end of the first stream, before the size
    // Linux appends (arch/x86/boot/compressed/Makefile, size_append).
    return lzma_stream_decoder(&stream_, kXzMemoryLimit, 0) == LZMA_OK;
  }
  absl::StatusOr<Progress> Step(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    stream_.next_in = in.data();
    stream_.avail_in = in.size();
    stream_.next_out = out.data();
    stream_.avail_out = out.size();
    const lzma_ret ret = lzma_code(&stream_, LZMA_RUN);
    Progress progress{in.size() - stream_.avail_in, out.size() - stream_.avail_out,
                      ret == LZMA_STREAM_END};
    switch (ret) {
      case LZMA_OK:
      case LZMA_STREAM_END:
      case LZMA_BUF_ERROR:  // no progress possible: the caller sees it and reports truncation
        return progress;
      case LZMA_MEMLIMIT_ERROR:
        return absl::DataLossError(
            absl::StrFormat("stream needs more than %d MiB to decode", kXzMemoryLimit >> 20));
      case LZMA_FORMAT_ERROR:
        return absl::DataLossError("not an xz stream");
      case LZMA_OPTIONS_ERROR:
        return absl::DataLossError("unsupported xz options");
      case LZMA_DATA_ERROR:
        return absl::DataLossError("corrupt compressed data or check mismatch");
      default:
        return absl::DataLossError(absl::StrFormat("lzma_code returned %d", ret));
    }
  }

 private:
  lzma_stream stream_ = LZMA_STREAM_INIT;
};

class GzipDecoder final : public StreamDecoder {
 public:
  ~GzipDecoder() override {
    if (initialized_) inflateEnd(&stream_);
  }
  bool Init() override {
    // windowBits 16 + MAX_WBITS: gzip wrapper only (zlib manual, inflateInit2).
    initialized_ = inflateInit2(&stream_, 16 + MAX_WBITS) == Z_OK;
    return initialized_;
  }
  absl::StatusOr<Progress> Step(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    stream_.next_in = const_cast<Bytef*>(in.data());  // zlib's API is not const-correct
    stream_.avail_in = ClampToUInt(in.size());
    stream_.next_out = out.data();
    stream_.avail_out = ClampToUInt(out.size());
    const uInt avail_in = stream_.avail_in;
    const uInt avail_out = stream_.avail_out;
    const int ret = inflate(&stream_, Z_NO_FLUSH);
    Progress progress{avail_in - stream_.avail_in, avail_out - stream_.avail_out,
                      ret == Z_STREAM_END};
    switch (ret) {
      case Z_OK:
      case Z_STREAM_END:
      case Z_BUF_ERROR:  // no progress possible
        return progress;
      case Z_NEED_DICT:
        return absl::DataLossError("stream needs a preset dictionary");
      default:
        return absl::DataLossError(stream_.msg != nullptr ? stream_.msg : "inflate failed");
    }
  }

 private:
  z_stream stream_{};
  bool initialized_ = false;
};

class ZstdDecoder final : public StreamDecoder {
 public:
  ~ZstdDecoder() override { ZSTD_freeDCtx(context_); }
  bool Init() override {
    context_ = ZSTD_createDCtx();
    return context_ != nullptr &&
           !ZSTD_isError(ZSTD_DCtx_setParameter(context_, ZSTD_d_windowLogMax, kZstdWindowLogMax));
  }
  absl::StatusOr<Progress> Step(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    // Returns 0 once a frame is fully decoded and flushed; it stops there, so the size Linux
    // appends after the frame is left unread.
    const size_t ret = ZSTD_decompressStream(context_, &output, &input);
    if (ZSTD_isError(ret)) return absl::DataLossError(ZSTD_getErrorName(ret));
    return Progress{input.pos, output.pos, ret == 0};
  }

 private:
  ZSTD_DCtx* context_ = nullptr;
};

// The streaming decoder for `compression`; nullptr for the formats that are not streamed.
std::unique_ptr<StreamDecoder> NewStreamDecoder(PayloadCompression compression) {
  switch (compression) {
    case PayloadCompression::kXz:
      return std::make_unique<XzDecoder>();
    case PayloadCompression::kGzip:
      return std::make_unique<GzipDecoder>();
    case PayloadCompression::kZstd:
      return std::make_unique<ZstdDecoder>();
    default:
      return nullptr;
  }
}

// Feeds the whole input to `decoder` until its stream ends. At the limit the decoder gets a
// one-byte probe: a stream that ends exactly at max_output is fine, one that writes more is not.
absl::StatusOr<std::vector<uint8_t>> RunStream(StreamDecoder& decoder, std::span<const uint8_t> in,
                                               OutputBuffer& out, const Context& context) {
  for (;;) {
    std::span<uint8_t> space = out.Space(SIZE_MAX, 1);
    uint8_t probe = 0;
    const bool at_limit = space.empty();
    if (at_limit) space = std::span(&probe, 1);
    absl::StatusOr<Progress> progress = decoder.Step(in, space);
    if (!progress.ok()) return context.Corrupt(progress.status().message());
    if (at_limit && progress->produced > 0) return context.TooLarge();
    if (!at_limit) out.Commit(progress->produced);
    in = in.subspan(progress->consumed);
    if (progress->finished) return out.Take();
    // With output space available every decoder makes progress unless its input ran out.
    if (progress->consumed == 0 && progress->produced == 0) return context.Truncated();
  }
}

// Decompresses one LZ4 block into at most one legacy block's worth of output.
absl::Status DecodeLz4Block(std::span<const uint8_t> block, OutputBuffer& out,
                            const Context& context) {
  std::span<uint8_t> space = out.Space(kLz4BlockSize, kLz4BlockSize);
  uint8_t probe = 0;
  char* dst = reinterpret_cast<char*>(space.empty() ? &probe : space.data());
  const char* src = reinterpret_cast<const char*>(block.data());
  const int src_size = static_cast<int>(block.size());  // <= LZ4_compressBound(8 MiB)
  const int capacity = static_cast<int>(space.size());  // <= 8 MiB
  const int decoded = LZ4_decompress_safe(src, dst, src_size, capacity);
  if (decoded >= 0) {
    out.Commit(static_cast<size_t>(decoded));
    return absl::OkStatus();
  }
  // With less room than a full block, tell "the limit is too small" from corruption: a block
  // that fills all the room it had would have gone on past max_output.
  if (capacity < kLz4BlockSize &&
      LZ4_decompress_safe_partial(src, dst, src_size, capacity, capacity) == capacity) {
    return context.TooLarge();
  }
  return context.Corrupt("LZ4_decompress_safe failed on a block");
}

// The legacy frame read the way Linux reads it from memory (lib/decompress_unlz4.c): fewer
// than 4 bytes left or a zero block size ends the stream, a repeated magic starts a
// concatenated frame. The x86 bzImage payload ends in the 4-byte uncompressed size (the boot
// decompressor calls unlz4 with in_len - 4); legacy frames have no end marker, so 4 bytes left
// over after the last block are that size and must match.
absl::StatusOr<std::vector<uint8_t>> DecodeLz4Legacy(std::span<const uint8_t> in, OutputBuffer& out,
                                                     const Context& context) {
  if (in.size() < 4 || Le32(in) != kLz4LegacyMagic) {
    return context.Corrupt("no LZ4 legacy frame magic");
  }
  size_t pos = 4;
  while (in.size() - pos >= 4) {
    const uint32_t block_size = Le32(in.subspan(pos));
    const size_t after = in.size() - pos - 4;
    if (block_size == kLz4LegacyMagic) {
      pos += 4;
      continue;
    }
    if (block_size == 0) break;
    if (after == 0) {
      if (block_size != static_cast<uint32_t>(out.size())) {
        return context.Corrupt(absl::StrFormat(
            "size trailer says %d bytes, the stream decoded to %d", block_size, out.size()));
      }
      break;
    }
    if (block_size > static_cast<uint32_t>(LZ4_compressBound(kLz4BlockSize))) {
      return context.Corrupt(absl::StrFormat(
          "block at offset %d claims %d bytes, more than an 8 MiB block can compress to", pos,
          block_size));
    }
    if (block_size > after) return context.Truncated();
    if (absl::Status status = DecodeLz4Block(in.subspan(pos + 4, block_size), out, context);
        !status.ok()) {
      return status;
    }
    pos += 4 + static_cast<size_t>(block_size);
  }
  // Linux would accept a frame without blocks; an empty kernel is of no use to anyone.
  if (out.size() == 0) return context.Corrupt("the frame holds no data");
  return out.Take();
}

}  // namespace

std::string_view CompressionName(PayloadCompression compression) {
  for (const Format& format : kFormats) {
    if (format.compression == compression) return format.name;
  }
  return "unknown";
}

bool CanDecompressOnHost(PayloadCompression compression) {
  return compression == PayloadCompression::kGzip || compression == PayloadCompression::kXz ||
         compression == PayloadCompression::kZstd || compression == PayloadCompression::kLz4;
}

absl::StatusOr<KernelPayload> ExtractPayload(const BzImage& kernel, const std::string& name) {
  const setup_header& hdr = kernel.header;
  if (hdr.version < kPayloadProtocol) {
    return Invalid(name, absl::StrFormat("boot protocol %d.%02d has no payload_offset (needs "
                                         "2.08 or later)",
                                         hdr.version >> 8, hdr.version & 0xff));
  }
  // payload_offset counts from the start of the protected-mode code (boot.rst), which begins
  // setup_size bytes into the file. Every comparison below is written so nothing can overflow.
  const uint64_t file_size = kernel.file.size();
  const uint64_t offset = hdr.payload_offset;
  const uint64_t length = hdr.payload_length;
  if (kernel.setup_size > file_size || offset > file_size - kernel.setup_size ||
      length > file_size - kernel.setup_size - offset) {
    return Invalid(name, absl::StrFormat("payload [%#x, +%#x) runs past the end of the "
                                         "protected-mode kernel (%d bytes in the file)",
                                         offset, length, file_size));
  }
  if (length == 0) return Invalid(name, "payload_length is 0: the header describes no payload");
  KernelPayload payload;
  payload.bytes = std::span(kernel.file).subspan(kernel.setup_size + offset, length);
  for (const Format& format : kFormats) {
    if (payload.bytes.size() >= format.magic.size() &&
        std::memcmp(payload.bytes.data(), format.magic.data(), format.magic.size()) == 0) {
      payload.compression = format.compression;
      return payload;
    }
  }
  std::string shown;
  for (uint8_t byte : payload.bytes.first(std::min<size_t>(payload.bytes.size(), 6))) {
    absl::StrAppendFormat(&shown, "%s%02x", shown.empty() ? "" : " ", byte);
  }
  return Invalid(name, absl::StrFormat("payload starts with %s, not a compression format minivmm "
                                       "knows (gzip, bzip2, lzma, xz, lzo, lz4, zstd)",
                                       shown));
}

absl::StatusOr<std::vector<uint8_t>> DecompressPayload(const KernelPayload& payload,
                                                       const std::string& name,
                                                       uint64_t max_output) {
  const Context context(name, payload.compression, max_output);
  // Linux appends the uncompressed size as 4 LE bytes (arch/x86/boot/compressed/Makefile,
  // size_append): a capacity hint that saves regrowing, ignored past max_output.
  const uint64_t size_hint = payload.bytes.size() >= 4 ? Le32(payload.bytes.last(4)) : 0;
  OutputBuffer out(max_output, size_hint);
  if (payload.compression == PayloadCompression::kLz4) {
    return DecodeLz4Legacy(payload.bytes, out, context);
  }
  if (std::unique_ptr<StreamDecoder> decoder = NewStreamDecoder(payload.compression)) {
    if (!decoder->Init()) return context.NoDecoder();
    return RunStream(*decoder, payload.bytes, out, context);
  }
  if (payload.compression == PayloadCompression::kUnknown) {
    return Invalid(name, "payload compression is unknown");
  }
  return absl::UnimplementedError(
      absl::StrFormat("kernel %s: %s payloads are not decompressed on the host; the kernel must "
                      "be decompressed by the guest",
                      name, CompressionName(payload.compression)));
}

}  // namespace minivmm
