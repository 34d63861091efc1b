#include "vmm/vcpu/cpuid.h"

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint32_t kHtt = 1u << 28;          // leaf 1 EDX.HTT
constexpr uint32_t kHypervisor = 1u << 31;   // leaf 1 ECX: reserved for hypervisor use
constexpr uint32_t kTscDeadline = 1u << 24;  // leaf 1 ECX: LAPIC timer TSC-deadline mode

kvm_cpuid_entry2 Leaf(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                      uint32_t edx, bool indexed = false) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

// What KVM_GET_SUPPORTED_CPUID might report on a host, with host topology values the VMM must
// replace: host APIC ID 7 and 16 logical processors in leaf 1, 8 cores in leaf 4, host x2APIC
// IDs in leaf 0xB, 16 cores in 0x80000008.
CpuidList Supported() {
  return CpuidList({
      Leaf(0x0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69),
      // Leaf 1: EBX[15:8] CLFLUSH line size 8 and EBX[7:0] brand index 1 must survive.
      Leaf(0x1, 0, 0x000906ea, 0x07100801, 0xfffa3203, 0x1f8bfbff | kHtt),
      // Leaf 4: data L1, instruction L1, unified L2, unified L3, then the null terminator.
      Leaf(0x4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0, true),
      Leaf(0x4, 1, 0x1c004122, 0x01c0003f, 0x3f, 0, true),
      Leaf(0x4, 2, 0x1c004143, 0x00c0003f, 0x3ff, 0, true),
      Leaf(0x4, 3, 0x1c03c163, 0x02c0003f, 0x3fff, 6, true),
      Leaf(0x4, 4, 0, 0, 0, 0, true),
      Leaf(0x7, 0, 0, 0x029c67af, 0x40000000, 0xbc000400, true),
      Leaf(0xb, 0, 1, 2, 0x100, 0x0e, true),
      Leaf(0xb, 1, 4, 16, 0x201, 0x0e, true),
      Leaf(0xb, 2, 0, 0, 2, 0x0e, true),
      Leaf(0x80000008, 0, 0x3030, 0x00000200, 0x0000700f, 0),
  });
}

// Returns a copy, so that Get(CpuidForVcpu(...), ...) does not dangle.
kvm_cpuid_entry2 Get(const CpuidList& list, uint32_t function, uint32_t index = 0) {
  for (const kvm_cpuid_entry2& e : list.entries()) {
    if (e.function == function && e.index == index) return e;
  }
  ADD_FAILURE() << "no leaf " << std::hex << function << "." << index;
  return kvm_cpuid_entry2{};
}

TEST(CpuidTest, Leaf1CarriesTheVcpuIndexAsInitialApicId) {
  const CpuidList cpuid = CpuidForVcpu(Supported(), 3, 4);
  EXPECT_EQ(Get(cpuid, 1).ebx >> 24, 3u);
}

TEST(CpuidTest, Leaf1CarriesTheVcpuCountAsLogicalProcessorCount) {
  const CpuidList cpuid = CpuidForVcpu(Supported(), 3, 4);
  EXPECT_EQ((Get(cpuid, 1).ebx >> 16) & 0xff, 4u);
}

TEST(CpuidTest, Leaf1KeepsTheLowEbxFieldsAndOtherRegisters) {
  const CpuidList supported = Supported();
  const CpuidList cpuid = CpuidForVcpu(supported, 1, 2);
  const kvm_cpuid_entry2 before = Get(supported, 1);
  const kvm_cpuid_entry2 after = Get(cpuid, 1);
  EXPECT_EQ(after.ebx & 0xffff, before.ebx & 0xffff) << "CLFLUSH size and brand index";
  EXPECT_EQ(after.eax, before.eax);
  EXPECT_EQ(after.ecx & ~(kHypervisor | kTscDeadline), before.ecx & ~(kHypervisor | kTscDeadline));
  EXPECT_EQ(after.edx & ~kHtt, before.edx & ~kHtt);
}

TEST(CpuidTest, Leaf1AnnouncesAHypervisor) {
  CpuidList supported = Supported();
  supported.entries()[1].ecx &= ~kHypervisor;  // KVM_GET_SUPPORTED_CPUID leaves it clear
  EXPECT_TRUE(Get(CpuidForVcpu(supported, 0, 1), 1).ecx & kHypervisor)
      << "without it Linux never looks for the KVM leaves (kvm-clock)";
}

TEST(CpuidTest, Leaf1AnnouncesTheTscDeadlineTimer) {
  CpuidList supported = Supported();
  supported.entries()[1].ecx &= ~kTscDeadline;  // KVM_GET_SUPPORTED_CPUID leaves it clear
  EXPECT_TRUE(Get(CpuidForVcpu(supported, 0, 1), 1).ecx & kTscDeadline)
      << "KVM emulates it; without the bit Linux programs the LAPIC timer's initial count";
}

