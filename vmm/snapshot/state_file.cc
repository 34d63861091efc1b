#include "vmm/snapshot/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unique_fd.h"
#include "vmm/snapshot/remove_unless_kept.h"

namespace minivmm {
namespace {

constexpr char kMagic[8] = {'M', 'I', 'N', 'I', 'V', 'M', 'M', 'S'};
constexpr size_t kVersionOffset = 8;
constexpr size_t kHeaderSizeOffset = 12;
constexpr size_t kPayloadLengthOffset = 16;
constexpr size_t kChecksumOffset = 24;
static_assert(kChecksumOffset + 4 == kStateHeaderSize);

// CRC-32C (Castagnoli; RFC 3720 §B.4): reflected polynomial 0x82F63B78, initial value and final
// XOR 0xFFFFFFFF. Debian's Abseil has no absl/crc, and a byte-wise table is fast enough for a
// payload of kilobytes.
constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0);
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

uint32_t Crc32c(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : bytes) crc = (crc >> 8) ^ kCrc32cTable[(crc ^ static_cast<uint8_t>(c)) & 0xFF];
  return crc ^ 0xFFFFFFFFu;
}

// Little-endian on every host, whatever its byte order.
template <typename Int>
void PutLittleEndian(std::string& out, Int value) {
  for (size_t i = 0; i < sizeof(Int); ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

template <typename Int>
Int GetLittleEndian(std::string_view bytes, size_t offset) {
  Int value = 0;
  for (size_t i = 0; i < sizeof(Int); ++i) {
    value |= static_cast<Int>(static_cast<uint8_t>(bytes[offset + i])) << (8 * i);
  }
  return value;
}


absl::Status WriteAll(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("write(", what, ")"));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status CheckVersion(uint32_t version, std::string_view what) {
  if (version > kStateFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: written by a newer minivmm (format version %d; this one reads up to %d); restore it "
        "with that minivmm or a newer one",
        what, version, kStateFormatVersion));
  }
  if (version < kOldestReadableStateFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: written by an older minivmm (format version %d; this one reads versions %d to %d); "
        "restore it with the minivmm that wrote it",
        what, version, kOldestReadableStateFormatVersion, kStateFormatVersion));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeState(std::string_view payload) {
  std::string bytes;
  bytes.reserve(kStateHeaderSize + payload.size());
  bytes.append(kMagic, sizeof(kMagic));
  PutLittleEndian<uint32_t>(bytes, kStateFormatVersion);
  PutLittleEndian<uint32_t>(bytes, kStateHeaderSize);
  PutLittleEndian<uint64_t>(bytes, payload.size());
  PutLittleEndian<uint32_t>(bytes, Crc32c(payload));
  bytes.append(payload);
  return bytes;
}

absl::StatusOr<std::string> DecodeState(std::string_view bytes, std::string_view what) {
  if (bytes.size() < kStateHeaderSize) {
    return absl::DataLossError(
        absl::StrFormat("%s: truncated: %d bytes, a state file has at least %d", what, bytes.size(),
                        kStateHeaderSize));
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not a minivmm state file (it does not start with \"MINIVMMS\")", what));
  }
  MINIVMM_RETURN_IF_ERROR(CheckVersion(GetLittleEndian<uint32_t>(bytes, kVersionOffset), what));
  const uint32_t header_size = GetLittleEndian<uint32_t>(bytes, kHeaderSizeOffset);
  if (header_size != kStateHeaderSize) {
    return absl::DataLossError(
        absl::StrFormat("%s: corrupt: header size %d, format version %d has %d", what, header_size,
                        kStateFormatVersion, kStateHeaderSize));
  }
  const uint64_t length = GetLittleEndian<uint64_t>(bytes, kPayloadLengthOffset);
  const uint64_t present = bytes.size() - kStateHeaderSize;
  if (length > present) {
    return absl::DataLossError(absl::StrFormat(
        "%s: truncated: the header announces a %d-byte payload, only %d bytes follow it", what,
        length, present));
  }
  if (length < present) {
    return absl::DataLossError(
        absl::StrFormat("%s: corrupt: %d bytes follow the %d-byte payload the header announces",
                        what, present - length, length));
  }
  const std::string_view payload = bytes.substr(kStateHeaderSize);
  const uint32_t expected = GetLittleEndian<uint32_t>(bytes, kChecksumOffset);
  if (const uint32_t actual = Crc32c(payload); actual != expected) {
    return absl::DataLossError(absl::StrFormat(
        "%s: corrupt: checksum mismatch (the payload's CRC-32C is %08x, the header says %08x)",
        what, actual, expected));
  }
  return std::string(payload);
}

absl::Status WriteStateFile(const std::filesystem::path& path, std::string_view payload) {
  const std::string what = path.string();
  // O_EXCL: a snapshot never overwrites another one, or a file that happens to be in the way.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError(absl::StrCat("cannot create state file ", what));
  RemoveUnlessKept remove(path);
  MINIVMM_RETURN_IF_ERROR(WriteAll(fd.get(), EncodeState(payload), what));
  if (::fsync(fd.get()) != 0) return ErrnoError(absl::StrCat("fsync(", what, ")"));
  // close() reports the write errors of some file systems (NFS) that fsync did not.
  if (::close(fd.Release()) != 0) return ErrnoError(absl::StrCat("close(", what, ")"));
  remove.Keep();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadStateFile(const std::filesystem::path& path) {
  const std::string what = path.string();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrCat("cannot read state file ", what));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(absl::StrCat("fstat(", what, ")"));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("state file %s is not a regular file", what));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxStateFileBytes) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is %d bytes, more than the %d MiB a state file may have: it is not a state file", what,
        st.st_size, kMaxStateFileBytes >> 20));
  }
  // Read up to one byte past the size fstat gave, so a file that grows meanwhile shows up as
  // trailing bytes rather than being cut silently.
  std::string bytes(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t filled = 0;
  while (filled < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + filled, bytes.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("cannot read state file ", what));
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  bytes.resize(filled);
  return DecodeState(bytes, what);
}

}  // namespace minivmm
