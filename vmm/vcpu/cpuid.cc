#include "vmm/vcpu/cpuid.h"

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

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

// Leaf 1 ECX bit 27 and leaf 7.0 ECX bit 4 echo the guest's CR4.OSXSAVE and CR4.PKE: KVM sets
// them in the vCPU's CPUID at run time and never reports them as supported (Intel SDM Vol. 2A,
// CPUID EAX=01H and EAX=07H).
constexpr uint32_t kOsxsaveBit = 1u << 27;
constexpr uint32_t kOspkeBit = 1u << 4;

enum class Reg { kEax, kEbx, kEcx, kEdx };

// One register of a feature leaf, with the bits in it that are no host CPU feature.
struct FeatureRegister {
  uint32_t function;
  uint32_t index;
  Reg reg;
  uint32_t not_host_features;
};

constexpr FeatureRegister kFeatureRegisters[] = {
    {0x1, 0, Reg::kEcx, kOsxsaveBit | kHypervisorPresentBit | kTscDeadlineTimerBit},
    {0x1, 0, Reg::kEdx, kHyperThreadingBit},
    {0x7, 0, Reg::kEbx, 0},
    {0x7, 0, Reg::kEcx, kOspkeBit},
    {0x7, 0, Reg::kEdx, 0},
    {0x7, 1, Reg::kEax, 0},
    {0xd, 1, Reg::kEax, 0},
    {0x80000001, 0, Reg::kEcx, 0},
    {0x80000001, 0, Reg::kEdx, 0},
    {0x80000007, 0, Reg::kEdx, 0},
    {0x80000008, 0, Reg::kEbx, 0},
};

struct FeatureName {
  uint32_t function;
  uint32_t index;
  Reg reg;
  int bit;
  const char* name;
};

