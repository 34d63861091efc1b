// VfioDevice on a VFIO device fd (VFIO_GROUP_GET_DEVICE_FD today, a /dev/vfio/devices cdev
// bound to iommufd later): region and IRQ queries, region I/O and mmap, eventfd wiring, reset.
// Documentation/driver-api/vfio.rst; the ioctls are in <linux/vfio.h>.
#ifndef MINIVMM_PASSTHROUGH_VFIO_DEVICE_FD_H_
#define MINIVMM_PASSTHROUGH_VFIO_DEVICE_FD_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "passthrough/vfio_device.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

// What the capability chain of a VFIO_DEVICE_GET_REGION_INFO answer says.
struct VfioRegionCaps {
  // VFIO_REGION_INFO_CAP_SPARSE_MMAP was present: only sparse_mmap_areas may be mmapped (it
  // may list none). Zero-sized areas are dropped.
  bool has_sparse_mmap = false;
  std::vector<VfioMmapArea> sparse_mmap_areas;
  bool msix_mappable = false;  // VFIO_REGION_INFO_CAP_MSIX_MAPPABLE
};

// Walks the capability chain of info_buffer, the whole buffer a VFIO_DEVICE_GET_REGION_INFO
// filled (struct vfio_region_info, then the chain; offsets count from the buffer start). No
// chain (no FLAG_CAPS, or cap_offset 0 because the buffer was too small) yields empty caps.
// Every offset and length is checked against the buffer: a capability must lie after the
// fixed struct, each `next` must point past the current header (so the walk ends), and sparse
// areas must fit their capability and the region. Unknown capability ids are skipped.
absl::StatusOr<VfioRegionCaps> ParseRegionInfoCaps(std::span<const uint8_t> info_buffer);

// The whole answer as VfioRegionInfo: flags, size and index from the fixed struct, plus the
// caps. A region with FLAG_MMAP has mmap_areas = the sparse areas if the chain lists them,
// else one area covering the region; without FLAG_MMAP it has none.
absl::StatusOr<VfioRegionInfo> ParseRegionInfo(std::span<const uint8_t> info_buffer);

// "BAR2", "ROM", "config", "VGA", "region 9" (vfio-pci's fixed indexes, <linux/vfio.h>).
std::string VfioPciRegionName(uint32_t index);
// "INTx", "MSI", "MSI-X", "ERR", "REQ", "IRQ index 7".
std::string VfioPciIrqName(uint32_t index);

class VfioDeviceFd final : public VfioDevice {
 public:
  // Takes over a vfio-pci device fd. Queries the device (VFIO_DEVICE_GET_INFO) and every region
  // once; the answers are cached, so Read/Write/Mmap never issue an ioctl. `keepalive` is held
  // until the device is destroyed (the VFIO group the fd came from: a group must outlive its
  // devices).
  static absl::StatusOr<std::unique_ptr<VfioDeviceFd>> Create(
      std::string name, UniqueFd fd, std::shared_ptr<const void> keepalive = nullptr);

  VfioDeviceFd(const VfioDeviceFd&) = delete;
  VfioDeviceFd& operator=(const VfioDeviceFd&) = delete;
  ~VfioDeviceFd() override;

  const std::string& name() const override { return name_; }

  // Thread-safe (the cache is immutable after Create; pread/pwrite/ioctl need no lock).
  absl::StatusOr<VfioRegionInfo> GetRegionInfo(uint32_t index) override;
  absl::StatusOr<VfioIrqInfo> GetIrqInfo(uint32_t index) override;
  absl::Status ReadRegion(uint32_t index, uint64_t offset, std::span<uint8_t> data) override;
  absl::Status WriteRegion(uint32_t index, uint64_t offset, std::span<const uint8_t> data) override;
  // Also accepts a range that ends in the page holding an area's end when that end is not
  // page-aligned (a BAR smaller than a page: vfio-pci maps the whole page, reserved for it).
  absl::StatusOr<void*> MmapRegion(uint32_t index, uint64_t offset, uint64_t size) override;
  absl::Status SetIrqEventFds(uint32_t index, uint32_t start, std::span<const int> fds) override;
  absl::Status SetIrqUnmaskEventFd(uint32_t index, int fd) override;
  absl::Status Reset() override;
  bool supports_reset() const override { return supports_reset_; }

  uint32_t num_regions() const { return static_cast<uint32_t>(regions_.size()); }
  uint32_t num_irqs() const { return num_irqs_; }

 private:
  struct Region {
    VfioRegionInfo info;
    uint64_t fd_offset = 0;  // where the region starts in the device fd's offset space
  };

  VfioDeviceFd(std::string name, UniqueFd fd, std::shared_ptr<const void> keepalive)
      : keepalive_(std::move(keepalive)), fd_(std::move(fd)), name_(std::move(name)) {}

  absl::StatusOr<Region> QueryRegion(uint32_t index) const;
  // The cached region, checked for access and for [offset, offset + size) inside it.
  absl::StatusOr<const Region*> AccessibleRegion(uint32_t index, uint64_t offset, uint64_t size,
                                                 bool write, const char* op) const;
  absl::Status SetIrqs(uint32_t index, uint32_t flags, uint32_t start, std::span<const int> fds,
                       const char* what);
  std::string Context(const char* op, uint32_t index, bool irq) const;

  // Declared first, destroyed last: the device fd is closed before the group is released.
  std::shared_ptr<const void> keepalive_;
  UniqueFd fd_;
  std::string name_;
  bool supports_reset_ = false;
  uint32_t num_irqs_ = 0;
  std::vector<absl::StatusOr<Region>> regions_;  // by index; an error is returned as is
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_DEVICE_FD_H_
