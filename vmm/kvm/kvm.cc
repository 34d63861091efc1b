#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

// KVM's stable API version (Documentation/virt/kvm/api.rst §4.1).
constexpr int kKvmApiVersion = 12;

template <typename Arg>
absl::Status Ioctl(int fd, unsigned long request, Arg arg, const char* name) {
  if (::ioctl(fd, request, arg) < 0) return ErrnoError(name);
  return absl::OkStatus();
}

// kvm_cpuid2 and kvm_msrs end in __DECLARE_FLEX_ARRAY, which wraps the array in a struct
// holding an empty struct. In C an empty struct has size 0; in C++ it has size 1, which moves
// `entries` to offset 12 and makes sizeof() -- and so the ioctl numbers built from it -- wrong.
// These headers have the C layout: 8 bytes, entries right after them.
struct FlexHeader {
  uint32_t count;  // nent / nmsrs
  uint32_t padding;
};
static_assert(sizeof(FlexHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, FlexHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, FlexHeader);
constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, FlexHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, FlexHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, FlexHeader);
// struct kvm_msr_list is {u32 nmsrs; u32 indices[]}: a 4-byte header in C (8 in C++).
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);
// struct kvm_xsave is {u32 region[1024]; u32 extra[]}: 4096 bytes in C (4100 in C++), which is
// KvmXsave.
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, KvmXsave);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, KvmXsave);
// struct kvm_irq_routing is {u32 nr; u32 flags; entries[]}: the same 8-byte header.
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, FlexHeader);

// arch/x86/kvm/x86.c, msr_io(): KVM_GET_MSRS/KVM_SET_MSRS answer E2BIG when nmsrs >=
// MAX_IO_MSRS (256), so longer lists go in several calls.
constexpr size_t kMaxMsrsPerIoctl = 255;

// A FlexHeader followed by `count` entries, in an 8-byte aligned buffer.
template <typename Entry>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t count)
      : words_((sizeof(FlexHeader) + count * sizeof(Entry) + 7) / 8, 0) {
    header()->count = static_cast<uint32_t>(count);
  }
  FlexHeader* header() { return reinterpret_cast<FlexHeader*>(words_.data()); }
  Entry* entries() { return reinterpret_cast<Entry*>(header() + 1); }

 private:
  std::vector<uint64_t> words_;
};

}  // namespace

