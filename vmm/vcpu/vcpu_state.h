// What KVM holds for a guest, saved into and restored from vmm/kvm/kvm_state.proto: each vCPU's
// registers, LAPIC, MSRs and pending events (VcpuState), and the VM-wide PIC, IOAPIC, PIT and
// clock (VmKvmState). KVM's structs are kept as their uapi bytes; a state is checked whole, field
// sizes first, before anything goes back into KVM.
//
// The KVM calls go through small interfaces (VcpuStateAccess, VmKvmStateAccess) so the order
// they are made in, which KVM's semantics depend on, is unit-tested with a fake.
//
// Callers pause every vCPU first (no vCPU thread may be inside KVM_RUN) and, on restore, create
// the vCPUs and the in-kernel irqchip and PIT as at boot, then restore over them.
#ifndef MINIVMM_VMM_VCPU_VCPU_STATE_H_
#define MINIVMM_VMM_VCPU_VCPU_STATE_H_

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/kvm/kvm.h"
#include "vmm/kvm/kvm_state.pb.h"

namespace minivmm {

// The vCPU calls saving and restoring make; KvmVcpu's methods of the same names.
class VcpuStateAccess {
 public:
  virtual ~VcpuStateAccess() = default;

  virtual uint32_t id() const = 0;
  virtual absl::StatusOr<CpuidList> GetCpuid() = 0;
  virtual absl::Status SetCpuid(const CpuidList& cpuid) = 0;
  virtual absl::StatusOr<kvm_mp_state> GetMpState() = 0;
  virtual absl::Status SetMpState(const kvm_mp_state& mp_state) = 0;
  virtual absl::StatusOr<kvm_regs> GetRegs() = 0;
  virtual absl::Status SetRegs(const kvm_regs& regs) = 0;
  virtual absl::StatusOr<kvm_sregs> GetSregs() = 0;
  virtual absl::Status SetSregs(const kvm_sregs& sregs) = 0;
  virtual absl::StatusOr<KvmXsave> GetXsave() = 0;
  virtual absl::Status SetXsave(const KvmXsave& xsave) = 0;
  virtual absl::StatusOr<kvm_xcrs> GetXcrs() = 0;
  virtual absl::Status SetXcrs(const kvm_xcrs& xcrs) = 0;
  virtual absl::StatusOr<kvm_debugregs> GetDebugRegs() = 0;
  virtual absl::Status SetDebugRegs(const kvm_debugregs& debugregs) = 0;
  virtual absl::StatusOr<kvm_lapic_state> GetLapic() = 0;
  virtual absl::Status SetLapic(const kvm_lapic_state& lapic) = 0;
  // As KvmVcpu::GetMsrs: stops at the first MSR it cannot read (a shorter result, not an error).
  virtual absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(std::span<const uint32_t> indices) = 0;
  virtual absl::Status SetMsrs(std::span<const kvm_msr_entry> msrs) = 0;
  virtual absl::StatusOr<kvm_vcpu_events> GetVcpuEvents() = 0;
  virtual absl::Status SetVcpuEvents(const kvm_vcpu_events& events) = 0;
  // KVM_KVMCLOCK_CTRL; InvalidArgument when the guest has not enabled kvmclock.
  virtual absl::Status NoteGuestPaused() = 0;
};

// VcpuStateAccess over a real vCPU fd.
class KvmVcpuStateAccess final : public VcpuStateAccess {
 public:
  explicit KvmVcpuStateAccess(KvmVcpu& vcpu) : vcpu_(vcpu) {}

  uint32_t id() const override { return vcpu_.id(); }
  absl::StatusOr<CpuidList> GetCpuid() override { return vcpu_.GetCpuid(); }
  absl::Status SetCpuid(const CpuidList& cpuid) override { return vcpu_.SetCpuid(cpuid); }
  absl::StatusOr<kvm_mp_state> GetMpState() override { return vcpu_.GetMpState(); }
  absl::Status SetMpState(const kvm_mp_state& mp_state) override {
    return vcpu_.SetMpState(mp_state);
  }
  absl::StatusOr<kvm_regs> GetRegs() override { return vcpu_.GetRegs(); }
  absl::Status SetRegs(const kvm_regs& regs) override { return vcpu_.SetRegs(regs); }
  absl::StatusOr<kvm_sregs> GetSregs() override { return vcpu_.GetSregs(); }
  absl::Status SetSregs(const kvm_sregs& sregs) override { return vcpu_.SetSregs(sregs); }
  absl::StatusOr<KvmXsave> GetXsave() override { return vcpu_.GetXsave(); }
  absl::Status SetXsave(const KvmXsave& xsave) override { return vcpu_.SetXsave(xsave); }
  absl::StatusOr<kvm_xcrs> GetXcrs() override { return vcpu_.GetXcrs(); }
  absl::Status SetXcrs(const kvm_xcrs& xcrs) override { return vcpu_.SetXcrs(xcrs); }
  absl::StatusOr<kvm_debugregs> GetDebugRegs() override { return vcpu_.GetDebugRegs(); }
  absl::Status SetDebugRegs(const kvm_debugregs& debugregs) override {
    return vcpu_.SetDebugRegs(debugregs);
  }
  absl::StatusOr<kvm_lapic_state> GetLapic() override { return vcpu_.GetLapic(); }
  absl::Status SetLapic(const kvm_lapic_state& lapic) override { return vcpu_.SetLapic(lapic); }
  absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(std::span<const uint32_t> indices) override {
    return vcpu_.GetMsrs(indices);
  }
  absl::Status SetMsrs(std::span<const kvm_msr_entry> msrs) override { return vcpu_.SetMsrs(msrs); }
  absl::StatusOr<kvm_vcpu_events> GetVcpuEvents() override { return vcpu_.GetVcpuEvents(); }
  absl::Status SetVcpuEvents(const kvm_vcpu_events& events) override {
    return vcpu_.SetVcpuEvents(events);
  }
  absl::Status NoteGuestPaused() override { return vcpu_.NoteGuestPaused(); }

