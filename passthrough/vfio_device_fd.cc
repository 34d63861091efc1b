#include "passthrough/vfio_device_fd.h"

#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

// The uapi structs that end in a flexible array (areas[], data[]) are built here from headers
// of our own, so nothing depends on what a C++ compiler makes of a flexible array member; the
// asserts pin them to the C layout.
struct SparseMmapCapHeader {
  vfio_info_cap_header header;
  uint32_t nr_areas;
  uint32_t reserved;
};
static_assert(sizeof(vfio_info_cap_header) == 8);
static_assert(sizeof(vfio_region_info) == 32);
static_assert(offsetof(vfio_region_info, cap_offset) == 12);
static_assert(sizeof(SparseMmapCapHeader) == 16);
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, nr_areas) ==
              offsetof(SparseMmapCapHeader, nr_areas));
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, areas) == sizeof(SparseMmapCapHeader));
static_assert(sizeof(vfio_region_sparse_mmap_area) == 16);

struct IrqSetHeader {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t start;
  uint32_t count;
};
static_assert(sizeof(IrqSetHeader) == 20);
static_assert(offsetof(vfio_irq_set, count) == offsetof(IrqSetHeader, count));
static_assert(offsetof(vfio_irq_set, data) == sizeof(IrqSetHeader));

// Copies a T out of buffer at offset; the caller has checked the bounds.
template <typename T>
T Load(std::span<const uint8_t> buffer, uint64_t offset) {
  T value;
  std::memcpy(&value, buffer.data() + offset, sizeof(T));
  return value;
}

// [offset, offset + size) lies inside a buffer of buffer_size bytes (no overflow).
bool Fits(uint64_t offset, uint64_t size, uint64_t buffer_size) {
  return offset <= buffer_size && size <= buffer_size - offset;
}

absl::Status Malformed(const std::string& what) {
  return absl::InternalError(
      absl::StrFormat("malformed VFIO_DEVICE_GET_REGION_INFO capability chain: %s", what));
}

