#include "passthrough/vfio_container.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstddef>

#include "absl/strings/str_format.h"
#include "passthrough/vfio_device_fd.h"
#include "vmm/base/errno_status.h"

namespace minivmm {

// An open /dev/vfio/N attached to the container. Members are destroyed in reverse order: the
// group fd closes (detaching the group) before the container reference is dropped.
struct VfioContainer::Group {
  int number = 0;
  std::shared_ptr<const UniqueFd> container;
  UniqueFd fd;
};

namespace {

// struct vfio_iommu_type1_dma_unmap ends in a flexible data[] (the dirty bitmap, unused here);
// this is its fixed part, pinned to the C layout.
struct DmaUnmap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t iova;
  uint64_t size;
};
static_assert(sizeof(DmaUnmap) == 24);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, size) == offsetof(DmaUnmap, size));
static_assert(offsetof(vfio_iommu_type1_dma_unmap, data) == sizeof(DmaUnmap));
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32);
static_assert(sizeof(vfio_group_status) == 8);

std::string PermissionHint(const std::string& path) {
  return absl::StrFormat(
      "cannot open %s: permission denied: run as root, or give your user the device node "
      "(chown, or a udev rule for vfio) and a locked-memory limit (ulimit -l) as large as the "
      "guest's RAM",
      path);
}

std::string MemlockHint() {
  rlimit limit{};
  std::string current = "unknown";
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) == 0) {
    current = limit.rlim_cur == RLIM_INFINITY
                  ? "unlimited"
                  : absl::StrFormat("%u KiB", static_cast<uint64_t>(limit.rlim_cur) / 1024);
  }
  return absl::StrFormat(
      "most likely the locked-memory limit (RLIMIT_MEMLOCK, now %s): VFIO pins all guest RAM, so "
      "raise it to at least the guest's RAM size (ulimit -l, LimitMEMLOCK= for a systemd unit, "
      "/etc/security/limits.conf) or run as root",
      current);
}

}  // namespace

VfioContainer::VfioContainer(VfioHostPaths paths, std::shared_ptr<const UniqueFd> fd,
                             uint32_t iommu_type)
    : paths_(std::move(paths)), host_(paths_.sysfs), fd_(std::move(fd)), iommu_type_(iommu_type) {}

VfioContainer::~VfioContainer() = default;

absl::StatusOr<std::unique_ptr<VfioContainer>> VfioContainer::Open(VfioHostPaths paths) {
  const std::string path = paths.dev_vfio + "/vfio";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrFormat("no %s: modprobe vfio-pci", path));
    }
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(PermissionHint(path));
    return ErrnoError(absl::StrFormat("open %s", path), err);
  }
  const int version = ::ioctl(fd.get(), VFIO_GET_API_VERSION);
  if (version != VFIO_API_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrFormat("VFIO_GET_API_VERSION(%s) is %d, minivmm speaks version %d", path, version,
                        VFIO_API_VERSION));
  }
  // CHECK_EXTENSION answers > 0 for a supported IOMMU model even before a group is attached.
  uint32_t type = 0;
  if (::ioctl(fd.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0) {
    type = VFIO_TYPE1v2_IOMMU;
  } else if (::ioctl(fd.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) > 0) {
    type = VFIO_TYPE1_IOMMU;
  } else {
    return absl::FailedPreconditionError(absl::StrFormat(
        "VFIO_CHECK_EXTENSION(%s): no type1 IOMMU backend: modprobe vfio_iommu_type1, and enable "
        "VT-d/AMD-Vi in firmware and boot with intel_iommu=on / amd_iommu=on",
        path));
  }
  auto shared_fd = std::make_shared<const UniqueFd>(std::move(fd));
  return std::unique_ptr<VfioContainer>(
      new VfioContainer(std::move(paths), std::move(shared_fd), type));
}

absl::StatusOr<std::shared_ptr<VfioContainer::Group>> VfioContainer::GetGroup(int number) {
  if (auto it = groups_.find(number); it != groups_.end()) return it->second;
  if (number < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("IOMMU group %d does not exist", number));
  }
  const std::string path = absl::StrFormat("%s/%d", paths_.dev_vfio, number);
  auto group = std::make_shared<Group>();
  group->number = number;
  group->container = fd_;
  group->fd.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!group->fd.valid()) {
    const int err = errno;
    switch (err) {
      case ENOENT:
        return absl::NotFoundError(absl::StrFormat(
            "no %s: no device of IOMMU group %d is bound to vfio-pci (bind them: minivmm "
            "passthrough bind BDF)",
            path, number));
      case EBUSY:
        return absl::UnavailableError(absl::StrFormat(
            "IOMMU group %d is in use by another process (another VM?): %s is open elsewhere",
            number, path));
      case EACCES:
      case EPERM:
        return absl::PermissionDeniedError(PermissionHint(path));
      default:
        return ErrnoError(absl::StrFormat("open %s", path), err);
    }
  }
  vfio_group_status status{};
  status.argsz = sizeof(status);
  if (::ioctl(group->fd.get(), VFIO_GROUP_GET_STATUS, &status) < 0) {
    return ErrnoError(absl::StrFormat("VFIO_GROUP_GET_STATUS(group %d)", number));
  }
  if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "group %d is not viable: every device in it must be bound to vfio-pci (see %s/kernel/"
        "iommu_groups/%d/devices)",
        number, paths_.sysfs, number));
  }
  const int container_fd = fd_->get();
  if (::ioctl(group->fd.get(), VFIO_GROUP_SET_CONTAINER, &container_fd) < 0) {
    return ErrnoError(absl::StrFormat("VFIO_GROUP_SET_CONTAINER(group %d)", number));
  }
  // The IOMMU model can only be chosen once a group is attached (<linux/vfio.h>,
  // VFIO_SET_IOMMU: "Availability: When VFIO group attached"). If this fails, closing the
  // group fd on return detaches it again.
  if (!iommu_set_) {
    if (::ioctl(fd_->get(), VFIO_SET_IOMMU, static_cast<unsigned long>(iommu_type_)) < 0) {
      return ErrnoError(absl::StrFormat(
          "VFIO_SET_IOMMU(%s, group %d)",
          iommu_type_ == VFIO_TYPE1v2_IOMMU ? "VFIO_TYPE1v2_IOMMU" : "VFIO_TYPE1_IOMMU", number));
    }
    iommu_set_ = true;
  }
  groups_.emplace(number, group);
  return group;
}

