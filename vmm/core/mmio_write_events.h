// Turns guest writes to an MMIO address into eventfd signals handled outside the vCPU thread.
// Backed by KVM_IOEVENTFD, so such a write (a virtqueue notification) costs no exit to
// userspace; tests use a fake.
#ifndef MINIVMM_VMM_CORE_MMIO_WRITE_EVENTS_H_
#define MINIVMM_VMM_CORE_MMIO_WRITE_EVENTS_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace minivmm {

class MmioWriteEvents {
 public:
  // Undoes the registration when destroyed.
  class Registration {
   public:
    virtual ~Registration() = default;
  };
  virtual ~MmioWriteEvents() = default;
  // From now on, a guest write of `length` bytes (any value) to `address` signals event_fd.
  // event_fd must stay open while the registration lives.
  virtual absl::StatusOr<std::unique_ptr<Registration>> Watch(uint64_t address, uint32_t length,
                                                              int event_fd) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_CORE_MMIO_WRITE_EVENTS_H_
