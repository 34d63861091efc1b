// Vm's snapshot half: what a running guest depends on, read out of KVM and the devices, and
// put back into a VM built from the same description (vm_state.proto lists it).
#include <linux/kvm.h>

#include "absl/strings/str_format.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_16550.h"
#include "devices/virtio/virtio_pci_function.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"
#include "vmm/vcpu/vcpu_state.h"
#include "vmm/vm.h"

namespace minivmm {

void Vm::QuiesceDevices() {
  for (const VirtioSlot& virtio : virtio_functions_) virtio.function->Quiesce();
}

void Vm::ResumeDevices() {
  for (const VirtioSlot& virtio : virtio_functions_) virtio.function->Resume();
}

absl::StatusOr<state::VmState> Vm::SaveState() {
  state::VmState state;
  for (const GuestMemory::Region& region : memory_->regions()) {
    state::MemoryRegion* saved = state.add_memory();
    saved->set_guest_address(region.guest_address);
    saved->set_size(region.size);
  }
  MINIVMM_ASSIGN_OR_RETURN(*state.mutable_kvm(), SaveVmKvmState(*kvm_vm_));
  // Which MSRs KVM can read back is the same for every vCPU of the VM: asked once.
  KvmVcpuStateAccess first(vcpus_.front()->vcpu());
  MINIVMM_ASSIGN_OR_RETURN(const std::vector<uint32_t> msrs,
                           SavableMsrs(first, msr_index_list_));
  for (auto& vcpu : vcpus_) {
    KvmVcpuStateAccess access(vcpu->vcpu());
    MINIVMM_ASSIGN_OR_RETURN(*state.add_vcpus(), SaveVcpuState(access, msrs));
  }
  *state.mutable_serial() = serial_->SaveState();
  *state.mutable_i8042() = i8042_->SaveState();
  *state.mutable_rtc() = rtc_->SaveState();
  for (const VirtioSlot& virtio : virtio_functions_) {
    state::PciFunctionState* function = state.add_pci();
    function->set_slot(virtio.slot);
    function->set_function(0);
    *function->mutable_virtio() = virtio.function->SaveState();
  }
  return state;
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::Restore(const KvmSystem& kvm, const VmConfig& config,
                                                const HostBackends& backends, Console* console,
                                                StopRequest* stop, absl::Time vmm_start,
                                                const state::VmState& state,
                                                const std::filesystem::path& memory_file) {
  MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<Vm> vm,
                           CreateMachine(kvm, config, backends, console, stop, vmm_start,
                                         memory_file));
  MINIVMM_RETURN_IF_ERROR(vm->RestoreState(kvm, config, state));
  return vm;
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::CreateForIncoming(const KvmSystem& kvm,
                                                          const VmConfig& config,
                                                          const HostBackends& backends,
                                                          Console* console, StopRequest* stop,
                                                          absl::Time vmm_start) {
  return CreateMachine(kvm, config, backends, console, stop, vmm_start, /*memory_file=*/{});
}

absl::Status Vm::RestoreState(const KvmSystem& kvm, const VmConfig& config,
                              const state::VmState& state) {
  if (static_cast<uint32_t>(state.vcpus_size()) != config.vcpus) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the state has %d vCPUs, its description %d: restore with the config.toml saved "
        "beside the state",
        state.vcpus_size(), config.vcpus));
  }
  // The machine the description builds must be the one the state describes.
  const std::vector<GuestMemory::Region>& regions = memory_->regions();
  bool same_memory = regions.size() == static_cast<size_t>(state.memory_size());
  for (size_t i = 0; same_memory && i < regions.size(); ++i) {
    same_memory = regions[i].guest_address == state.memory(i).guest_address() &&
                  regions[i].size == state.memory(i).size();
  }
  if (!same_memory) {
    return absl::FailedPreconditionError(
        "the state's guest memory layout differs from its description's: restore with the "
        "config.toml saved beside the state");
  }
  MINIVMM_RETURN_IF_ERROR(RestoreVmKvmState(*kvm_vm_, state.kvm()));
  MINIVMM_RETURN_IF_ERROR(RestoreDeviceState(state));
  MINIVMM_RETURN_IF_ERROR(CreateVcpus(kvm, config.vcpus, /*entry=*/nullptr));
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    KvmVcpuStateAccess access(vcpus_[i]->vcpu());
    MINIVMM_RETURN_IF_ERROR(RestoreVcpuState(access, state.vcpus(static_cast<int>(i))));
  }
  // The guest may now sit behind another switch port: its NICs say where it is (delivered as
  // the vCPUs start).
  for (const VirtioSlot& virtio : virtio_functions_) virtio.function->AnnounceMove();
  return absl::OkStatus();
}