absl::Status VfioContainer::AddGroup(int group) { return GetGroup(group).status(); }

absl::StatusOr<std::unique_ptr<VfioDevice>> VfioContainer::OpenDevice(std::string_view bdf_text) {
  MINIVMM_ASSIGN_OR_RETURN(const std::string bdf, CanonicalPciAddress(bdf_text));
  MINIVMM_RETURN_IF_ERROR(host_.CheckAssignable(bdf));
  MINIVMM_ASSIGN_OR_RETURN(const int number, host_.IommuGroupOf(bdf));
  MINIVMM_ASSIGN_OR_RETURN(std::shared_ptr<Group> group, GetGroup(number));
  UniqueFd device_fd(::ioctl(group->fd.get(), VFIO_GROUP_GET_DEVICE_FD, bdf.c_str()));
  if (!device_fd.valid()) {
    const int err = errno;
    std::string what = absl::StrFormat("VFIO_GROUP_GET_DEVICE_FD(%s, group %d)", bdf, number);
    if (err == EBUSY) what += " (already open: is it listed twice?)";
    return ErrnoError(what, err);
  }
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<VfioDeviceFd> device,
                           VfioDeviceFd::Create(bdf, std::move(device_fd), group));
  return std::unique_ptr<VfioDevice>(std::move(device));
}

absl::Status VfioContainer::MapDma(uint64_t iova, uint64_t size, void* host) {
  const std::string context =
      absl::StrFormat("VFIO_IOMMU_MAP_DMA(iova [0x%x, 0x%x), host %p)", iova, iova + size, host);
  if (!iommu_set_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: no IOMMU group added to the container yet", context));
  }
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof(map);
  map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  map.vaddr = reinterpret_cast<uintptr_t>(host);
  map.iova = iova;
  map.size = size;
  if (::ioctl(fd_->get(), VFIO_IOMMU_MAP_DMA, &map) < 0) {
    const int err = errno;
    switch (err) {
      case ENOMEM:
        return absl::ResourceExhaustedError(
            absl::StrFormat("%s: %s", ErrnoError(context, err).message(), MemlockHint()));
      case EEXIST:
        return absl::AlreadyExistsError(absl::StrFormat("%s: overlaps an existing mapping",
                                                        ErrnoError(context, err).message()));
      case ENOSPC:
        return absl::ResourceExhaustedError(absl::StrFormat(
            "%s: too many DMA mappings (vfio_iommu_type1 module parameter dma_entry_limit)",
            ErrnoError(context, err).message()));
      case EINVAL:
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: iova, size and host address must be page-aligned, size non-zero, and the range "
            "inside the IOMMU's aperture",
            ErrnoError(context, err).message()));
      default:
        return ErrnoError(context, err);
    }
  }
  return absl::OkStatus();
}

absl::Status VfioContainer::UnmapDma(uint64_t iova, uint64_t size) {
  const std::string context =
      absl::StrFormat("VFIO_IOMMU_UNMAP_DMA(iova [0x%x, 0x%x))", iova, iova + size);
  if (!iommu_set_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: no IOMMU group added to the container yet", context));
  }
  DmaUnmap unmap{};
  unmap.argsz = sizeof(unmap);
  unmap.iova = iova;
  unmap.size = size;
  if (::ioctl(fd_->get(), VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) {
    const int err = errno;
    if (err == EINVAL) {
      // type1v2 refuses to split a mapping (vfio_iommu_type1.c, vfio_dma_do_unmap).
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: the range must be page-aligned and cover whole MapDma mappings",
                          ErrnoError(context, err).message()));
    }
    return ErrnoError(context, err);
  }
  // The kernel writes back how much it unmapped.
  if (unmap.size != size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unmapped 0x%x bytes, not 0x%x: the range must cover whole MapDma mappings", context,
        unmap.size, size));
  }
  return absl::OkStatus();
}

}  // namespace minivmm
