#include "devices/virtio/backends/file_block_backend.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm::virtio {
namespace {

// virtio 1.2 §5.2.4: capacity is a count of 512-byte sectors, so the disk must be a whole number
// of them.
constexpr uint64_t kSectorSize = 512;

bool IsUnsupported(int err) { return err == EOPNOTSUPP || err == ENOSYS; }

// Moves every byte of iov with as many preadv/pwritev calls as it takes: IOV_MAX iovecs per
// call, retried on EINTR, resumed after a short transfer. A call that moves nothing (end of
// file) is an error: callers have checked the range against the disk size.
template <typename Byte, typename Syscall>
absl::Status TransferAll(int fd, Syscall syscall, const char* syscall_name, const std::string& path,
                         uint64_t offset, std::span<const std::span<Byte>> iov) {
  std::vector<iovec> iovecs;
  iovecs.reserve(iov.size());
  for (std::span<Byte> s : iov) {
    if (!s.empty()) iovecs.push_back({const_cast<uint8_t*>(s.data()), s.size()});
  }
  size_t first = 0;
  while (first < iovecs.size()) {
    const int count = static_cast<int>(std::min<size_t>(iovecs.size() - first, IOV_MAX));
    const ssize_t n = syscall(fd, &iovecs[first], count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return ErrnoError(absl::StrFormat("%s(%s, offset %d)", syscall_name, path, offset), err);
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrFormat("%s(%s, offset %d): unexpected end of file (was the image truncated "
                          "while in use?)",
                          syscall_name, path, offset));
    }
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      iovec& v = iovecs[first];
      if (left >= v.iov_len) {
        left -= v.iov_len;
        ++first;
      } else {
        v.iov_base = static_cast<uint8_t*>(v.iov_base) + left;
        v.iov_len -= left;
        left = 0;
      }
    }
  }
  return absl::OkStatus();
}

// A writable regular file can be asked to punch a hole past its end: that deallocates nothing
// and changes no data, but fails with EOPNOTSUPP where the filesystem cannot punch holes at
// all (fallocate(2) refuses a zero length, so it cannot serve as the probe).
bool ProbePunchHole(int fd, uint64_t size) {
  int r;
  do {
    r = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(size),
                    kSectorSize);
  } while (r != 0 && errno == EINTR);
  return r == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileBlockBackend>> FileBlockBackend::Open(const std::string& path,
                                                                         bool read_only) {
  UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return ErrnoError(
        absl::StrFormat("opening disk image %s%s", path, read_only ? " read-only" : ""), err);
  }
  // flock(2) locks belong to the open file description, so a second Open() conflicts even
  // within one process; LOCK_NB turns a held lock into an error instead of a hang.
  if (::flock(fd.get(), (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "disk image %s is locked: another process (another VM?) has it open%s; stop that "
          "process or give this VM its own copy of the image",
          path, read_only ? " for writing" : ""));
    }
    return ErrnoError(absl::StrFormat("flock(%s)", path), err);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return ErrnoError(absl::StrFormat("fstat(%s)", path), err);
  }
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) {
      const int err = errno;
      return ErrnoError(absl::StrFormat("ioctl(%s, BLKGETSIZE64)", path), err);
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrFormat("disk image %s is neither a regular file nor a block device", path));
  }
  if (size % kSectorSize != 0) {
    const uint64_t rounded = (size / kSectorSize + 1) * kSectorSize;
    return absl::InvalidArgumentError(absl::StrFormat(
        "disk image %s is %d bytes, not a multiple of the 512-byte sector; pad it with "
        "`truncate -s %d %s`",
        path, size, rounded, path));
  }
  // Block devices take punch-hole fallocate as a discard (blkdev_fallocate); whether the device
  // really can is only known when one fails, and Discard() then reports kUnimplemented.
  const bool supports_discard =
      !read_only && (S_ISBLK(st.st_mode) || ProbePunchHole(fd.get(), size));
  return std::unique_ptr<FileBlockBackend>(
      new FileBlockBackend(std::move(fd), path, size, read_only, supports_discard));
}

absl::Status FileBlockBackend::CheckRange(const char* op, uint64_t offset, uint64_t length) const {
  if (offset > size_bytes_ || length > size_bytes_ - offset) {
    return absl::OutOfRangeError(absl::StrFormat("%s of [%d, +%d) is past the end of %s (%d bytes)",
                                                 op, offset, length, path_, size_bytes_));
  }
  return absl::OkStatus();
}

absl::Status FileBlockBackend::CheckWritable(const char* op) const {
  if (read_only_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s on %s, which was opened read-only", op, path_));
  }
  return absl::OkStatus();
}

