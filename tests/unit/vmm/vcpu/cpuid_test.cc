#include "vmm/vcpu/cpuid.h"

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "vmm/kvm/kvm.h"

namespace minivmm {
namespace {

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

}  // namespace
}  // namespace minivmm