TEST(CpuidTest, Leaf1SetsHttForMoreThanOneVcpu) {
  CpuidList supported = Supported();
  supported.entries()[1].edx &= ~kHtt;
  EXPECT_TRUE(Get(CpuidForVcpu(supported, 0, 2), 1).edx & kHtt);
}

TEST(CpuidTest, Leaf1ClearsHttForASingleVcpu) {
  EXPECT_FALSE(Get(CpuidForVcpu(Supported(), 0, 1), 1).edx & kHtt);
}

TEST(CpuidTest, Leaf1ClampsTheLogicalProcessorCountToEightBits) {
  EXPECT_EQ((Get(CpuidForVcpu(Supported(), 0, 300), 1).ebx >> 16) & 0xff, 255u);
}

TEST(CpuidTest, Leaf4ReportsTheVcpuCountAsCoresPerPackage) {
  const CpuidList supported = Supported();
  const CpuidList cpuid = CpuidForVcpu(supported, 0, 4);
  for (uint32_t level = 0; level < 4; ++level) {
    const kvm_cpuid_entry2 e = Get(cpuid, 4, level);
    EXPECT_EQ(e.eax >> 26, 3u) << "EAX[31:26] = cores - 1, cache level " << level;
    EXPECT_EQ(e.eax & 0x03ffffff, Get(supported, 4, level).eax & 0x03ffffff) << level;
    EXPECT_EQ(e.ebx, Get(supported, 4, level).ebx) << level;
  }
}

TEST(CpuidTest, Leaf4LeavesTheNullSubleafAlone) {
  EXPECT_EQ(Get(CpuidForVcpu(Supported(), 0, 4), 4, 4).eax, 0u)
      << "a cache type of 0 ends the enumeration and must stay 0";
}

TEST(CpuidTest, Leaf4ReportsOneCoreForASingleVcpu) {
  EXPECT_EQ(Get(CpuidForVcpu(Supported(), 0, 1), 4, 0).eax >> 26, 0u);
}

TEST(CpuidTest, LeafBSmtLevelHasOneThreadPerCore) {
  const kvm_cpuid_entry2 e = Get(CpuidForVcpu(Supported(), 2, 4), 0xb, 0);
  EXPECT_EQ(e.eax & 0x1f, 0u) << "no SMT bits in the APIC ID";
  EXPECT_EQ(e.ebx & 0xffff, 1u);
  EXPECT_EQ((e.ecx >> 8) & 0xff, 1u) << "level type SMT";
  EXPECT_EQ(e.ecx & 0xff, 0u) << "level number";
}

TEST(CpuidTest, LeafBCoreLevelCountsEveryVcpu) {
  const kvm_cpuid_entry2 e = Get(CpuidForVcpu(Supported(), 2, 4), 0xb, 1);
  EXPECT_EQ(e.eax & 0x1f, 2u) << "4 vCPUs need 2 APIC ID bits";
  EXPECT_EQ(e.ebx & 0xffff, 4u);
  EXPECT_EQ((e.ecx >> 8) & 0xff, 2u) << "level type core";
  EXPECT_EQ(e.ecx & 0xff, 1u) << "level number";
}

TEST(CpuidTest, LeafBCoreShiftCoversANonPowerOfTwoCount) {
  EXPECT_EQ(Get(CpuidForVcpu(Supported(), 0, 5), 0xb, 1).eax & 0x1f, 3u);
  EXPECT_EQ(Get(CpuidForVcpu(Supported(), 0, 2), 0xb, 1).eax & 0x1f, 1u);
  EXPECT_EQ(Get(CpuidForVcpu(Supported(), 0, 1), 0xb, 1).eax & 0x1f, 0u);
}

TEST(CpuidTest, LeafBEndsEnumerationAtLevelTwo) {
  const kvm_cpuid_entry2 e = Get(CpuidForVcpu(Supported(), 2, 4), 0xb, 2);
  EXPECT_EQ(e.eax, 0u);
  EXPECT_EQ(e.ebx, 0u);
  EXPECT_EQ((e.ecx >> 8) & 0xff, 0u) << "level type invalid";
  EXPECT_EQ(e.ecx & 0xff, 2u) << "level number echoes ECX";
}

TEST(CpuidTest, LeafBReportsTheVcpuIndexAsX2ApicIdOnEveryLevel) {
  const CpuidList cpuid = CpuidForVcpu(Supported(), 2, 4);
  for (uint32_t level = 0; level < 3; ++level) {
    EXPECT_EQ(Get(cpuid, 0xb, level).edx, 2u) << "level " << level;
  }
}

