// The compressed kernel inside a bzImage (boot protocol 2.08+: payload_offset/payload_length)
// and its decompression on the host, so a guest need not decompress its kernel on every boot.
#ifndef MINIVMM_GUEST_FIRMWARE_KERNEL_PAYLOAD_H_
#define MINIVMM_GUEST_FIRMWARE_KERNEL_PAYLOAD_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "guest-firmware/bzimage.h"

namespace minivmm {

// Formats Linux can compress its payload with (arch/x86/boot/compressed/Makefile).
enum class PayloadCompression { kGzip, kBzip2, kLzma, kXz, kLzo, kLz4, kZstd, kUnknown };

std::string_view CompressionName(PayloadCompression compression);

struct KernelPayload {
  PayloadCompression compression = PayloadCompression::kUnknown;
  std::span<const uint8_t> bytes;  // inside the BzImage's file; valid while it lives
};

// Locates the payload, bounds-checked against the file, and identifies its format by magic.
// Errors name the kernel file and the reason (protocol < 2.08, payload past end of file, ...).
absl::StatusOr<KernelPayload> ExtractPayload(const BzImage& kernel, const std::string& name);

// True for the formats DecompressPayload handles (gzip, xz, zstd, lz4); for the others the
// guest's own decompressor has to run.
bool CanDecompressOnHost(PayloadCompression compression);

// Decompresses the payload. The output must not exceed max_output bytes (a hostile or broken
// image must not exhaust host memory). The result is what the guest's decompressor would
// produce: the vmlinux ELF image followed by its relocation table (CONFIG_X86_NEED_RELOCS).
// Errors: unsupported format (absl::UnimplementedError), truncated or corrupt stream, output
// too large.
absl::StatusOr<std::vector<uint8_t>> DecompressPayload(const KernelPayload& payload,
                                                       const std::string& name,
                                                       uint64_t max_output);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_KERNEL_PAYLOAD_H_
