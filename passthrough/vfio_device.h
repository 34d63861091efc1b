// One VFIO device as passthrough code sees it: its regions (BARs, ROM, config space), its
// interrupts and its reset. The real implementation talks to a VFIO device fd obtained through
// a type1 container/group (passthrough/vfio_container.h); a later iommufd/cdev backend (Linux
// >= 6.6) yields the same interface. Tests use a fake.
#ifndef MINIVMM_PASSTHROUGH_VFIO_DEVICE_H_
#define MINIVMM_PASSTHROUGH_VFIO_DEVICE_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace minivmm {

// A part of a region the host lets us mmap (VFIO_REGION_INFO_CAP_SPARSE_MMAP): offsets are
// relative to the region start. A region with the MMAP flag and no sparse capability is one
// area covering it whole.
struct VfioMmapArea {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct VfioRegionInfo {
  uint32_t index = 0;  // VFIO_PCI_*_REGION_INDEX
  uint64_t size = 0;   // 0: the region (BAR) does not exist
  bool readable = false;
  bool writable = false;
  std::vector<VfioMmapArea> mmap_areas;  // empty: access only through Read/Write
  // VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table may be mmapped too (we still trap it).
  bool msix_mappable = false;
};

struct VfioIrqInfo {
  uint32_t index = 0;  // VFIO_PCI_INTX/MSI/MSIX_IRQ_INDEX
  uint32_t count = 0;  // vectors supported; 0: not supported
  bool eventfd = false;
  bool maskable = false;
  bool automasked = false;  // level-triggered (INTx): masked on fire until unmasked
};

class VfioDevice {
 public:
  virtual ~VfioDevice() = default;
  // The host PCI address (0000:00:03.0) or sysfs name, for messages.
  virtual const std::string& name() const = 0;

  virtual absl::StatusOr<VfioRegionInfo> GetRegionInfo(uint32_t index) = 0;
  virtual absl::StatusOr<VfioIrqInfo> GetIrqInfo(uint32_t index) = 0;
  // pread/pwrite on the region at offset (config space, trapped BAR parts, I/O BARs, ROM).
  virtual absl::Status ReadRegion(uint32_t index, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual absl::Status WriteRegion(uint32_t index, uint64_t offset,
                                   std::span<const uint8_t> data) = 0;
  // mmap of [offset, offset + size) of the region (offset/size page-aligned, inside an mmap
  // area). The mapping belongs to the caller (munmap).
  virtual absl::StatusOr<void*> MmapRegion(uint32_t index, uint64_t offset, uint64_t size) = 0;

  // VFIO_DEVICE_SET_IRQS with ACTION_TRIGGER | DATA_EVENTFD for vectors [start, start + n):
  // fds[i] is signalled when vector start + i fires; -1 unassigns that vector. An empty fds
  // span disables every vector of the index (DATA_NONE, count 0).
  virtual absl::Status SetIrqEventFds(uint32_t index, uint32_t start, std::span<const int> fds) = 0;
  // ACTION_UNMASK | DATA_EVENTFD for INTx: writing the eventfd unmasks the line. Used with a
  // KVM resample irqfd so a level interrupt is re-armed without a trip through userspace.
  virtual absl::Status SetIrqUnmaskEventFd(uint32_t index, int fd) = 0;
  // VFIO_DEVICE_RESET (function-level or whatever reset the kernel offers for the device).
  virtual absl::Status Reset() = 0;
  virtual bool supports_reset() const = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_VFIO_DEVICE_H_
