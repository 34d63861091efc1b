#include "vmm/vcpu/vcpu_state.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
namespace {

// arch/x86/kvm/cpuid.h: KVM_MAX_CPUID_ENTRIES; KVM_SET_CPUID2 refuses more (E2BIG).
constexpr size_t kMaxCpuidEntries = 256;

// The uapi bytes of a KVM struct; sizeof(T) is KVM's size for every T used here.
template <typename T>
std::string ToBytes(const T& value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
}

// Only after the size check: `bytes` holds sizeof(T) bytes.
template <typename T>
T FromBytes(const std::string& bytes) {
  T value{};
  std::memcpy(&value, bytes.data(), std::min(bytes.size(), sizeof(T)));
  return value;
}

absl::Status CheckSize(std::string_view owner, std::string_view field, const std::string& bytes,
                       size_t size, std::string_view kvm_struct) {
  if (bytes.size() == size) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: state field '%s' is %d bytes, KVM's struct %s is %d", owner, field,
                      bytes.size(), kvm_struct, size));
}

}  // namespace

absl::StatusOr<std::vector<uint32_t>> SavableMsrs(VcpuStateAccess& vcpu,
                                                  std::span<const uint32_t> msr_index_list) {
  // Each round reads what is left after the MSR refused last; everything before the refused
  // one was read and is kept. The rest shrinks every round, so this ends within
  // msr_index_list.size() + 1 rounds.
  std::vector<uint32_t> savable;
  std::span<const uint32_t> rest = msr_index_list;
  while (!rest.empty()) {
    MINIVMM_ASSIGN_OR_RETURN(std::vector<kvm_msr_entry> read, vcpu.GetMsrs(rest));
    if (read.size() > rest.size()) {
      return absl::InternalError(
          absl::StrFormat("vCPU %d: KVM_GET_MSRS read %d MSRs, %d were asked for", vcpu.id(),
                          read.size(), rest.size()));
    }
    savable.insert(savable.end(), rest.begin(), rest.begin() + read.size());
    if (read.size() == rest.size()) break;
    Log(LogLevel::kDebug, "vCPU %d: MSR %#x is listed by KVM_GET_MSR_INDEX_LIST but unreadable",
        vcpu.id(), rest[read.size()]);
    rest = rest.subspan(read.size() + 1);
  }
  return savable;
}

absl::StatusOr<state::VcpuState> SaveVcpuState(VcpuStateAccess& vcpu,
                                               std::span<const uint32_t> msr_indices) {
  state::VcpuState saved;
  saved.set_id(vcpu.id());
  MINIVMM_ASSIGN_OR_RETURN(kvm_mp_state mp_state, vcpu.GetMpState());
  saved.set_mp_state(ToBytes(mp_state));
  MINIVMM_ASSIGN_OR_RETURN(kvm_regs regs, vcpu.GetRegs());
  saved.set_regs(ToBytes(regs));
  MINIVMM_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  saved.set_sregs(ToBytes(sregs));
  MINIVMM_ASSIGN_OR_RETURN(KvmXsave xsave, vcpu.GetXsave());
  saved.set_xsave(ToBytes(xsave));
  MINIVMM_ASSIGN_OR_RETURN(kvm_xcrs xcrs, vcpu.GetXcrs());
  saved.set_xcrs(ToBytes(xcrs));
  MINIVMM_ASSIGN_OR_RETURN(kvm_debugregs debugregs, vcpu.GetDebugRegs());
  saved.set_debugregs(ToBytes(debugregs));
  MINIVMM_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  saved.set_lapic(ToBytes(lapic));

  MINIVMM_ASSIGN_OR_RETURN(CpuidList cpuid, vcpu.GetCpuid());
  if (cpuid.entries().empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vCPU %d has no CPUID to save (KVM_SET_CPUID2 was never called)", vcpu.id()));
  }
  saved.set_cpuid(std::string(reinterpret_cast<const char*>(cpuid.entries().data()),
                              cpuid.entries().size() * sizeof(kvm_cpuid_entry2)));

  MINIVMM_ASSIGN_OR_RETURN(std::vector<kvm_msr_entry> msrs, vcpu.GetMsrs(msr_indices));
  if (msrs.size() < msr_indices.size()) {
    return absl::InternalError(
        absl::StrFormat("vCPU %d: KVM_GET_MSRS cannot read MSR %#x (read %d of %d MSRs)", vcpu.id(),
                        msr_indices[msrs.size()], msrs.size(), msr_indices.size()));
  }
  for (const kvm_msr_entry& entry : msrs) {
    state::Msr* msr = saved.add_msrs();
    msr->set_index(entry.index);
    msr->set_value(entry.data);
  }

  MINIVMM_ASSIGN_OR_RETURN(kvm_vcpu_events events, vcpu.GetVcpuEvents());
  saved.set_vcpu_events(ToBytes(events));
  return saved;
}

