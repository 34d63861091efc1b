// The legacy VFIO type1 path: a container (/dev/vfio/vfio) holding IOMMU groups
// (/dev/vfio/N), one IOMMU address space for all of them, and the device fds they hand out.
// Documentation/driver-api/vfio.rst, "VFIO Usage Example". An iommufd backend (Linux >= 6.6)
// would sit beside this and hand out the same VfioDevice.
//
// Lifetimes: a device keeps its group open and a group keeps the container open (shared
// ownership), so whatever order the owner destroys them in, the fds close as the kernel wants
// them to: devices, then groups, then the container. The DMA mappings go away with the
// container, once its last group is closed; until then the mapped memory stays pinned.
#ifndef MINIVMM_PASSTHROUGH_VFIO_CONTAINER_H_
#define MINIVMM_PASSTHROUGH_VFIO_CONTAINER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "passthrough/host_pci.h"
#include "passthrough/vfio_device.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

// Where the host's VFIO and sysfs live.
struct VfioHostPaths {
  std::string dev_vfio = "/dev/vfio";
  std::string sysfs = "/sys";
};

// Not thread-safe: the VM builder sets it up (groups, devices, DMA maps of guest RAM) before
// the vCPUs run.
class VfioContainer {
 public:
  // Opens /dev/vfio/vfio and checks the API version and that a type1 IOMMU backend exists.
  static absl::StatusOr<std::unique_ptr<VfioContainer>> Open(VfioHostPaths paths = {});

  VfioContainer(const VfioContainer&) = delete;
  VfioContainer& operator=(const VfioContainer&) = delete;
  ~VfioContainer();

  // Opens IOMMU group `group`, checks that it is viable and attaches it; the first group also
  // selects the IOMMU model (type1v2 when available). A group already added is a no-op.
  absl::Status AddGroup(int group);

  // Checks the host setup for bdf (HostPci::CheckAssignable), adds its group if needed and
  // returns the device. bdf may be short ("00:03.0"); the device is named canonically.
  absl::StatusOr<std::unique_ptr<VfioDevice>> OpenDevice(std::string_view bdf);

  // Lets every device in the container DMA to [iova, iova + size) (read and write), backed by
  // host memory at `host`, which the kernel pins. Needs a group added first. iova, size and
  // host must be page-aligned.
  absl::Status MapDma(uint64_t iova, uint64_t size, void* host);
  // Removes a mapping made by MapDma; [iova, iova + size) must cover whole mappings.
  absl::Status UnmapDma(uint64_t iova, uint64_t size);

  // VFIO_TYPE1v2_IOMMU or VFIO_TYPE1_IOMMU once a group is added; 0 before.
  uint32_t iommu_type() const { return iommu_set_ ? iommu_type_ : 0; }

 private:
  struct Group;

  VfioContainer(VfioHostPaths paths, std::shared_ptr<const UniqueFd> fd, uint32_t iommu_type);

  absl::StatusOr<std::shared_ptr<Group>> GetGroup(int group);

  VfioHostPaths paths_;
  HostPci host_;
  // Declared before groups_, so the groups are released first.
  std::shared_ptr<const UniqueFd> fd_;
  uint32_t iommu_type_;  // the model SET_IOMMU uses
  bool iommu_set_ = false;
  std::map<int, std::shared_ptr<Group>> groups_;
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_CONTAINER_H_