TEST(CpuidTest, AmdLeaf80000008ReportsCoreCountMinusOne) {
  const CpuidList supported = Supported();
  const kvm_cpuid_entry2 e = Get(CpuidForVcpu(supported, 0, 4), 0x80000008);
  EXPECT_EQ(e.ecx & 0xff, 3u);
  EXPECT_EQ(e.ecx & ~0xffu, Get(supported, 0x80000008).ecx & ~0xffu)
      << "ApicIdSize and the other ECX fields must survive";
  EXPECT_EQ(e.eax, Get(supported, 0x80000008).eax);
}

TEST(CpuidTest, LeavesUnrelatedLeavesUnchanged) {
  const CpuidList supported = Supported();
  const CpuidList cpuid = CpuidForVcpu(supported, 3, 4);
  for (uint32_t function : {0x0u, 0x7u}) {
    const kvm_cpuid_entry2 before = Get(supported, function);
    const kvm_cpuid_entry2 after = Get(cpuid, function);
    EXPECT_EQ(after.eax, before.eax) << function;
    EXPECT_EQ(after.ebx, before.ebx) << function;
    EXPECT_EQ(after.ecx, before.ecx) << function;
    EXPECT_EQ(after.edx, before.edx) << function;
  }
}

TEST(CpuidTest, EachVcpuGetsItsOwnApicId) {
  const CpuidList supported = Supported();
  for (uint32_t index = 0; index < 4; ++index) {
    const CpuidList cpuid = CpuidForVcpu(supported, index, 4);
    EXPECT_EQ(Get(cpuid, 1).ebx >> 24, index);
    EXPECT_EQ(Get(cpuid, 0xb, 0).edx, index);
  }
}

// --- CheckCpuidCompatible: the migration destination must offer what the guest already uses.

constexpr uint32_t kAvx2 = 1u << 5;      // leaf 7.0 EBX
constexpr uint32_t kAvx512f = 1u << 16;  // leaf 7.0 EBX
constexpr uint32_t kOsxsave = 1u << 27;  // leaf 1 ECX: echoes CR4.OSXSAVE
constexpr uint32_t kOspke = 1u << 4;     // leaf 7.0 ECX: echoes CR4.PKE
constexpr uint32_t kSse4_2 = 1u << 20;   // leaf 1 ECX
constexpr uint32_t kAvxVnni = 1u << 4;   // leaf 7.1 EAX
constexpr uint32_t kXsaveopt = 1u << 0;  // leaf 0xd.1 EAX
constexpr uint32_t kInvtsc = 1u << 8;    // leaf 0x80000007 EDX

kvm_cpuid_entry2& Mutable(CpuidList& list, uint32_t function, uint32_t index = 0) {
  for (kvm_cpuid_entry2& e : list.entries()) {
    if (e.function == function && e.index == index) return e;
  }
  ADD_FAILURE() << "no leaf " << std::hex << function << "." << index;
  static kvm_cpuid_entry2 none;
  return none;
}

// "AuthenticAMD" in leaf 0's EBX, EDX, ECX.
void MakeAmd(CpuidList& list) {
  kvm_cpuid_entry2& leaf0 = Mutable(list, 0);
  leaf0.ebx = 0x68747541;  // "Auth"
  leaf0.edx = 0x69746e65;  // "enti"
  leaf0.ecx = 0x444d4163;  // "cAMD"
}

// Supported() with the leaves the check reads that it lacks: 7.1, 0xd.1, 0x80000001, 0x80000007.
CpuidList SupportedWithFeatureLeaves() {
  CpuidList list = Supported();
  list.entries().push_back(Leaf(0x7, 1, kAvxVnni, 0, 0, 0, true));
  list.entries().push_back(Leaf(0xd, 1, kXsaveopt | 0xe, 0, 0, 0, true));
  list.entries().push_back(Leaf(0x80000001, 0, 0, 0, 0x121, 0x2c100800));
  list.entries().push_back(Leaf(0x80000007, 0, 0, 0, 0, kInvtsc));
  return list;
}