absl::StatusOr<KvmSystem> KvmSystem::Open(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrFormat(
          "%s does not exist: load the KVM module (modprobe kvm_intel or kvm_amd) and enable "
          "hardware virtualization (VT-x/AMD-V) in the firmware; without it, run the nested "
          "harness (tests/integration/run-in-l1.sh)",
          path));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(absl::StrFormat(
          "cannot open %s: permission denied (add your user to the 'kvm' group or run as root)",
          path));
    }
    return ErrnoError(absl::StrFormat("open(%s)", path), err);
  }
  const int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != kKvmApiVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: KVM API version %d, minivmm needs %d", path, version, kKvmApiVersion));
  }
  const int mmap_size = ::ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size <= 0) return ErrnoError("KVM_GET_VCPU_MMAP_SIZE");
  KvmSystem kvm(std::move(fd), mmap_size);
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_PIT2, "KVM_CAP_PIT2"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"));
  MINIVMM_RETURN_IF_ERROR(
      kvm.RequireExtension(KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER"));
  // Interrupt and notification plumbing without exits: MSI routes, irqfd, ioeventfd.
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_IRQFD, "KVM_CAP_IRQFD"));
  MINIVMM_RETURN_IF_ERROR(kvm.RequireExtension(KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"));
  return kvm;
}

absl::Status KvmSystem::RequireExtension(int capability, const char* name) const {
  if (::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability) <= 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the host's KVM lacks %s, which minivmm needs", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<CpuidList> KvmSystem::GetSupportedCpuid() const {
  // Grow the buffer until the kernel stops answering E2BIG.
  for (size_t count = 128; count <= 4096; count *= 2) {
    FlexBuffer<kvm_cpuid_entry2> buffer(count);
    if (::ioctl(fd_.get(), kGetSupportedCpuid, buffer.header()) == 0) {
      return CpuidList(std::vector<kvm_cpuid_entry2>(buffer.entries(),
                                                     buffer.entries() + buffer.header()->count));
    }
    if (errno != E2BIG) return ErrnoError("KVM_GET_SUPPORTED_CPUID");
  }
  return absl::InternalError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

absl::StatusOr<std::vector<uint32_t>> KvmSystem::GetMsrIndexList() const {
  // With nmsrs = 0 KVM answers E2BIG and writes the real count into nmsrs (api.rst 4.3). The
  // list does not change while the host runs, so the second call fits.
  std::vector<uint32_t> list(1, 0);  // list[0] is nmsrs, the indices follow
  if (::ioctl(fd_.get(), kGetMsrIndexList, list.data()) == 0) return std::vector<uint32_t>();
  if (errno != E2BIG) return ErrnoError("KVM_GET_MSR_INDEX_LIST");
  const uint32_t count = list[0];
  list.assign(1 + count, 0);
  list[0] = count;
  if (::ioctl(fd_.get(), kGetMsrIndexList, list.data()) < 0) {
    return ErrnoError(absl::StrFormat("KVM_GET_MSR_INDEX_LIST(%d MSRs)", count));
  }
  return std::vector<uint32_t>(list.begin() + 1, list.begin() + 1 + std::min(list[0], count));
}

absl::StatusOr<std::unique_ptr<KvmVm>> KvmSystem::CreateVm() const {
  // The argument is the machine type; 0 is the default for x86.
  UniqueFd vm(::ioctl(fd_.get(), KVM_CREATE_VM, 0));
  if (!vm.valid()) return ErrnoError("KVM_CREATE_VM");
  return std::make_unique<KvmVm>(std::move(vm), vcpu_mmap_size_);
}

absl::Status KvmVm::SetTssAddress(uint64_t address) {
  return Ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address),
               "KVM_SET_TSS_ADDR");
}

absl::Status KvmVm::SetIdentityMapAddress(uint64_t address) {
  return Ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &address, "KVM_SET_IDENTITY_MAP_ADDR");
}

absl::Status KvmVm::CreateIrqchip() {
  return Ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
}

absl::Status KvmVm::CreatePit() {
  kvm_pit_config config{};
  // The PC speaker port (0x61) is then handled in the kernel as a dummy, saving exits.
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  return Ioctl(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2");
}

absl::Status KvmVm::SetUserMemoryRegion(uint32_t slot, uint64_t guest_address, uint64_t size,
                                        void* host_address, uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guest_address;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host_address);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    return ErrnoError(absl::StrFormat("KVM_SET_USER_MEMORY_REGION(slot %d, [%#x, +%#x), flags %#x)",
                                      slot, guest_address, size, flags));
  }
  return absl::OkStatus();
}

absl::Status KvmVm::GetDirtyLog(uint32_t slot, std::span<uint64_t> bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) {
    return ErrnoError(absl::StrFormat("KVM_GET_DIRTY_LOG(slot %d)", slot));
  }
  return absl::OkStatus();
}

absl::Status KvmVm::SetIrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) {
    return ErrnoError(absl::StrFormat("KVM_IRQ_LINE(gsi %d)", gsi));
  }
  return absl::OkStatus();
}

absl::Status KvmVm::SetGsiRouting(std::span<const kvm_irq_routing_entry> entries) {
  FlexBuffer<kvm_irq_routing_entry> buffer(entries.size());
  // The header's second word is kvm_irq_routing.flags, which must be 0 (api.rst 4.52).
  std::memcpy(buffer.entries(), entries.data(), entries.size() * sizeof(kvm_irq_routing_entry));
  if (::ioctl(fd_.get(), kSetGsiRouting, buffer.header()) < 0) {
    return ErrnoError(absl::StrFormat("KVM_SET_GSI_ROUTING(%d entries)", entries.size()));
  }
  return absl::OkStatus();
}

