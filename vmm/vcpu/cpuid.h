// Per-vCPU CPUID: KVM's supported set with the topology leaves filled for the vCPU count, so
// the guest's view of APIC IDs and package layout matches the MADT.
#ifndef MINIVMM_VMM_VCPU_CPUID_H_
#define MINIVMM_VMM_VCPU_CPUID_H_

#include <cstdint>

#include "vmm/kvm/kvm.h"

namespace minivmm {

// Returns a copy of `supported` adjusted for vCPU `index` of `count` (one package, one thread
// per core, APIC ID == index).
CpuidList CpuidForVcpu(const CpuidList& supported, uint32_t index, uint32_t count);

}  // namespace minivmm

#endif  // MINIVMM_VMM_VCPU_CPUID_H_