TEST(CpuidCompatibleTest, IdenticalListsAreCompatible) {
  const CpuidList host = SupportedWithFeatureLeaves();
  const absl::Status status = CheckCpuidCompatible(host.entries(), host);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(CpuidCompatibleTest, TheVcpusOwnCpuidIsCompatibleWithTheListItCameFrom) {
  // What the source's vCPU sees carries the bits CpuidForVcpu sets (hypervisor, TSC-deadline,
  // HTT), which KVM_GET_SUPPORTED_CPUID never reports.
  CpuidList host = SupportedWithFeatureLeaves();
  Mutable(host, 1).ecx &= ~(kHypervisor | kTscDeadline);
  Mutable(host, 1).edx &= ~kHtt;
  const CpuidList guest = CpuidForVcpu(host, 1, 4);
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(CpuidCompatibleTest, AFeatureTheHostLacksIsNamed) {
  CpuidList guest = SupportedWithFeatureLeaves();
  Mutable(guest, 7).ebx |= kAvx2;
  CpuidList host = SupportedWithFeatureLeaves();
  Mutable(host, 7).ebx &= ~kAvx2;
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("the destination's CPU lacks features the guest uses: "
                        "avx2 (CPUID 7.0 EBX bit 5)"));
}

TEST(CpuidCompatibleTest, EveryMissingFeatureIsNamedIncludingUnnamedBits) {
  CpuidList guest = SupportedWithFeatureLeaves();
  Mutable(guest, 1).ecx |= kSse4_2;
  Mutable(guest, 7).ebx |= kAvx512f;
  Mutable(guest, 0x80000008).ebx |= 1u << 3;
  CpuidList host = SupportedWithFeatureLeaves();
  Mutable(host, 1).ecx &= ~kSse4_2;
  Mutable(host, 7).ebx &= ~kAvx512f;
  Mutable(host, 0x80000008).ebx &= ~(1u << 3);
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_EQ(std::string(status.message()),
            "the destination's CPU lacks features the guest uses: sse4_2 (CPUID 1.0 ECX bit 20), "
            "avx512f (CPUID 7.0 EBX bit 16), CPUID 0x80000008.0 EBX bit 3");
}

TEST(CpuidCompatibleTest, HostWithMoreFeaturesIsCompatible) {
  const CpuidList guest = SupportedWithFeatureLeaves();
  CpuidList host = SupportedWithFeatureLeaves();
  Mutable(host, 7).ebx |= kAvx2 | kAvx512f;
  Mutable(host, 0x80000007).edx |= 1u << 9;
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(CpuidCompatibleTest, DifferentVendorsFailNamingBoth) {
  const CpuidList guest = SupportedWithFeatureLeaves();
  CpuidList host = SupportedWithFeatureLeaves();
  MakeAmd(host);
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("GenuineIntel"), HasSubstr("AuthenticAMD")));
}

TEST(CpuidCompatibleTest, BitsThatEchoTheGuestsControlRegistersAreNotCompared) {
  CpuidList guest = SupportedWithFeatureLeaves();
  Mutable(guest, 1).ecx |= kOsxsave;
  Mutable(guest, 7).ecx |= kOspke;
  CpuidList host = SupportedWithFeatureLeaves();
  Mutable(host, 1).ecx &= ~kOsxsave;
  Mutable(host, 7).ecx &= ~kOspke;
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(CpuidCompatibleTest, ALeafTheHostLacksSupportsNoFeature) {
  const CpuidList guest = SupportedWithFeatureLeaves();
  CpuidList host = SupportedWithFeatureLeaves();
  std::erase_if(host.entries(), [](const kvm_cpuid_entry2& e) {
    return (e.function == 0x7 && e.index == 1) || e.function == 0x80000007;
  });
  const absl::Status status = CheckCpuidCompatible(guest.entries(), host);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("avx_vnni (CPUID 7.1 EAX bit 4)"),
                    HasSubstr("invtsc (CPUID 0x80000007.0 EDX bit 8)")));
}

TEST(CpuidCompatibleTest, ALeafTheGuestLacksUsesNoFeature) {
  CpuidList guest = SupportedWithFeatureLeaves();
  std::erase_if(guest.entries(), [](const kvm_cpuid_entry2& e) {
    return e.function == 0xd || e.function >= 0x80000000;
  });
  const absl::Status status = CheckCpuidCompatible(guest.entries(), SupportedWithFeatureLeaves());
  EXPECT_TRUE(status.ok()) << status;
}

TEST(CpuidCompatibleTest, NonFeatureRegistersAreNotCompared) {
  // Leaf 1 EAX (family, model, stepping) and EBX (APIC ID) differ between any two hosts; the
  // guest keeps its own values (KVM_SET_CPUID2 takes them as given).
  CpuidList guest = SupportedWithFeatureLeaves();
  Mutable(guest, 1).eax = 0x000a0671;
  Mutable(guest, 1).ebx = 0x03040800;
  Mutable(guest, 7).eax = 2;  // max subleaf
  const absl::Status status = CheckCpuidCompatible(guest.entries(), SupportedWithFeatureLeaves());
  EXPECT_TRUE(status.ok()) << status;
}

}  // namespace
}  // namespace minivmm
