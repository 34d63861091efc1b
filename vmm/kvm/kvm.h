// Thin RAII wrappers over /dev/kvm, a VM fd and vCPU fds. Raw ioctl() on KVM fds appears only
// in kvm.cc; every fallible call returns a status naming the ioctl and errno.
#ifndef MINIVMM_VMM_KVM_KVM_H_
#define MINIVMM_VMM_KVM_KVM_H_

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

class KvmVcpu;

// struct kvm_xsave as KVM_GET_XSAVE/KVM_SET_XSAVE move it: its fixed 4096-byte region. The uapi
// struct ends in a flexible array (for KVM_GET_XSAVE2), which in C++ makes sizeof() 4100 and the
// struct unusable as a class member; this one has KVM's layout.
struct KvmXsave {
  uint32_t region[1024];
};
inline constexpr size_t kKvmXsaveSize = sizeof(KvmXsave);
static_assert(kKvmXsaveSize == sizeof(kvm_xsave::region));

// Owns a KVM_GET_SUPPORTED_CPUID-style list (struct kvm_cpuid2 has a flexible array member).
class CpuidList {
 public:
  explicit CpuidList(std::vector<kvm_cpuid_entry2> entries) : entries_(std::move(entries)) {}
  std::vector<kvm_cpuid_entry2>& entries() { return entries_; }
  const std::vector<kvm_cpuid_entry2>& entries() const { return entries_; }

 private:
  std::vector<kvm_cpuid_entry2> entries_;
};

class KvmVm {
 public:
  KvmVm(UniqueFd fd, int vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

  // x86 needs a 3-page TSS area and an identity-map page in guest-physical space that the guest
  // never uses as RAM (Intel VMX real-mode emulation); we put them just below the BIOS area at
  // the top of the 32-bit space.
  absl::Status SetTssAddress(uint64_t address);
  absl::Status SetIdentityMapAddress(uint64_t address);
  // In-kernel LAPICs + IOAPIC + PIC, and the i8254 PIT.
  absl::Status CreateIrqchip();
  absl::Status CreatePit();
  // KVM_SET_USER_MEMORY_REGION (api.rst 4.35); size 0 deletes the slot. flags: 0, or
  // KVM_MEM_LOG_DIRTY_PAGES to have KVM record the pages the guest writes. Setting a slot again
  // with other flags (same address and size) turns logging on or off for it.
  absl::Status SetUserMemoryRegion(uint32_t slot, uint64_t guest_address, uint64_t size,
                                   void* host_address, uint32_t flags = 0);
  // KVM_GET_DIRTY_LOG (api.rst 4.8): the slot's pages written since the last call, one bit per
  // page, cleared by the call. bitmap must hold at least size/4096 bits rounded up to 64 (KVM
  // copies that many bits, whatever the span's length). The slot must log dirty pages.
  absl::Status GetDirtyLog(uint32_t slot, std::span<uint64_t> bitmap);
  absl::Status SetIrqLine(uint32_t gsi, bool level);
  // KVM_SET_GSI_ROUTING (api.rst 4.52): replaces the whole GSI routing table, including the
  // default PIC/IOAPIC routes KVM_CREATE_IRQCHIP installed, so callers pass the full table
  // (vmm/kvm/gsi_router.h keeps it).
  absl::Status SetGsiRouting(std::span<const kvm_irq_routing_entry> entries);
  // KVM_IRQFD (api.rst 4.75): a write to event_fd injects `gsi` in the kernel, no exit to
  // userspace. With resample_fd >= 0 (KVM_IRQFD_FLAG_RESAMPLE) the GSI acts as a level
  // interrupt: KVM deasserts it on the guest's EOI and signals resample_fd.
  absl::Status AddIrqfd(int event_fd, uint32_t gsi, int resample_fd = -1);
  // KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN; the pair must match an AddIrqfd.
  absl::Status RemoveIrqfd(int event_fd, uint32_t gsi);
  // KVM_IOEVENTFD (api.rst 4.59): a guest write of `length` bytes (0: any length, with
  // KVM_CAP_IOEVENTFD_ANY_LENGTH) to `address` signals event_fd instead of exiting. Any value
  // matches (no KVM_IOEVENTFD_FLAG_DATAMATCH). pio selects the port I/O space.
  absl::Status AddIoeventfd(uint64_t address, uint32_t length, int event_fd, bool pio = false);
  // KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN; the arguments must match an AddIoeventfd,
  // otherwise KVM answers ENOENT.
  absl::Status RemoveIoeventfd(uint64_t address, uint32_t length, int event_fd, bool pio = false);
  absl::StatusOr<std::unique_ptr<KvmVcpu>> CreateVcpu(uint32_t id);

  // In-kernel device state and the clock, for snapshots (api.rst 4.26/4.27 KVM_GET/SET_IRQCHIP,
  // 4.72/4.73 KVM_GET/SET_PIT2, 4.29/4.30 KVM_GET/SET_CLOCK). GetIrqchip takes
  // KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC; SetIrqchip sets the chip
  // named by irqchip.chip_id.
  absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip_id);
  absl::Status SetIrqchip(const kvm_irqchip& irqchip);
  absl::StatusOr<kvm_pit_state2> GetPit2();
  absl::Status SetPit2(const kvm_pit_state2& pit);
  absl::StatusOr<kvm_clock_data> GetClock();
  absl::Status SetClock(const kvm_clock_data& clock);