// The common ones, as Linux names them in /proc/cpuinfo (arch/x86/include/asm/cpufeatures.h),
// except sse3 (Linux: pni) and invtsc (Linux: constant_tsc, nonstop_tsc).
constexpr FeatureName kFeatureNames[] = {
    {0x1, 0, Reg::kEcx, 0, "sse3"},
    {0x1, 0, Reg::kEcx, 1, "pclmulqdq"},
    {0x1, 0, Reg::kEcx, 9, "ssse3"},
    {0x1, 0, Reg::kEcx, 12, "fma"},
    {0x1, 0, Reg::kEcx, 13, "cx16"},
    {0x1, 0, Reg::kEcx, 17, "pcid"},
    {0x1, 0, Reg::kEcx, 19, "sse4_1"},
    {0x1, 0, Reg::kEcx, 20, "sse4_2"},
    {0x1, 0, Reg::kEcx, 21, "x2apic"},
    {0x1, 0, Reg::kEcx, 22, "movbe"},
    {0x1, 0, Reg::kEcx, 23, "popcnt"},
    {0x1, 0, Reg::kEcx, 25, "aes"},
    {0x1, 0, Reg::kEcx, 26, "xsave"},
    {0x1, 0, Reg::kEcx, 28, "avx"},
    {0x1, 0, Reg::kEcx, 29, "f16c"},
    {0x1, 0, Reg::kEcx, 30, "rdrand"},
    {0x1, 0, Reg::kEdx, 0, "fpu"},
    {0x1, 0, Reg::kEdx, 4, "tsc"},
    {0x1, 0, Reg::kEdx, 5, "msr"},
    {0x1, 0, Reg::kEdx, 6, "pae"},
    {0x1, 0, Reg::kEdx, 8, "cx8"},
    {0x1, 0, Reg::kEdx, 9, "apic"},
    {0x1, 0, Reg::kEdx, 11, "sep"},
    {0x1, 0, Reg::kEdx, 12, "mtrr"},
    {0x1, 0, Reg::kEdx, 13, "pge"},
    {0x1, 0, Reg::kEdx, 15, "cmov"},
    {0x1, 0, Reg::kEdx, 16, "pat"},
    {0x1, 0, Reg::kEdx, 19, "clflush"},
    {0x1, 0, Reg::kEdx, 23, "mmx"},
    {0x1, 0, Reg::kEdx, 24, "fxsr"},
    {0x1, 0, Reg::kEdx, 25, "sse"},
    {0x1, 0, Reg::kEdx, 26, "sse2"},
    {0x7, 0, Reg::kEbx, 0, "fsgsbase"},
    {0x7, 0, Reg::kEbx, 3, "bmi1"},
    {0x7, 0, Reg::kEbx, 4, "hle"},
    {0x7, 0, Reg::kEbx, 5, "avx2"},
    {0x7, 0, Reg::kEbx, 7, "smep"},
    {0x7, 0, Reg::kEbx, 8, "bmi2"},
    {0x7, 0, Reg::kEbx, 9, "erms"},
    {0x7, 0, Reg::kEbx, 10, "invpcid"},
    {0x7, 0, Reg::kEbx, 11, "rtm"},
    {0x7, 0, Reg::kEbx, 14, "mpx"},
    {0x7, 0, Reg::kEbx, 16, "avx512f"},
    {0x7, 0, Reg::kEbx, 17, "avx512dq"},
    {0x7, 0, Reg::kEbx, 18, "rdseed"},
    {0x7, 0, Reg::kEbx, 19, "adx"},
    {0x7, 0, Reg::kEbx, 20, "smap"},
    {0x7, 0, Reg::kEbx, 21, "avx512ifma"},
    {0x7, 0, Reg::kEbx, 23, "clflushopt"},
    {0x7, 0, Reg::kEbx, 24, "clwb"},
    {0x7, 0, Reg::kEbx, 28, "avx512cd"},
    {0x7, 0, Reg::kEbx, 29, "sha_ni"},
    {0x7, 0, Reg::kEbx, 30, "avx512bw"},
    {0x7, 0, Reg::kEbx, 31, "avx512vl"},
    {0x7, 0, Reg::kEcx, 1, "avx512vbmi"},
    {0x7, 0, Reg::kEcx, 2, "umip"},
    {0x7, 0, Reg::kEcx, 3, "pku"},
    {0x7, 0, Reg::kEcx, 5, "waitpkg"},
    {0x7, 0, Reg::kEcx, 6, "avx512_vbmi2"},
    {0x7, 0, Reg::kEcx, 8, "gfni"},
    {0x7, 0, Reg::kEcx, 9, "vaes"},
    {0x7, 0, Reg::kEcx, 10, "vpclmulqdq"},
    {0x7, 0, Reg::kEcx, 11, "avx512_vnni"},
    {0x7, 0, Reg::kEcx, 12, "avx512_bitalg"},
    {0x7, 0, Reg::kEcx, 14, "avx512_vpopcntdq"},
    {0x7, 0, Reg::kEcx, 16, "la57"},
    {0x7, 0, Reg::kEcx, 22, "rdpid"},
    {0x7, 0, Reg::kEcx, 27, "movdiri"},
    {0x7, 0, Reg::kEcx, 28, "movdir64b"},
    {0x7, 0, Reg::kEdx, 4, "fsrm"},
    {0x7, 0, Reg::kEdx, 8, "avx512_vp2intersect"},
    {0x7, 0, Reg::kEdx, 10, "md_clear"},
    {0x7, 0, Reg::kEdx, 14, "serialize"},
    {0x7, 0, Reg::kEdx, 16, "tsxldtrk"},
    {0x7, 0, Reg::kEdx, 22, "amx_bf16"},
    {0x7, 0, Reg::kEdx, 23, "avx512_fp16"},
    {0x7, 0, Reg::kEdx, 24, "amx_tile"},
    {0x7, 0, Reg::kEdx, 25, "amx_int8"},
    {0x7, 0, Reg::kEdx, 26, "spec_ctrl"},
    {0x7, 0, Reg::kEdx, 27, "stibp"},
    {0x7, 0, Reg::kEdx, 28, "flush_l1d"},
    {0x7, 0, Reg::kEdx, 29, "arch_capabilities"},
    {0x7, 0, Reg::kEdx, 31, "ssbd"},
    {0x7, 1, Reg::kEax, 4, "avx_vnni"},
    {0x7, 1, Reg::kEax, 5, "avx512_bf16"},
    {0xd, 1, Reg::kEax, 0, "xsaveopt"},
    {0xd, 1, Reg::kEax, 1, "xsavec"},
    {0xd, 1, Reg::kEax, 2, "xgetbv1"},
    {0xd, 1, Reg::kEax, 3, "xsaves"},
    {0xd, 1, Reg::kEax, 4, "xfd"},
    {0x80000001, 0, Reg::kEcx, 0, "lahf_lm"},
    {0x80000001, 0, Reg::kEcx, 2, "svm"},
    {0x80000001, 0, Reg::kEcx, 5, "abm"},
    {0x80000001, 0, Reg::kEcx, 6, "sse4a"},
    {0x80000001, 0, Reg::kEcx, 7, "misalignsse"},
    {0x80000001, 0, Reg::kEcx, 8, "3dnowprefetch"},
    {0x80000001, 0, Reg::kEcx, 11, "xop"},
    {0x80000001, 0, Reg::kEcx, 16, "fma4"},
    {0x80000001, 0, Reg::kEcx, 21, "tbm"},
    {0x80000001, 0, Reg::kEcx, 22, "topoext"},
    {0x80000001, 0, Reg::kEdx, 11, "syscall"},
    {0x80000001, 0, Reg::kEdx, 20, "nx"},
    {0x80000001, 0, Reg::kEdx, 22, "mmxext"},
    {0x80000001, 0, Reg::kEdx, 25, "fxsr_opt"},
    {0x80000001, 0, Reg::kEdx, 26, "pdpe1gb"},
    {0x80000001, 0, Reg::kEdx, 27, "rdtscp"},
    {0x80000001, 0, Reg::kEdx, 29, "lm"},
    {0x80000007, 0, Reg::kEdx, 8, "invtsc"},
    {0x80000008, 0, Reg::kEbx, 0, "clzero"},
    {0x80000008, 0, Reg::kEbx, 9, "wbnoinvd"},
    {0x80000008, 0, Reg::kEbx, 12, "ibpb"},
    {0x80000008, 0, Reg::kEbx, 14, "ibrs"},
    {0x80000008, 0, Reg::kEbx, 15, "amd_stibp"},
    {0x80000008, 0, Reg::kEbx, 24, "amd_ssbd"},
    {0x80000008, 0, Reg::kEbx, 25, "virt_ssbd"},
};