 private:
  KvmVcpu& vcpu_;
};

// The MSRs of `msr_index_list` (KvmSystem::GetMsrIndexList) that KVM_GET_MSRS can read on this
// vCPU, in list order: some listed MSRs exist only with a CPUID feature or host support, and
// KVM_GET_MSRS stops at the first it cannot read. Computed once per VM, on vCPU 0 after its
// CPUID is set, and passed to SaveVcpuState for every vCPU.
absl::StatusOr<std::vector<uint32_t>> SavableMsrs(VcpuStateAccess& vcpu,
                                                  std::span<const uint32_t> msr_index_list);

// Reads the vCPU in Firecracker's order: MP_STATE first (KVM_GET_MP_STATE delivers pending
// INIT/SIPI, which changes the LAPIC), REGS, SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC, CPUID2, the
// MSRs of `msr_indices` (all must be readable), VCPU_EVENTS last.
absl::StatusOr<state::VcpuState> SaveVcpuState(VcpuStateAccess& vcpu,
                                               std::span<const uint32_t> msr_indices);

// Every field has KVM's size for its struct, and the state belongs to vCPU `vcpu_id`. An error
// names the vCPU and the field.
absl::Status ValidateVcpuState(uint32_t vcpu_id, const state::VcpuState& state);

// Validates the whole state (nothing is set when it is refused), then writes CPUID2, MP_STATE,
// REGS, SREGS, XSAVE, XCRS, DEBUGREGS, LAPIC (after SREGS, whose APIC base it depends on, and
// before the MSRs, since the LAPIC must be in TSC-deadline mode for IA32_TSC_DEADLINE to stick),
// MSRs, VCPU_EVENTS, then KVM_KVMCLOCK_CTRL so the guest's watchdogs do not count the time the
// snapshot spent on disk (skipped when the guest has no kvmclock).
absl::Status RestoreVcpuState(VcpuStateAccess& vcpu, const state::VcpuState& state);

// The VM-wide calls; KvmVm's methods of the same names.
class VmKvmStateAccess {
 public:
  virtual ~VmKvmStateAccess() = default;

  virtual absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip_id) = 0;
  virtual absl::Status SetIrqchip(const kvm_irqchip& irqchip) = 0;
  virtual absl::StatusOr<kvm_pit_state2> GetPit2() = 0;
  virtual absl::Status SetPit2(const kvm_pit_state2& pit) = 0;
  virtual absl::StatusOr<kvm_clock_data> GetClock() = 0;
  virtual absl::Status SetClock(const kvm_clock_data& clock) = 0;
};

// VmKvmStateAccess over a real VM fd.
class KvmVmStateAccess final : public VmKvmStateAccess {
 public:
  explicit KvmVmStateAccess(KvmVm& vm) : vm_(vm) {}

  absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip_id) override {
    return vm_.GetIrqchip(chip_id);
  }
  absl::Status SetIrqchip(const kvm_irqchip& irqchip) override { return vm_.SetIrqchip(irqchip); }
  absl::StatusOr<kvm_pit_state2> GetPit2() override { return vm_.GetPit2(); }
  absl::Status SetPit2(const kvm_pit_state2& pit) override { return vm_.SetPit2(pit); }
  absl::StatusOr<kvm_clock_data> GetClock() override { return vm_.GetClock(); }
  absl::Status SetClock(const kvm_clock_data& clock) override { return vm_.SetClock(clock); }

 private:
  KvmVm& vm_;
};

// PIC master, PIC slave, IOAPIC, PIT2, CLOCK.
absl::StatusOr<state::VmKvmState> SaveVmKvmState(VmKvmStateAccess& vm);
absl::StatusOr<state::VmKvmState> SaveVmKvmState(KvmVm& vm);

// Every field has KVM's size for its struct, and each irqchip field holds its own chip.
absl::Status ValidateVmKvmState(const state::VmKvmState& state);

// Validates the whole state, then sets PIC master, PIC slave, IOAPIC, PIT2 and the clock. The
// clock goes back with flags 0: the guest's kvmclock continues from the saved value, without the
// host time that passed since the save (KVM_CLOCK_REALTIME would add it).
absl::Status RestoreVmKvmState(VmKvmStateAccess& vm, const state::VmKvmState& state);
absl::Status RestoreVmKvmState(KvmVm& vm, const state::VmKvmState& state);

}  // namespace minivmm

#endif  // MINIVMM_VMM_VCPU_VCPU_STATE_H_