// Parses a VFIO_REGION_INFO_CAP_SPARSE_MMAP at `offset`; `limit` is where the capability must
// end (the next capability, or the end of the buffer).
absl::Status ParseSparseMmap(std::span<const uint8_t> buffer, uint64_t offset, uint64_t limit,
                             uint64_t region_size, VfioRegionCaps* caps) {
  if (caps->has_sparse_mmap) return Malformed("two sparse mmap capabilities");
  if (!Fits(offset, sizeof(SparseMmapCapHeader), limit)) {
    return Malformed(absl::StrFormat("sparse mmap capability at %u is truncated", offset));
  }
  const auto cap = Load<SparseMmapCapHeader>(buffer, offset);
  const uint64_t areas_offset = offset + sizeof(SparseMmapCapHeader);
  const uint64_t areas_size = uint64_t{cap.nr_areas} * sizeof(vfio_region_sparse_mmap_area);
  if (!Fits(areas_offset, areas_size, limit)) {
    return Malformed(absl::StrFormat("sparse mmap capability at %u lists %u areas, past byte %u",
                                     offset, cap.nr_areas, limit));
  }
  caps->has_sparse_mmap = true;
  for (uint32_t i = 0; i < cap.nr_areas; ++i) {
    const auto area = Load<vfio_region_sparse_mmap_area>(
        buffer, areas_offset + i * sizeof(vfio_region_sparse_mmap_area));
    if (!Fits(area.offset, area.size, region_size)) {
      return Malformed(
          absl::StrFormat("sparse mmap area %u [0x%x, +0x%x) is outside the region (size 0x%x)", i,
                          area.offset, area.size, region_size));
    }
    if (area.size == 0) continue;
    caps->sparse_mmap_areas.push_back({area.offset, area.size});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VfioRegionCaps> ParseRegionInfoCaps(std::span<const uint8_t> info_buffer) {
  if (info_buffer.size() < sizeof(vfio_region_info)) {
    return Malformed(
        absl::StrFormat("%u bytes, shorter than struct vfio_region_info", info_buffer.size()));
  }
  const auto info = Load<vfio_region_info>(info_buffer, 0);
  VfioRegionCaps caps;
  // "Callers of INFO ioctls passing insufficiently sized buffers will see the capability chain
  // flag bit set, a zero value for the first capability offset" (<linux/vfio.h>).
  if (!(info.flags & VFIO_REGION_INFO_FLAG_CAPS) || info.cap_offset == 0) return caps;

  const uint64_t end = info_buffer.size();
  uint64_t offset = info.cap_offset;
  // A capability may not overlap the fixed struct. Offsets strictly increase along the chain
  // (the kernel appends each capability after the previous one), so the walk terminates.
  uint64_t min_offset = sizeof(vfio_region_info);
  while (offset != 0) {
    if (offset < min_offset) {
      return Malformed(absl::StrFormat("capability at %u overlaps what precedes it (byte %u)",
                                       offset, min_offset));
    }
    if (!Fits(offset, sizeof(vfio_info_cap_header), end)) {
      return Malformed(
          absl::StrFormat("capability header at %u is past the end (%u bytes)", offset, end));
    }
    const auto header = Load<vfio_info_cap_header>(info_buffer, offset);
    // The capability runs up to the next one, or to the end of the buffer.
    const uint64_t limit = header.next != 0 ? header.next : end;
    if (header.next != 0 && header.next < offset + sizeof(vfio_info_cap_header)) {
      return Malformed(absl::StrFormat("capability at %u points back to %u", offset, header.next));
    }
    if (limit > end) {
      return Malformed(absl::StrFormat("capability at %u points to %u, past the end (%u bytes)",
                                       offset, header.next, end));
    }
    switch (header.id) {
      case VFIO_REGION_INFO_CAP_SPARSE_MMAP:
        MINIVMM_RETURN_IF_ERROR(ParseSparseMmap(info_buffer, offset, limit, info.size, &caps));
        break;
      case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
        caps.msix_mappable = true;  // a bare header
        break;
      default:
        break;  // VFIO_REGION_INFO_CAP_TYPE and others: not used here
    }
    min_offset = offset + sizeof(vfio_info_cap_header);
    offset = header.next;
  }
  return caps;
}

absl::StatusOr<VfioRegionInfo> ParseRegionInfo(std::span<const uint8_t> info_buffer) {
  MINIVMM_ASSIGN_OR_RETURN(VfioRegionCaps caps, ParseRegionInfoCaps(info_buffer));
  const auto fixed = Load<vfio_region_info>(info_buffer, 0);
  VfioRegionInfo info;
  info.index = fixed.index;
  info.size = fixed.size;
  info.readable = fixed.flags & VFIO_REGION_INFO_FLAG_READ;
  info.writable = fixed.flags & VFIO_REGION_INFO_FLAG_WRITE;
  info.msix_mappable = caps.msix_mappable;
  if ((fixed.flags & VFIO_REGION_INFO_FLAG_MMAP) && fixed.size != 0) {
    if (caps.has_sparse_mmap) {
      info.mmap_areas = std::move(caps.sparse_mmap_areas);
    } else {
      info.mmap_areas.push_back({0, fixed.size});
    }
  }
  return info;
}

std::string VfioPciRegionName(uint32_t index) {
  if (index <= VFIO_PCI_BAR5_REGION_INDEX) return absl::StrFormat("BAR%u", index);
  switch (index) {
    case VFIO_PCI_ROM_REGION_INDEX:
      return "ROM";
    case VFIO_PCI_CONFIG_REGION_INDEX:
      return "config";
    case VFIO_PCI_VGA_REGION_INDEX:
      return "VGA";
    default:
      return absl::StrFormat("region %u", index);
  }
}

std::string VfioPciIrqName(uint32_t index) {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      return "INTx";
    case VFIO_PCI_MSI_IRQ_INDEX:
      return "MSI";
    case VFIO_PCI_MSIX_IRQ_INDEX:
      return "MSI-X";
    case VFIO_PCI_ERR_IRQ_INDEX:
      return "ERR";
    case VFIO_PCI_REQ_IRQ_INDEX:
      return "REQ";
    default:
      return absl::StrFormat("IRQ index %u", index);
  }
}

absl::StatusOr<std::unique_ptr<VfioDeviceFd>> VfioDeviceFd::Create(
    std::string name, UniqueFd fd, std::shared_ptr<const void> keepalive) {
  std::unique_ptr<VfioDeviceFd> device(
      new VfioDeviceFd(std::move(name), std::move(fd), std::move(keepalive)));
  vfio_device_info info{};
  info.argsz = sizeof(info);
  if (::ioctl(device->fd_.get(), VFIO_DEVICE_GET_INFO, &info) < 0) {
    return ErrnoError(absl::StrFormat("VFIO_DEVICE_GET_INFO(%s)", device->name_));
  }
  if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "VFIO device %s is not a vfio-pci device (flags 0x%x)", device->name_, info.flags));
  }
  device->supports_reset_ = info.flags & VFIO_DEVICE_FLAGS_RESET;
  device->num_irqs_ = info.num_irqs;
  device->regions_.reserve(info.num_regions);
  // Absent regions (VGA on a non-VGA device: EINVAL) are remembered as errors, not fatal.
  for (uint32_t index = 0; index < info.num_regions; ++index) {
    device->regions_.push_back(device->QueryRegion(index));
  }
  return device;
}