// Leaves are looked up by function and index as KVM reports them: index 0 for leaves whose
// subleaf does not matter.
const kvm_cpuid_entry2* FindLeaf(std::span<const kvm_cpuid_entry2> entries, uint32_t function,
                                 uint32_t index) {
  for (const kvm_cpuid_entry2& e : entries) {
    if (e.function == function && e.index == index) return &e;
  }
  return nullptr;
}

uint32_t RegisterOf(const kvm_cpuid_entry2* e, Reg reg) {
  if (e == nullptr) return 0;  // a missing leaf has no features
  switch (reg) {
    case Reg::kEax:
      return e->eax;
    case Reg::kEbx:
      return e->ebx;
    case Reg::kEcx:
      return e->ecx;
    case Reg::kEdx:
      return e->edx;
  }
  return 0;
}

const char* RegisterName(Reg reg) {
  switch (reg) {
    case Reg::kEax:
      return "EAX";
    case Reg::kEbx:
      return "EBX";
    case Reg::kEcx:
      return "ECX";
    case Reg::kEdx:
      return "EDX";
  }
  return "?";
}

// "avx2 (CPUID 7.0 EBX bit 5)", or "CPUID 0x80000008.0 EBX bit 3" for a bit without a name.
std::string DescribeBit(const FeatureRegister& r, int bit) {
  const std::string leaf =
      r.function < 10 ? absl::StrCat(r.function) : absl::StrFormat("%#x", r.function);
  const std::string where =
      absl::StrFormat("CPUID %s.%d %s bit %d", leaf, r.index, RegisterName(r.reg), bit);
  for (const FeatureName& n : kFeatureNames) {
    if (n.function == r.function && n.index == r.index && n.reg == r.reg && n.bit == bit) {
      return absl::StrCat(n.name, " (", where, ")");
    }
  }
  return where;
}

// Leaf 0's vendor string: EBX, EDX, ECX (Intel SDM Vol. 2A, CPUID EAX=00H), "" without leaf 0.
std::string Vendor(std::span<const kvm_cpuid_entry2> entries) {
  const kvm_cpuid_entry2* e = FindLeaf(entries, 0, 0);
  if (e == nullptr) return "";
  std::string vendor(12, '\0');
  for (int i = 0; i < 4; ++i) {
    vendor[i] = static_cast<char>(e->ebx >> (8 * i));
    vendor[4 + i] = static_cast<char>(e->edx >> (8 * i));
    vendor[8 + i] = static_cast<char>(e->ecx >> (8 * i));
  }
  return vendor;
}

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

absl::Status CheckCpuidCompatible(std::span<const kvm_cpuid_entry2> guest, const CpuidList& host) {
  const std::string guest_vendor = Vendor(guest);
  const std::string host_vendor = Vendor(host.entries());
  if (guest_vendor != host_vendor) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the guest runs on a %s CPU and the destination's is %s: CPUs of different vendors "
        "cannot take over each other's guests",
        guest_vendor.empty() ? "(no CPUID leaf 0)" : guest_vendor,
        host_vendor.empty() ? "(no CPUID leaf 0)" : host_vendor));
  }
  std::vector<std::string> missing;
  for (const FeatureRegister& r : kFeatureRegisters) {
    const uint32_t used = RegisterOf(FindLeaf(guest, r.function, r.index), r.reg);
    const uint32_t supported = RegisterOf(FindLeaf(host.entries(), r.function, r.index), r.reg);
    const uint32_t lacking = used & ~supported & ~r.not_host_features;
    for (int bit = 0; bit < 32; ++bit) {
      if (lacking & (1u << bit)) missing.push_back(DescribeBit(r, bit));
    }
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the destination's CPU lacks features the guest uses: ", absl::StrJoin(missing, ", ")));
}

}  // namespace minivmm
