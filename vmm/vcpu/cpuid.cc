#include "vmm/vcpu/cpuid.h"

#include <algorithm>
#include <bit>

namespace minivmm {
namespace {

// Leaf 0xB level types (Intel SDM Vol. 2A, CPUID EAX=0BH).
constexpr uint32_t kLevelTypeSmt = 1;
constexpr uint32_t kLevelTypeCore = 2;
constexpr uint32_t kHyperThreadingBit = 1u << 28;  // leaf 1 EDX.HTT
// Leaf 1 ECX bit 31 is reserved for hypervisors to announce themselves; KVM does not set it in
// KVM_GET_SUPPORTED_CPUID. Without it Linux never reads the KVM leaves at 0x40000000 and boots
// as on bare metal: no kvm-clock, and with no PIT it cannot calibrate the TSC.
constexpr uint32_t kHypervisorPresentBit = 1u << 31;
// Leaf 1 ECX bit 24: the LAPIC timer's TSC-deadline mode, which KVM emulates
// (KVM_CAP_TSC_DEADLINE_TIMER, required at open) but leaves out of KVM_GET_SUPPORTED_CPUID for
// the VMM to announce. Linux then arms its timer with one IA32_TSC_DEADLINE write, an exit KVM
// handles on its fast path, instead of an initial-count write, and skips calibrating the
// LAPIC timer. QEMU and Firecracker announce it too.
constexpr uint32_t kTscDeadlineTimerBit = 1u << 24;

void FillLeaf1(kvm_cpuid_entry2& e, uint32_t index, uint32_t count) {
  // EBX[31:24] initial APIC ID, EBX[23:16] max addressable logical processor IDs.
  e.ebx = (e.ebx & 0x0000ffff) | (index << 24) | (std::min<uint32_t>(count, 255) << 16);
  e.ecx |= kHypervisorPresentBit | kTscDeadlineTimerBit;
  if (count > 1) {
    e.edx |= kHyperThreadingBit;
  } else {
    e.edx &= ~kHyperThreadingBit;
  }
}

void FillLeafB(kvm_cpuid_entry2& e, uint32_t index, uint32_t count) {
  const uint32_t core_shift = count > 1 ? std::bit_width(count - 1) : 0;
  e.edx = index;  // x2APIC ID
  switch (e.index) {
    case 0:  // SMT level: one thread per core
      e.eax = 0;
      e.ebx = 1;
      e.ecx = (kLevelTypeSmt << 8) | e.index;
      break;
    case 1:  // core level: every vCPU is a core of package 0
      e.eax = core_shift;
      e.ebx = count;
      e.ecx = (kLevelTypeCore << 8) | e.index;
      break;
    default:  // invalid level terminates enumeration
      e.eax = e.ebx = 0;
      e.ecx = e.index;
      break;
  }
}

}  // namespace

CpuidList CpuidForVcpu(const CpuidList& supported, uint32_t index, uint32_t count) {
  CpuidList cpuid = supported;
  for (kvm_cpuid_entry2& e : cpuid.entries()) {
    switch (e.function) {
      case 0x1:
        FillLeaf1(e, index, count);
        break;
      case 0x4:  // deterministic cache parameters: EAX[31:26] = cores per package - 1
        if (e.eax & 0x1f) e.eax = (e.eax & 0x03ffffff) | ((count - 1) << 26);
        break;
      case 0xb:
      case 0x1f:  // V2 extended topology: Linux prefers it to 0xB when present
        FillLeafB(e, index, count);
        break;
      case 0x80000008:  // AMD: ECX[7:0] = number of cores - 1
        e.ecx = (e.ecx & ~0xffu) | ((count - 1) & 0xff);
        break;
      default:
        break;
    }
  }
  return cpuid;
}

}  // namespace minivmm