VfioDeviceFd::~VfioDeviceFd() = default;

std::string VfioDeviceFd::Context(const char* op, uint32_t index, bool irq) const {
  return absl::StrFormat("%s(%s, %s)", op, name_,
                         irq ? VfioPciIrqName(index) : VfioPciRegionName(index));
}

absl::StatusOr<VfioDeviceFd::Region> VfioDeviceFd::QueryRegion(uint32_t index) const {
  // First with the bare struct; the kernel raises argsz when the capability chain needs more,
  // then we ask again with that much (Documentation/driver-api/vfio.rst, "argsz").
  std::vector<uint64_t> words(sizeof(vfio_region_info) / sizeof(uint64_t));
  for (int attempt = 0; attempt < 3; ++attempt) {
    const size_t bytes = words.size() * sizeof(uint64_t);
    vfio_region_info fixed{};
    fixed.argsz = static_cast<uint32_t>(bytes);
    fixed.index = index;
    std::memcpy(words.data(), &fixed, sizeof(fixed));
    if (::ioctl(fd_.get(), VFIO_DEVICE_GET_REGION_INFO, words.data()) < 0) {
      return ErrnoError(Context("VFIO_DEVICE_GET_REGION_INFO", index, false));
    }
    std::memcpy(&fixed, words.data(), sizeof(fixed));
    if (fixed.argsz > bytes) {
      words.assign((fixed.argsz + sizeof(uint64_t) - 1) / sizeof(uint64_t), 0);
      continue;
    }
    const std::span<const uint8_t> buffer(reinterpret_cast<const uint8_t*>(words.data()), bytes);
    absl::StatusOr<VfioRegionInfo> info = ParseRegionInfo(buffer);
    if (!info.ok()) {
      return WithContext(info.status(), Context("VFIO_DEVICE_GET_REGION_INFO", index, false));
    }
    return Region{*std::move(info), fixed.offset};
  }
  return absl::InternalError(absl::StrFormat("%s: argsz kept growing",
                                             Context("VFIO_DEVICE_GET_REGION_INFO", index, false)));
}

absl::StatusOr<VfioRegionInfo> VfioDeviceFd::GetRegionInfo(uint32_t index) {
  if (index >= regions_.size()) {
    return absl::NotFoundError(absl::StrFormat("%s: the device has %u regions",
                                               Context("VFIO_DEVICE_GET_REGION_INFO", index, false),
                                               regions_.size()));
  }
  if (!regions_[index].ok()) return regions_[index].status();
  return regions_[index]->info;
}

absl::StatusOr<VfioIrqInfo> VfioDeviceFd::GetIrqInfo(uint32_t index) {
  vfio_irq_info irq{};
  irq.argsz = sizeof(irq);
  irq.index = index;
  if (::ioctl(fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &irq) < 0) {
    return ErrnoError(Context("VFIO_DEVICE_GET_IRQ_INFO", index, true));
  }
  VfioIrqInfo info;
  info.index = index;
  info.count = irq.count;
  info.eventfd = irq.flags & VFIO_IRQ_INFO_EVENTFD;
  info.maskable = irq.flags & VFIO_IRQ_INFO_MASKABLE;
  info.automasked = irq.flags & VFIO_IRQ_INFO_AUTOMASKED;
  return info;
}

absl::StatusOr<const VfioDeviceFd::Region*> VfioDeviceFd::AccessibleRegion(
    uint32_t index, uint64_t offset, uint64_t size, bool write, const char* op) const {
  if (index >= regions_.size()) {
    return absl::NotFoundError(absl::StrFormat("%s: the device has %u regions",
                                               Context(op, index, false), regions_.size()));
  }
  if (!regions_[index].ok()) {
    return WithContext(regions_[index].status(), Context(op, index, false));
  }
  const Region& region = *regions_[index];
  if (write ? !region.info.writable : !region.info.readable) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: the region is not %s", Context(op, index, false), write ? "writable" : "readable"));
  }
  if (offset > region.info.size || size > region.info.size - offset) {
    return absl::OutOfRangeError(
        absl::StrFormat("%s: [0x%x, +0x%x) is outside the region (size 0x%x)",
                        Context(op, index, false), offset, size, region.info.size));
  }
  return &region;
}