absl::Status ValidateVcpuState(uint32_t vcpu_id, const state::VcpuState& state) {
  const std::string owner = absl::StrFormat("vCPU %d", vcpu_id);
  if (state.id() != vcpu_id) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: the state is vCPU %d's", owner, state.id()));
  }
  const size_t cpuid_bytes = state.cpuid().size();
  if (cpuid_bytes == 0 || cpuid_bytes % sizeof(kvm_cpuid_entry2) != 0 ||
      cpuid_bytes / sizeof(kvm_cpuid_entry2) > kMaxCpuidEntries) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: state field 'cpuid' is %d bytes, KVM wants 1 to %d struct kvm_cpuid_entry2 of %d "
        "bytes",
        owner, cpuid_bytes, kMaxCpuidEntries, sizeof(kvm_cpuid_entry2)));
  }
  MINIVMM_RETURN_IF_ERROR(
      CheckSize(owner, "mp_state", state.mp_state(), sizeof(kvm_mp_state), "kvm_mp_state"));
  MINIVMM_RETURN_IF_ERROR(CheckSize(owner, "regs", state.regs(), sizeof(kvm_regs), "kvm_regs"));
  MINIVMM_RETURN_IF_ERROR(CheckSize(owner, "sregs", state.sregs(), sizeof(kvm_sregs), "kvm_sregs"));
  MINIVMM_RETURN_IF_ERROR(CheckSize(owner, "xsave", state.xsave(), kKvmXsaveSize, "kvm_xsave"));
  MINIVMM_RETURN_IF_ERROR(CheckSize(owner, "xcrs", state.xcrs(), sizeof(kvm_xcrs), "kvm_xcrs"));
  MINIVMM_RETURN_IF_ERROR(
      CheckSize(owner, "debugregs", state.debugregs(), sizeof(kvm_debugregs), "kvm_debugregs"));
  MINIVMM_RETURN_IF_ERROR(
      CheckSize(owner, "lapic", state.lapic(), sizeof(kvm_lapic_state), "kvm_lapic_state"));
  return CheckSize(owner, "vcpu_events", state.vcpu_events(), sizeof(kvm_vcpu_events),
                   "kvm_vcpu_events");
}

absl::Status RestoreVcpuState(VcpuStateAccess& vcpu, const state::VcpuState& state) {
  MINIVMM_RETURN_IF_ERROR(ValidateVcpuState(vcpu.id(), state));

  std::vector<kvm_cpuid_entry2> cpuid(state.cpuid().size() / sizeof(kvm_cpuid_entry2));
  std::memcpy(cpuid.data(), state.cpuid().data(), state.cpuid().size());
  MINIVMM_RETURN_IF_ERROR(vcpu.SetCpuid(CpuidList(std::move(cpuid))));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetMpState(FromBytes<kvm_mp_state>(state.mp_state())));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetRegs(FromBytes<kvm_regs>(state.regs())));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetSregs(FromBytes<kvm_sregs>(state.sregs())));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetXsave(FromBytes<KvmXsave>(state.xsave())));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetXcrs(FromBytes<kvm_xcrs>(state.xcrs())));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetDebugRegs(FromBytes<kvm_debugregs>(state.debugregs())));
  MINIVMM_RETURN_IF_ERROR(vcpu.SetLapic(FromBytes<kvm_lapic_state>(state.lapic())));

  std::vector<kvm_msr_entry> msrs;
  msrs.reserve(state.msrs_size());
  for (const state::Msr& msr : state.msrs()) {
    msrs.push_back({.index = msr.index(), .reserved = 0, .data = msr.value()});
  }
  MINIVMM_RETURN_IF_ERROR(vcpu.SetMsrs(msrs));

  kvm_vcpu_events events = FromBytes<kvm_vcpu_events>(state.vcpu_events());
  // KVM_GET_VCPU_EVENTS reports nmi.pending without setting KVM_VCPUEVENT_VALID_NMI_PENDING
  // (arch/x86/kvm/x86.c, kvm_vcpu_ioctl_x86_get_vcpu_events), and KVM_SET_VCPU_EVENTS transfers
  // nmi.pending only with it (api.rst 4.32): without it a pending NMI would be lost. QEMU sets it
  // too. sipi_vector stays out: KVM never reports it (always 0).
  events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
  MINIVMM_RETURN_IF_ERROR(vcpu.SetVcpuEvents(events));

  // EINVAL (InvalidArgument) means the guest never enabled kvmclock: nothing to tell it.
  absl::Status noted = vcpu.NoteGuestPaused();
  if (!noted.ok() && !absl::IsInvalidArgument(noted)) return noted;
  return absl::OkStatus();
}

