#include "vmm/vcpu/vcpu_setup.h"

#include <cstring>

#include "guest-firmware/long_mode.h"
#include "vmm/base/errno_status.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

// Control register and EFER bits (Intel SDM Vol. 3A §2.5, §2.2.1).
constexpr uint64_t kCr0ProtectionEnable = 1u << 0;
constexpr uint64_t kCr0ExtensionType = 1u << 4;
constexpr uint64_t kCr0Paging = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kEferLme = 1u << 8;
constexpr uint64_t kEferLma = 1u << 10;

// LAPIC register offsets and delivery modes (Intel SDM Vol. 3A §10.4.1, §10.5.1).
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryModeNmi = 4u << 8;
constexpr uint32_t kDeliveryModeExtInt = 7u << 8;

// MSRs (Intel SDM Vol. 4).
constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;  // MTRRs on, default type WB

// Builds a kvm_segment from one of our GDT descriptors so the hidden parts of the segment
// registers match what a real lgdt + far jump would load.
kvm_segment SegmentFromGdt(uint16_t selector) {
  const uint64_t d = kBootGdt[selector / 8];
  kvm_segment s{};
  s.selector = selector;
  s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
  const uint32_t limit = (d & 0xffff) | (((d >> 48) & 0xf) << 16);
  s.g = (d >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.type = (d >> 40) & 0xf;
  s.present = (d >> 47) & 1;
  s.dpl = (d >> 45) & 3;
  s.db = (d >> 54) & 1;
  s.s = (d >> 44) & 1;
  s.l = (d >> 53) & 1;
  s.avl = (d >> 52) & 1;
  return s;
}

void SetLapicRegister(kvm_lapic_state& lapic, size_t offset, uint32_t value) {
  std::memcpy(&lapic.regs[offset], &value, sizeof(value));
}
uint32_t GetLapicRegister(const kvm_lapic_state& lapic, size_t offset) {
  uint32_t value;
  std::memcpy(&value, &lapic.regs[offset], sizeof(value));
  return value;
}

}  // namespace

absl::Status SetupVcpuCommon(KvmVcpu& vcpu) {
  MINIVMM_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  constexpr uint32_t kDeliveryModeMask = 7u << 8;
  SetLapicRegister(
      lapic, kApicLvtLint0,
      (GetLapicRegister(lapic, kApicLvtLint0) & ~kDeliveryModeMask) | kDeliveryModeExtInt);
  SetLapicRegister(
      lapic, kApicLvtLint1,
      (GetLapicRegister(lapic, kApicLvtLint1) & ~kDeliveryModeMask) | kDeliveryModeNmi);
  MINIVMM_RETURN_IF_ERROR(vcpu.SetLapic(lapic));
  const kvm_msr_entry msrs[] = {
      {.index = kMsrIa32MiscEnable, .reserved = 0, .data = kMiscEnableFastStrings},
      {.index = kMsrMtrrDefType, .reserved = 0, .data = kMtrrEnableWriteBack},
  };
  return vcpu.SetMsrs(msrs);
}

absl::Status SetupBootVcpu(KvmVcpu& vcpu, const LinuxEntry& entry) {
  MINIVMM_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  sregs.gdt.base = layout::kGdtAddress;
  sregs.gdt.limit = static_cast<uint16_t>(kBootGdt.size() * 8 - 1);
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cs = SegmentFromGdt(kBootCodeSelector);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = SegmentFromGdt(kBootDataSelector);
  sregs.tr = SegmentFromGdt(kBootTssSelector);
  sregs.cr0 = kCr0ProtectionEnable | kCr0ExtensionType | kCr0Paging;
  sregs.cr3 = layout::kPml4Address;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
  MINIVMM_RETURN_IF_ERROR(vcpu.SetSregs(sregs));

  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is reserved and always set
  regs.rip = entry.entry_point;
  regs.rsi = entry.zero_page;
  regs.rsp = regs.rbp = layout::kBootStackPointer;
  MINIVMM_RETURN_IF_ERROR(vcpu.SetRegs(regs));

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 default control word (FNINIT)
  fpu.mxcsr = 0x1f80;  // SSE default: all exceptions masked
  return vcpu.SetFpu(fpu);
}

}  // namespace minivmm