 private:
  UniqueFd fd_;
  int vcpu_mmap_size_;
};

class KvmSystem {
 public:
  // Opens /dev/kvm and checks the API version and the capabilities minivmm relies on. Errors
  // say what to fix (missing module, permissions, no hardware virtualization).
  static absl::StatusOr<KvmSystem> Open(const char* path = "/dev/kvm");

  absl::StatusOr<CpuidList> GetSupportedCpuid() const;
  // KVM_GET_MSR_INDEX_LIST (api.rst 4.3): the MSRs KVM can save and restore for a guest. Not
  // every one is readable on a given vCPU (some depend on its CPUID); see SavableMsrs.
  absl::StatusOr<std::vector<uint32_t>> GetMsrIndexList() const;
  absl::StatusOr<std::unique_ptr<KvmVm>> CreateVm() const;

 private:
  KvmSystem(UniqueFd fd, int vcpu_mmap_size)
      : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}
  absl::Status RequireExtension(int capability, const char* name) const;

  UniqueFd fd_;
  int vcpu_mmap_size_ = 0;
};

class KvmVcpu {
 public:
  KvmVcpu(UniqueFd fd, kvm_run* run, size_t run_size, uint32_t id)
      : fd_(std::move(fd)), run_(run), run_size_(run_size), id_(id) {}
  KvmVcpu(const KvmVcpu&) = delete;
  KvmVcpu& operator=(const KvmVcpu&) = delete;
  ~KvmVcpu();

  // KVM_RUN. Returns CancelledError when interrupted by a signal (a stop request), so the
  // caller can tell that from a real failure.
  absl::Status Run();
  kvm_run* run() { return run_; }
  uint32_t id() const { return id_; }

  absl::StatusOr<kvm_regs> GetRegs();
  absl::Status SetRegs(const kvm_regs& regs);
  absl::StatusOr<kvm_sregs> GetSregs();
  absl::Status SetSregs(const kvm_sregs& sregs);
  absl::Status SetFpu(const kvm_fpu& fpu);
  // KVM_GET_CPUID2: what the last KVM_SET_CPUID2 set.
  absl::StatusOr<CpuidList> GetCpuid();
  absl::Status SetCpuid(const CpuidList& cpuid);
  absl::StatusOr<kvm_mp_state> GetMpState();
  absl::Status SetMpState(const kvm_mp_state& mp_state);
  // GetXsave fails with EINVAL when the guest's XSAVE area is larger than 4096 bytes (dynamic
  // features such as AMX, which would need KVM_GET_XSAVE2).
  absl::StatusOr<KvmXsave> GetXsave();
  absl::Status SetXsave(const KvmXsave& xsave);
  absl::StatusOr<kvm_xcrs> GetXcrs();
  absl::Status SetXcrs(const kvm_xcrs& xcrs);
  absl::StatusOr<kvm_debugregs> GetDebugRegs();
  absl::Status SetDebugRegs(const kvm_debugregs& debugregs);
  absl::StatusOr<kvm_vcpu_events> GetVcpuEvents();
  absl::Status SetVcpuEvents(const kvm_vcpu_events& events);
  absl::StatusOr<kvm_lapic_state> GetLapic();
  absl::Status SetLapic(const kvm_lapic_state& lapic);
  // KVM_GET_MSRS (api.rst 4.18) reads MSRs in order and stops at the first it cannot read: the
  // result holds the entries read, so it is shorter than `indices` when one was refused (the
  // refused one is indices[result.size()]). Not an error: callers decide. Lists longer than KVM
  // takes in one call (255) are split, here and in SetMsrs.
  absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(std::span<const uint32_t> indices);
  // KVM_SET_MSRS; fails, naming the first MSR not set, unless KVM set all of them.
  absl::Status SetMsrs(std::span<const kvm_msr_entry> msrs);
  // KVM_KVMCLOCK_CTRL (api.rst 4.70): marks kvmclock "guest stopped", so that after a pause the
  // guest's soft-lockup watchdog does not count the paused time as a hang. Fails with EINVAL
  // when the guest has not enabled kvmclock.
  absl::Status NoteGuestPaused();

 private:
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
  uint32_t id_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_KVM_KVM_H_