absl::Status KvmVm::AddIrqfd(int event_fd, uint32_t gsi, int resample_fd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event_fd);
  irqfd.gsi = gsi;
  if (resample_fd >= 0) {
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(resample_fd);
  }
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return ErrnoError(absl::StrFormat("KVM_IRQFD(assign fd %d to gsi %d)", event_fd, gsi));
  }
  return absl::OkStatus();
}

absl::Status KvmVm::RemoveIrqfd(int event_fd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event_fd);
  irqfd.gsi = gsi;
  // KVM_IRQFD_FLAG_RESAMPLE is only needed on assignment (api.rst 4.75).
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return ErrnoError(absl::StrFormat("KVM_IRQFD(deassign fd %d from gsi %d)", event_fd, gsi));
  }
  return absl::OkStatus();
}

namespace {

absl::Status IoeventfdIoctl(int vm_fd, uint64_t address, uint32_t length, int event_fd, bool pio,
                            bool deassign) {
  kvm_ioeventfd ioeventfd{};
  ioeventfd.addr = address;
  ioeventfd.len = length;
  ioeventfd.fd = event_fd;
  if (pio) ioeventfd.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (deassign) ioeventfd.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (::ioctl(vm_fd, KVM_IOEVENTFD, &ioeventfd) < 0) {
    return ErrnoError(absl::StrFormat("KVM_IOEVENTFD(%s %s %#x, length %d, fd %d)",
                                      deassign ? "deassign" : "assign", pio ? "port" : "mmio",
                                      address, length, event_fd));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KvmVm::AddIoeventfd(uint64_t address, uint32_t length, int event_fd, bool pio) {
  return IoeventfdIoctl(fd_.get(), address, length, event_fd, pio, /*deassign=*/false);
}

absl::Status KvmVm::RemoveIoeventfd(uint64_t address, uint32_t length, int event_fd, bool pio) {
  return IoeventfdIoctl(fd_.get(), address, length, event_fd, pio, /*deassign=*/true);
}

namespace {

const char* IrqchipName(uint32_t chip_id) {
  switch (chip_id) {
    case KVM_IRQCHIP_PIC_MASTER:
      return "PIC master";
    case KVM_IRQCHIP_PIC_SLAVE:
      return "PIC slave";
    case KVM_IRQCHIP_IOAPIC:
      return "IOAPIC";
    default:
      return "unknown chip";
  }
}

}  // namespace

absl::StatusOr<kvm_irqchip> KvmVm::GetIrqchip(uint32_t chip_id) {
  kvm_irqchip irqchip{};
  irqchip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &irqchip) < 0) {
    return ErrnoError(
        absl::StrFormat("KVM_GET_IRQCHIP(chip %d, %s)", chip_id, IrqchipName(chip_id)));
  }
  return irqchip;
}

absl::Status KvmVm::SetIrqchip(const kvm_irqchip& irqchip) {
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &irqchip) < 0) {
    return ErrnoError(absl::StrFormat("KVM_SET_IRQCHIP(chip %d, %s)", irqchip.chip_id,
                                      IrqchipName(irqchip.chip_id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_pit_state2> KvmVm::GetPit2() {
  kvm_pit_state2 pit{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &pit) < 0) return ErrnoError("KVM_GET_PIT2");
  return pit;
}

absl::Status KvmVm::SetPit2(const kvm_pit_state2& pit) {
  return Ioctl(fd_.get(), KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
}

absl::StatusOr<kvm_clock_data> KvmVm::GetClock() {
  kvm_clock_data clock{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) return ErrnoError("KVM_GET_CLOCK");
  return clock;
}

absl::Status KvmVm::SetClock(const kvm_clock_data& clock) {
  return Ioctl(fd_.get(), KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
}

absl::StatusOr<std::unique_ptr<KvmVcpu>> KvmVm::CreateVcpu(uint32_t id) {
  UniqueFd fd(::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!fd.valid()) return ErrnoError(absl::StrFormat("KVM_CREATE_VCPU(%d)", id));
  void* run = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED) return ErrnoError(absl::StrFormat("mmap(kvm_run of vCPU %d)", id));
  return std::make_unique<KvmVcpu>(std::move(fd), static_cast<kvm_run*>(run), vcpu_mmap_size_, id);
}

KvmVcpu::~KvmVcpu() { ::munmap(run_, run_size_); }

absl::Status KvmVcpu::Run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    if (errno == EINTR || errno == EAGAIN) return absl::CancelledError("KVM_RUN interrupted");
    return ErrnoError(absl::StrFormat("KVM_RUN(vCPU %d)", id_));
  }
  return absl::OkStatus();
}

#define MINIVMM_VCPU_GETTER(Type, Name, Request)                     \
  absl::StatusOr<Type> KvmVcpu::Name() {                             \
    Type value{};                                                    \
    if (::ioctl(fd_.get(), Request, &value) < 0) {                   \
      return ErrnoError(absl::StrFormat(#Request "(vCPU %d)", id_)); \
    }                                                                \
    return value;                                                    \
  }
#define MINIVMM_VCPU_SETTER(Type, Name, Request)                     \
  absl::Status KvmVcpu::Name(const Type& value) {                    \
    if (::ioctl(fd_.get(), Request, &value) < 0) {                   \
      return ErrnoError(absl::StrFormat(#Request "(vCPU %d)", id_)); \
    }                                                                \
    return absl::OkStatus();                                         \
  }

MINIVMM_VCPU_GETTER(kvm_regs, GetRegs, KVM_GET_REGS)
MINIVMM_VCPU_SETTER(kvm_regs, SetRegs, KVM_SET_REGS)
MINIVMM_VCPU_GETTER(kvm_sregs, GetSregs, KVM_GET_SREGS)
MINIVMM_VCPU_SETTER(kvm_sregs, SetSregs, KVM_SET_SREGS)
MINIVMM_VCPU_SETTER(kvm_fpu, SetFpu, KVM_SET_FPU)
MINIVMM_VCPU_GETTER(kvm_mp_state, GetMpState, KVM_GET_MP_STATE)
MINIVMM_VCPU_SETTER(kvm_mp_state, SetMpState, KVM_SET_MP_STATE)
MINIVMM_VCPU_GETTER(kvm_xcrs, GetXcrs, KVM_GET_XCRS)
MINIVMM_VCPU_SETTER(kvm_xcrs, SetXcrs, KVM_SET_XCRS)
MINIVMM_VCPU_GETTER(kvm_debugregs, GetDebugRegs, KVM_GET_DEBUGREGS)
MINIVMM_VCPU_SETTER(kvm_debugregs, SetDebugRegs, KVM_SET_DEBUGREGS)
MINIVMM_VCPU_GETTER(kvm_vcpu_events, GetVcpuEvents, KVM_GET_VCPU_EVENTS)
MINIVMM_VCPU_SETTER(kvm_vcpu_events, SetVcpuEvents, KVM_SET_VCPU_EVENTS)
MINIVMM_VCPU_GETTER(kvm_lapic_state, GetLapic, KVM_GET_LAPIC)
MINIVMM_VCPU_SETTER(kvm_lapic_state, SetLapic, KVM_SET_LAPIC)

absl::StatusOr<KvmXsave> KvmVcpu::GetXsave() {
  KvmXsave xsave{};
  if (::ioctl(fd_.get(), kGetXsave, &xsave) < 0) {
    return ErrnoError(absl::StrFormat("KVM_GET_XSAVE(vCPU %d)", id_));
  }
  return xsave;
}

absl::Status KvmVcpu::SetXsave(const KvmXsave& xsave) {
  if (::ioctl(fd_.get(), kSetXsave, &xsave) < 0) {
    return ErrnoError(absl::StrFormat("KVM_SET_XSAVE(vCPU %d)", id_));
  }
  return absl::OkStatus();
}

absl::StatusOr<CpuidList> KvmVcpu::GetCpuid() {
  // As KVM_GET_SUPPORTED_CPUID: E2BIG until the buffer holds every entry.
  for (size_t count = 128; count <= 4096; count *= 2) {
    FlexBuffer<kvm_cpuid_entry2> buffer(count);
    if (::ioctl(fd_.get(), kGetCpuid2, buffer.header()) == 0) {
      return CpuidList(std::vector<kvm_cpuid_entry2>(buffer.entries(),
                                                     buffer.entries() + buffer.header()->count));
    }
    if (errno != E2BIG) return ErrnoError(absl::StrFormat("KVM_GET_CPUID2(vCPU %d)", id_));
  }
  return absl::InternalError(
      absl::StrFormat("KVM_GET_CPUID2(vCPU %d): more than 4096 entries", id_));
}

absl::Status KvmVcpu::SetCpuid(const CpuidList& cpuid) {
  const auto& entries = cpuid.entries();
  FlexBuffer<kvm_cpuid_entry2> buffer(entries.size());
  std::memcpy(buffer.entries(), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  if (::ioctl(fd_.get(), kSetCpuid2, buffer.header()) < 0) {
    return ErrnoError(absl::StrFormat("KVM_SET_CPUID2(vCPU %d)", id_));
  }
  return absl::OkStatus();
}

absl::Status KvmVcpu::NoteGuestPaused() {
  if (::ioctl(fd_.get(), KVM_KVMCLOCK_CTRL, 0) < 0) {
    return ErrnoError(absl::StrFormat("KVM_KVMCLOCK_CTRL(vCPU %d)", id_));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<kvm_msr_entry>> KvmVcpu::GetMsrs(std::span<const uint32_t> indices) {
  std::vector<kvm_msr_entry> read;
  read.reserve(indices.size());
  for (size_t start = 0; start < indices.size(); start += kMaxMsrsPerIoctl) {
    const size_t count = std::min(kMaxMsrsPerIoctl, indices.size() - start);
    FlexBuffer<kvm_msr_entry> buffer(count);
    for (size_t i = 0; i < count; ++i) buffer.entries()[i].index = indices[start + i];
    // KVM_GET_MSRS returns how many it read, in order; it stops at the first it cannot read.
    const int got = ::ioctl(fd_.get(), kGetMsrs, buffer.header());
    if (got < 0) {
      return ErrnoError(
          absl::StrFormat("KVM_GET_MSRS(vCPU %d, %d MSRs from %#x)", id_, count, indices[start]));
    }
    if (static_cast<size_t>(got) > count) {
      return absl::InternalError(absl::StrFormat(
          "KVM_GET_MSRS(vCPU %d): read %d MSRs, %d were asked for", id_, got, count));
    }
    read.insert(read.end(), buffer.entries(), buffer.entries() + got);
    if (static_cast<size_t>(got) < count) break;
  }
  return read;
}

absl::Status KvmVcpu::SetMsrs(std::span<const kvm_msr_entry> msrs) {
  for (size_t start = 0; start < msrs.size(); start += kMaxMsrsPerIoctl) {
    const size_t count = std::min(kMaxMsrsPerIoctl, msrs.size() - start);
    FlexBuffer<kvm_msr_entry> buffer(count);
    std::memcpy(buffer.entries(), msrs.data() + start, count * sizeof(kvm_msr_entry));
    // KVM_SET_MSRS returns the number of MSRs it set; fewer means one was refused.
    const int set = ::ioctl(fd_.get(), kSetMsrs, buffer.header());
    if (set < 0) {
      return ErrnoError(absl::StrFormat("KVM_SET_MSRS(vCPU %d, %d MSRs from %#x)", id_, count,
                                        msrs[start].index));
    }
    if (static_cast<size_t>(set) < count) {
      return absl::InternalError(
          absl::StrFormat("KVM_SET_MSRS(vCPU %d): set %d of %d MSRs, refused MSR %#x", id_,
                          start + set, msrs.size(), msrs[start + set].index));
    }
  }
  return absl::OkStatus();
}

}  // namespace minivmm
