// Per-vCPU CPUID: KVM's supported set with the topology leaves filled for the vCPU count, so
// the guest's view of APIC IDs and package layout matches the MADT. And, for migration, whether
// a destination host can offer a guest the features it already uses.
#ifndef MINIVMM_VMM_VCPU_CPUID_H_
#define MINIVMM_VMM_VCPU_CPUID_H_

#include <linux/kvm.h>

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {

// Returns a copy of `supported` adjusted for vCPU `index` of `count` (one package, one thread
// per core, APIC ID == index).
CpuidList CpuidForVcpu(const CpuidList& supported, uint32_t index, uint32_t count);

// Whether a guest whose vCPU sees `guest` can run on a host whose KVM supports `host` (its
// KVM_GET_SUPPORTED_CPUID): every feature bit the guest sees in the feature leaves (1: ECX, EDX;
// 7.0: EBX, ECX, EDX; 7.1: EAX; 0xd.1: EAX; 0x80000001: ECX, EDX; 0x80000007: EDX;
// 0x80000008: EBX) must be supported by the host; a leaf the host lacks supports nothing.
// Bits that are no host feature are not compared: those KVM derives from the vCPU's state
// (OSXSAVE, OSPKE) and those CpuidForVcpu sets itself (hypervisor, TSC-deadline, HTT). Fails
// with FailedPrecondition naming each missing bit by leaf, register and bit, with its Linux name
// where it has a common one, e.g. "the destination's CPU lacks features the guest uses: avx2
// (CPUID 7.0 EBX bit 5), ...". Also fails when the guest's vendor (leaf 0 EBX, EDX, ECX)
// differs from the host's, naming both.
absl::Status CheckCpuidCompatible(std::span<const kvm_cpuid_entry2> guest, const CpuidList& host);

}  // namespace minivmm

#endif  // MINIVMM_VMM_VCPU_CPUID_H_