absl::Status FileBlockBackend::ReadAt(uint64_t offset, std::span<const std::span<uint8_t>> iov) {
  uint64_t length = 0;
  for (std::span<uint8_t> s : iov) length += s.size();
  MINIVMM_RETURN_IF_ERROR(CheckRange("read", offset, length));
  return TransferAll<uint8_t>(fd_.get(), ::preadv, "preadv", path_, offset, iov);
}

absl::Status FileBlockBackend::WriteAt(uint64_t offset,
                                       std::span<const std::span<const uint8_t>> iov) {
  MINIVMM_RETURN_IF_ERROR(CheckWritable("write"));
  uint64_t length = 0;
  for (std::span<const uint8_t> s : iov) length += s.size();
  MINIVMM_RETURN_IF_ERROR(CheckRange("write", offset, length));
  return TransferAll<const uint8_t>(fd_.get(), ::pwritev, "pwritev", path_, offset, iov);
}

absl::Status FileBlockBackend::Flush() {
  while (::fdatasync(fd_.get()) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    return ErrnoError(absl::StrFormat("fdatasync(%s)", path_), err);
  }
  return absl::OkStatus();
}

absl::Status FileBlockBackend::Fallocate(int mode, const char* mode_name, uint64_t offset,
                                         uint64_t length) {
  while (::fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) !=
         0) {
    if (errno == EINTR) continue;
    const int err = errno;
    const std::string what =
        absl::StrFormat("fallocate(%s, %s, [%d, +%d))", path_, mode_name, offset, length);
    // Spelled out rather than left to absl::ErrnoToStatus so that callers can rely on it: the
    // device turns kUnimplemented into VIRTIO_BLK_S_UNSUPP.
    if (IsUnsupported(err)) {
      return absl::UnimplementedError(absl::StrFormat("%s: not supported here", what));
    }
    return ErrnoError(what, err);
  }
  return absl::OkStatus();
}

absl::Status FileBlockBackend::Discard(uint64_t offset, uint64_t length) {
  MINIVMM_RETURN_IF_ERROR(CheckWritable("discard"));
  MINIVMM_RETURN_IF_ERROR(CheckRange("discard", offset, length));
  if (!supports_discard_) {
    return absl::UnimplementedError(
        absl::StrFormat("discard on %s: its filesystem cannot punch holes", path_));
  }
  if (length == 0) return absl::OkStatus();  // fallocate(2) rejects a zero length
  return Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE", offset, length);
}

absl::Status FileBlockBackend::WriteZeroes(uint64_t offset, uint64_t length, bool may_unmap) {
  MINIVMM_RETURN_IF_ERROR(CheckWritable("write-zeroes"));
  MINIVMM_RETURN_IF_ERROR(CheckRange("write-zeroes", offset, length));
  if (length == 0) return absl::OkStatus();
  // Cheapest first. A punched hole reads as zeroes (fallocate(2)), so it satisfies write-zeroes
  // where the driver allowed deallocation (virtio 1.2 §5.2.6.2). ZERO_RANGE keeps the blocks
  // allocated. Either can be refused: EOPNOTSUPP where the filesystem lacks it, EINVAL on a
  // block device whose logical block is larger than the range's alignment. Writing zeroes
  // always works.
  auto can_fall_back = [](const absl::Status& s) {
    return absl::IsUnimplemented(s) || absl::IsInvalidArgument(s);
  };
  if (may_unmap && supports_discard_) {
    absl::Status s =
        Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE", offset, length);
    if (!can_fall_back(s)) return s;
  }
  absl::Status s =
      Fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "ZERO_RANGE", offset, length);
  if (!can_fall_back(s)) return s;
  return WriteZeroBuffers(offset, length);
}

absl::Status FileBlockBackend::WriteZeroBuffers(uint64_t offset, uint64_t length) {
  static const std::array<uint8_t, 64 * 1024> kZeroes{};
  // Up to 16 iovecs of the same zero buffer: 1 MiB per pwritev.
  constexpr uint64_t kChunk = 16 * kZeroes.size();
  while (length > 0) {
    const uint64_t chunk = std::min(length, kChunk);
    std::vector<std::span<const uint8_t>> iov;
    for (uint64_t done = 0; done < chunk; done += kZeroes.size()) {
      iov.emplace_back(kZeroes.data(), std::min<uint64_t>(kZeroes.size(), chunk - done));
    }
    MINIVMM_RETURN_IF_ERROR(
        TransferAll<const uint8_t>(fd_.get(), ::pwritev, "pwritev", path_, offset,
                                   std::span<const std::span<const uint8_t>>(iov)));
    offset += chunk;
    length -= chunk;
  }
  return absl::OkStatus();
}

}  // namespace minivmm::virtio