absl::Status Vm::StartDirtyLog() {
  memory_->StartDirtyTracking();
  uint32_t slot = 0;
  for (const GuestMemory::Region& region : memory_->regions()) {
    MINIVMM_RETURN_IF_ERROR(kvm_vm_->SetUserMemoryRegion(
        slot++, region.guest_address, region.size, region.host, KVM_MEM_LOG_DIRTY_PAGES));
  }
  // A device may hold a buffer it took before tracking began (a receive buffer waiting for a
  // frame) and write it later through a view that was never marked. Quiescing drops such
  // buffers; resuming takes them again, marked now.
  QuiesceDevices();
  ResumeDevices();
  return absl::OkStatus();
}

void Vm::StopDirtyLog() {
  memory_->StopDirtyTracking();
  uint32_t slot = 0;
  for (const GuestMemory::Region& region : memory_->regions()) {
    if (absl::Status status = kvm_vm_->SetUserMemoryRegion(slot++, region.guest_address,
                                                           region.size, region.host);
        !status.ok()) {
      Log(LogLevel::kWarning, "dirty logging stays on: %s", status.ToString());
    }
  }
}

absl::StatusOr<Vm::DirtyPages> Vm::TakeDirtyPages(size_t index) {
  const GuestMemory::Region& region = memory_->regions().at(index);
  DirtyPages dirty;
  dirty.by_guest.assign((region.size / 4096 + 63) / 64, 0);
  MINIVMM_RETURN_IF_ERROR(kvm_vm_->GetDirtyLog(static_cast<uint32_t>(index), dirty.by_guest));
  dirty.by_vmm = memory_->TakeDirtyPages(index);
  dirty.by_vmm.resize(dirty.by_guest.size(), 0);
  return dirty;
}

absl::StatusOr<CpuidList> Vm::GuestCpuid() { return vcpus_.front()->vcpu().GetCpuid(); }

absl::Status Vm::RestoreDeviceState(const state::VmState& state) {
  MINIVMM_RETURN_IF_ERROR(serial_->RestoreState(state.serial()));
  MINIVMM_RETURN_IF_ERROR(i8042_->RestoreState(state.i8042()));
  MINIVMM_RETURN_IF_ERROR(rtc_->RestoreState(state.rtc()));
  if (static_cast<size_t>(state.pci_size()) != virtio_functions_.size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the state has %d virtio functions, its description %d: restore with the config.toml "
        "saved beside the state",
        state.pci_size(), virtio_functions_.size()));
  }
  for (size_t i = 0; i < virtio_functions_.size(); ++i) {
    const state::PciFunctionState& saved = state.pci(static_cast<int>(i));
    const VirtioSlot& virtio = virtio_functions_[i];
    if (saved.slot() != virtio.slot || saved.function() != 0 || !saved.has_virtio()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the state has no virtio function at PCI 00:%02x.0, where its description puts %s",
          virtio.slot, virtio.function->Name()));
    }
    if (absl::Status status = virtio.function->RestoreState(saved.virtio()); !status.ok()) {
      return absl::Status(status.code(), absl::StrFormat("PCI 00:%02x.0: %s", virtio.slot,
                                                         status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace minivmm
