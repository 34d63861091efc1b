// The seam between a passed-through function and the hypervisor's memory map: its own header so
// that the KVM side (vmm/kvm/kvm_bar_mapper.h) needs none of VfioPciFunction's MSI-X, config
// virtualization or interrupt plumbing.
#ifndef MINIVMM_PASSTHROUGH_BAR_MEMORY_MAPPER_H_
#define MINIVMM_PASSTHROUGH_BAR_MEMORY_MAPPER_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace minivmm {

// Maps host memory (an mmap of a device BAR) into guest-physical space so that guest accesses
// do not exit. The VMM implements it with KVM memory slots; tests use a fake.
class BarMemoryMapper {
 public:
  // One mapped range; destroying it removes the mapping from the guest.
  class Mapping {
   public:
    virtual ~Mapping() = default;
  };

  virtual ~BarMemoryMapper() = default;
  // guest_address, size and host are page-aligned. Fails if the range cannot be mapped (e.g.
  // it overlaps guest RAM or no slot is free); the caller then traps the range instead.
  virtual absl::StatusOr<std::unique_ptr<Mapping>> Map(uint64_t guest_address, uint64_t size,
                                                       void* host) = 0;
};

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_BAR_MEMORY_MAPPER_H_