absl::Status VfioDeviceFd::ReadRegion(uint32_t index, uint64_t offset, std::span<uint8_t> data) {
  MINIVMM_ASSIGN_OR_RETURN(const Region* region,
                           AccessibleRegion(index, offset, data.size(), false, "pread"));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pread(fd_.get(), data.data() + done, data.size() - done,
                              static_cast<off_t>(region->fd_offset + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoError(absl::StrFormat("%s at 0x%x, %u bytes", Context("pread", index, false),
                                        offset + done, data.size() - done));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrFormat("%s at 0x%x: end of region",
                                                 Context("pread", index, false), offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status VfioDeviceFd::WriteRegion(uint32_t index, uint64_t offset,
                                       std::span<const uint8_t> data) {
  MINIVMM_ASSIGN_OR_RETURN(const Region* region,
                           AccessibleRegion(index, offset, data.size(), true, "pwrite"));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                               static_cast<off_t>(region->fd_offset + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoError(absl::StrFormat("%s at 0x%x, %u bytes", Context("pwrite", index, false),
                                        offset + done, data.size() - done));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrFormat("%s at 0x%x: nothing written",
                                                 Context("pwrite", index, false), offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<void*> VfioDeviceFd::MmapRegion(uint32_t index, uint64_t offset, uint64_t size) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::string context =
      absl::StrFormat("%s [0x%x, +0x%x)", Context("mmap", index, false), offset, size);
  if (size == 0 || offset % page != 0 || size % page != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: offset and size must be page-aligned and size non-zero", context));
  }
  if (index >= regions_.size()) {
    return absl::NotFoundError(
        absl::StrFormat("%s: the device has %u regions", context, regions_.size()));
  }
  if (!regions_[index].ok()) return WithContext(regions_[index].status(), context);
  const Region& region = *regions_[index];
  bool inside = false;
  for (const VfioMmapArea& area : region.info.mmap_areas) {
    // An area's end rounded up to a page: the kernel maps a sub-page BAR's whole page.
    const uint64_t area_end = (area.offset + area.size + page - 1) / page * page;
    if (offset >= area.offset && offset < area_end && size <= area_end - offset) inside = true;
  }
  if (!inside) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not inside an mmap area of the region", context));
  }
  const int prot = (region.info.readable ? PROT_READ : 0) | (region.info.writable ? PROT_WRITE : 0);
  void* mapping = ::mmap(nullptr, size, prot, MAP_SHARED, fd_.get(),
                         static_cast<off_t>(region.fd_offset + offset));
  if (mapping == MAP_FAILED) return ErrnoError(context);
  return mapping;
}

absl::Status VfioDeviceFd::SetIrqs(uint32_t index, uint32_t flags, uint32_t start,
                                   std::span<const int> fds, const char* what) {
  // struct vfio_irq_set followed by `count` __s32 eventfds (<linux/vfio.h>).
  std::vector<uint32_t> words(sizeof(IrqSetHeader) / sizeof(uint32_t) + fds.size());
  IrqSetHeader header{};
  header.argsz = static_cast<uint32_t>(words.size() * sizeof(uint32_t));
  header.flags = flags;
  header.index = index;
  header.start = start;
  header.count = static_cast<uint32_t>(fds.size());
  std::memcpy(words.data(), &header, sizeof(header));
  if (!fds.empty()) {
    std::memcpy(words.data() + sizeof(header) / sizeof(uint32_t), fds.data(), fds.size_bytes());
  }
  if (::ioctl(fd_.get(), VFIO_DEVICE_SET_IRQS, words.data()) < 0) {
    return ErrnoError(absl::StrFormat("%s %s", Context("VFIO_DEVICE_SET_IRQS", index, true), what));
  }
  return absl::OkStatus();
}

absl::Status VfioDeviceFd::SetIrqEventFds(uint32_t index, uint32_t start,
                                          std::span<const int> fds) {
  if (fds.empty()) {
    // DATA_NONE | ACTION_TRIGGER with count 0 disables the whole index (<linux/vfio.h>).
    return SetIrqs(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, {}, "disable");
  }
  if (fds.size() > UINT32_MAX - start) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %u vectors from %u overflow",
                                                      Context("VFIO_DEVICE_SET_IRQS", index, true),
                                                      fds.size(), start));
  }
  const std::string what =
      absl::StrFormat("trigger eventfds for vectors [%u, %u)", start, start + fds.size());
  return SetIrqs(index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, start, fds,
                 what.c_str());
}

absl::Status VfioDeviceFd::SetIrqUnmaskEventFd(uint32_t index, int fd) {
  const int fds[] = {fd};
  return SetIrqs(index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0, fds,
                 "unmask eventfd");
}

absl::Status VfioDeviceFd::Reset() {
  if (!supports_reset_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("VFIO_DEVICE_RESET(%s): the device offers no reset", name_));
  }
  if (::ioctl(fd_.get(), VFIO_DEVICE_RESET) < 0) {
    return ErrnoError(absl::StrFormat("VFIO_DEVICE_RESET(%s)", name_));
  }
  return absl::OkStatus();
}

}  // namespace minivmm