namespace {

constexpr struct {
  uint32_t chip_id;
  const char* field;
} kIrqchips[] = {
    {KVM_IRQCHIP_PIC_MASTER, "pic_master"},
    {KVM_IRQCHIP_PIC_SLAVE, "pic_slave"},
    {KVM_IRQCHIP_IOAPIC, "ioapic"},
};

std::string* MutableIrqchipField(state::VmKvmState& state, uint32_t chip_id) {
  switch (chip_id) {
    case KVM_IRQCHIP_PIC_MASTER:
      return state.mutable_pic_master();
    case KVM_IRQCHIP_PIC_SLAVE:
      return state.mutable_pic_slave();
    default:
      return state.mutable_ioapic();
  }
}

const std::string& IrqchipField(const state::VmKvmState& state, uint32_t chip_id) {
  switch (chip_id) {
    case KVM_IRQCHIP_PIC_MASTER:
      return state.pic_master();
    case KVM_IRQCHIP_PIC_SLAVE:
      return state.pic_slave();
    default:
      return state.ioapic();
  }
}

}  // namespace

absl::StatusOr<state::VmKvmState> SaveVmKvmState(VmKvmStateAccess& vm) {
  state::VmKvmState saved;
  for (const auto& chip : kIrqchips) {
    MINIVMM_ASSIGN_OR_RETURN(kvm_irqchip irqchip, vm.GetIrqchip(chip.chip_id));
    *MutableIrqchipField(saved, chip.chip_id) = ToBytes(irqchip);
  }
  MINIVMM_ASSIGN_OR_RETURN(kvm_pit_state2 pit, vm.GetPit2());
  saved.set_pit(ToBytes(pit));
  MINIVMM_ASSIGN_OR_RETURN(kvm_clock_data clock, vm.GetClock());
  saved.set_clock(ToBytes(clock));
  return saved;
}

absl::StatusOr<state::VmKvmState> SaveVmKvmState(KvmVm& vm) {
  KvmVmStateAccess access(vm);
  return SaveVmKvmState(access);
}

absl::Status ValidateVmKvmState(const state::VmKvmState& state) {
  for (const auto& chip : kIrqchips) {
    const std::string& bytes = IrqchipField(state, chip.chip_id);
    MINIVMM_RETURN_IF_ERROR(CheckSize("VM", chip.field, bytes, sizeof(kvm_irqchip), "kvm_irqchip"));
    const uint32_t saved_chip_id = FromBytes<kvm_irqchip>(bytes).chip_id;
    if (saved_chip_id != chip.chip_id) {
      return absl::InvalidArgumentError(
          absl::StrFormat("VM: state field '%s' holds irqchip %d, not %d", chip.field,
                          saved_chip_id, chip.chip_id));
    }
  }
  MINIVMM_RETURN_IF_ERROR(
      CheckSize("VM", "pit", state.pit(), sizeof(kvm_pit_state2), "kvm_pit_state2"));
  return CheckSize("VM", "clock", state.clock(), sizeof(kvm_clock_data), "kvm_clock_data");
}

absl::Status RestoreVmKvmState(VmKvmStateAccess& vm, const state::VmKvmState& state) {
  MINIVMM_RETURN_IF_ERROR(ValidateVmKvmState(state));
  for (const auto& chip : kIrqchips) {
    MINIVMM_RETURN_IF_ERROR(
        vm.SetIrqchip(FromBytes<kvm_irqchip>(IrqchipField(state, chip.chip_id))));
  }
  MINIVMM_RETURN_IF_ERROR(vm.SetPit2(FromBytes<kvm_pit_state2>(state.pit())));
  kvm_clock_data clock = FromBytes<kvm_clock_data>(state.clock());
  // api.rst 4.30: with KVM_CLOCK_REALTIME (Linux 5.16+) KVM would advance the clock by the host
  // time elapsed since `realtime`; with flags 0 it sets exactly the saved value.
  clock.flags = 0;
  return vm.SetClock(clock);
}

absl::Status RestoreVmKvmState(KvmVm& vm, const state::VmKvmState& state) {
  KvmVmStateAccess access(vm);
  return RestoreVmKvmState(access, state);
}

}  // namespace minivmm
