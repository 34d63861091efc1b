// What a user sees when KVM is not usable (one message that names the device and the fix), and
// the interrupt/notification plumbing: GSI routing, irqfd, ioeventfd and the dirty log on a real
// VM where /dev/kvm allows one (skipped otherwise), MSI vectors against a fake irqfd binder
// everywhere.
#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/base/event_fd.h"
#include "vmm/kvm/gsi_router.h"
#include "vmm/kvm/kvm_mmio_write_events.h"
#include "vmm/kvm/kvm_msi.h"

namespace minivmm {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(KvmSystemTest, MissingDeviceSaysHowToGetKvm) {
  absl::StatusOr<KvmSystem> kvm = KvmSystem::Open("/nonexistent/kvm");
  ASSERT_FALSE(kvm.ok());
  EXPECT_EQ(kvm.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(kvm.status().message()),
              AllOf(HasSubstr("/nonexistent/kvm does not exist"), HasSubstr("modprobe kvm_intel"),
                    HasSubstr("nested harness")));
}

TEST(KvmSystemTest, DeviceThatIsNotKvmIsRefusedWithTheApiVersion) {
  absl::StatusOr<KvmSystem> kvm = KvmSystem::Open("/dev/null");
  ASSERT_FALSE(kvm.ok());
  EXPECT_THAT(std::string(kvm.status().message()),
              AllOf(HasSubstr("/dev/null"), HasSubstr("KVM API version -1, minivmm needs 12")));
}

// --- A real VM: needs a usable /dev/kvm (CI may have none). Guests never run here; creating a
// VM and its irqchip is enough for routing, irqfd and ioeventfd.

class KvmVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<KvmSystem> kvm = KvmSystem::Open();
    if (!kvm.ok()) GTEST_SKIP() << "no usable /dev/kvm: " << kvm.status();
    absl::StatusOr<std::unique_ptr<KvmVm>> vm = kvm->CreateVm();
    if (!vm.ok()) GTEST_SKIP() << "KVM cannot create a VM here: " << vm.status();
    vm_ = *std::move(vm);
    // irqfd and GSI routing need the in-kernel irqchip (api.rst 4.52, 4.75).
    ASSERT_TRUE(vm_->CreateIrqchip().ok());
  }

  static EventFd NewEventFd() {
    absl::StatusOr<EventFd> event = EventFd::Create();
    EXPECT_TRUE(event.ok()) << event.status();
    return *std::move(event);
  }

  std::unique_ptr<KvmVm> vm_;
};

kvm_irq_routing_entry MsiEntry(uint32_t gsi, uint32_t address_lo, uint32_t data) {
  kvm_irq_routing_entry entry{};
  entry.gsi = gsi;
  entry.type = KVM_IRQ_ROUTING_MSI;
  entry.u.msi.address_lo = address_lo;
  entry.u.msi.data = data;
  return entry;
}

TEST_F(KvmVmTest, SetGsiRoutingAcceptsTheDefaultTablePlusAnMsiRoute) {
  std::vector<kvm_irq_routing_entry> table = GsiRouter::DefaultRoutes();
  ASSERT_TRUE(vm_->SetGsiRouting(table).ok());
  table.push_back(MsiEntry(24, 0xfee00000, 0x41));
  absl::Status status = vm_->SetGsiRouting(table);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(KvmVmTest, SetGsiRoutingErrorNamesTheIoctl) {
  std::vector<kvm_irq_routing_entry> table = GsiRouter::DefaultRoutes();
  // KVM_MAX_IRQ_ROUTES is 4096 on x86; a GSI past it is refused with EINVAL.
  table.push_back(MsiEntry(1u << 20, 0xfee00000, 0x41));
  absl::Status status = vm_->SetGsiRouting(table);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("KVM_SET_GSI_ROUTING(41 entries): Invalid argument"));
}

TEST_F(KvmVmTest, IrqfdCanBeAddedAndRemoved) {
  EventFd event = NewEventFd();
  ASSERT_TRUE(vm_->AddIrqfd(event.fd(), 24).ok());
  // KVM now consumes the eventfd's signals itself (virt/kvm/eventfd.c, irqfd_wakeup reads the
  // counter), even though GSI 24 has no route yet.
  ASSERT_TRUE(event.Signal().ok());
  EXPECT_EQ(event.Drain(), 0u);
  absl::Status status = vm_->RemoveIrqfd(event.fd(), 24);
  EXPECT_TRUE(status.ok()) << status;
  // Unbound, the signal stays with the eventfd.
  ASSERT_TRUE(event.Signal().ok());
  EXPECT_EQ(event.Drain(), 1u);
}

TEST_F(KvmVmTest, BindingOneEventFdTwiceFailsNamingTheIoctlAndGsi) {
  EventFd event = NewEventFd();
  ASSERT_TRUE(vm_->AddIrqfd(event.fd(), 24).ok());
  absl::Status status = vm_->AddIrqfd(event.fd(), 25);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("KVM_IRQFD(assign fd"), HasSubstr("to gsi 25)")));
  EXPECT_TRUE(vm_->RemoveIrqfd(event.fd(), 24).ok());
}

TEST_F(KvmVmTest, IoeventfdCanBeAddedAndRemovedOnce) {
  EventFd event = NewEventFd();
  constexpr uint64_t kAddress = 0xd0000000;
  ASSERT_TRUE(vm_->AddIoeventfd(kAddress, 4, event.fd()).ok());
  ASSERT_TRUE(vm_->AddIoeventfd(0x510, 2, event.fd(), /*pio=*/true).ok());
  ASSERT_TRUE(vm_->RemoveIoeventfd(kAddress, 4, event.fd()).ok());
  ASSERT_TRUE(vm_->RemoveIoeventfd(0x510, 2, event.fd(), /*pio=*/true).ok());

  absl::Status status = vm_->RemoveIoeventfd(kAddress, 4, event.fd());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("KVM_IOEVENTFD(deassign mmio 0xd0000000, length 4, fd"),
                    HasSubstr("No such file or directory")));
}

TEST_F(KvmVmTest, MmioWriteEventRegistrationDeassignsOnDestruction) {
  EventFd event = NewEventFd();
  KvmMmioWriteEvents events(vm_.get());
  absl::StatusOr<std::unique_ptr<MmioWriteEvents::Registration>> registration =
      events.Watch(0xd0001000, 0, event.fd());
  ASSERT_TRUE(registration.ok()) << registration.status();
  // The same address, length and fd twice is refused (EEXIST) while the first lives...
  absl::StatusOr<std::unique_ptr<MmioWriteEvents::Registration>> again =
      events.Watch(0xd0001000, 0, event.fd());
  EXPECT_FALSE(again.ok());
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("KVM_IOEVENTFD(assign mmio"));
  // ...and accepted once it is gone.
  registration->reset();
  again = events.Watch(0xd0001000, 0, event.fd());
  EXPECT_TRUE(again.ok()) << again.status();
}

// Anonymous host memory for one memory slot, unmapped at the end of the test.
class HostPages {
 public:
  explicit HostPages(size_t pages) : size_(pages * kPage) {
    void* raw = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(raw, MAP_FAILED);
    bytes_ = static_cast<uint8_t*>(raw);
  }
  HostPages(const HostPages&) = delete;
  HostPages& operator=(const HostPages&) = delete;
  ~HostPages() { ::munmap(bytes_, size_); }

  static constexpr size_t kPage = 4096;
  uint8_t* data() { return bytes_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  uint8_t* bytes_;
};

TEST_F(KvmVmTest, DirtyLogOfASlotWithoutLoggingFailsNamingTheSlot) {
  HostPages pages(16);
  ASSERT_TRUE(vm_->SetUserMemoryRegion(0, 0, pages.size(), pages.data()).ok());
  std::vector<uint64_t> bitmap(1);
  absl::Status status = vm_->GetDirtyLog(0, bitmap);
  ASSERT_FALSE(status.ok());
  // virt/kvm/kvm_main.c, kvm_get_dirty_log_protect: a slot without a dirty bitmap is ENOENT.
  EXPECT_THAT(std::string(status.message()), AllOf(HasSubstr("KVM_GET_DIRTY_LOG(slot 0)"),
                                                   HasSubstr("No such file or directory")));
}

TEST_F(KvmVmTest, DirtyLoggingCanBeTurnedOnAndOffForASlot) {
  HostPages pages(16);
  ASSERT_TRUE(vm_->SetUserMemoryRegion(0, 0, pages.size(), pages.data()).ok());
  absl::Status status =
      vm_->SetUserMemoryRegion(0, 0, pages.size(), pages.data(), KVM_MEM_LOG_DIRTY_PAGES);
  ASSERT_TRUE(status.ok()) << status;
  std::vector<uint64_t> bitmap(1, ~uint64_t{0});
  status = vm_->GetDirtyLog(0, bitmap);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(bitmap[0], 0u) << "no guest ran: nothing is dirty";
  ASSERT_TRUE(vm_->SetUserMemoryRegion(0, 0, pages.size(), pages.data()).ok());
  EXPECT_FALSE(vm_->GetDirtyLog(0, bitmap).ok());
}

// A real-mode guest stores to page 5 and exits on an OUT; the VMM itself writes page 9 through
// its mapping. KVM logs only the guest's store: the VMM's writes need GuestMemory's tracking.
TEST_F(KvmVmTest, DirtyLogRecordsTheGuestsWritesButNotTheVmms) {
  HostPages pages(16);
  const uint8_t code[] = {
      0xc6, 0x06, 0x00, 0x50, 0x01,  // mov byte [0x5000], 1
      0xe6, 0x10,                    // out 0x10, al
      0xf4,                          // hlt (not reached)
  };
  std::memcpy(pages.data(), code, sizeof(code));
  ASSERT_TRUE(
      vm_->SetUserMemoryRegion(0, 0, pages.size(), pages.data(), KVM_MEM_LOG_DIRTY_PAGES).ok());
  ASSERT_TRUE(vm_->SetTssAddress(0xfffbd000).ok());
  absl::StatusOr<std::unique_ptr<KvmVcpu>> vcpu = vm_->CreateVcpu(0);
  ASSERT_TRUE(vcpu.ok()) << vcpu.status();
  absl::StatusOr<kvm_sregs> sregs = (*vcpu)->GetSregs();
  ASSERT_TRUE(sregs.ok());
  sregs->cs.base = 0;  // the reset state fetches from 0xfffffff0; run from 0 instead
  sregs->cs.selector = 0;
  ASSERT_TRUE((*vcpu)->SetSregs(*sregs).ok());
  absl::StatusOr<kvm_regs> regs = (*vcpu)->GetRegs();
  ASSERT_TRUE(regs.ok());
  regs->rip = 0;
  regs->rflags = 2;  // bit 1 is reserved as 1
  ASSERT_TRUE((*vcpu)->SetRegs(*regs).ok());
  pages.data()[9 * HostPages::kPage] = 1;

  absl::Status status = (*vcpu)->Run();
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ((*vcpu)->run()->exit_reason, KVM_EXIT_IO);
  EXPECT_EQ((*vcpu)->run()->io.port, 0x10);
  EXPECT_EQ(pages.data()[5 * HostPages::kPage], 1);

  std::vector<uint64_t> bitmap(1);
  status = vm_->GetDirtyLog(0, bitmap);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_NE(bitmap[0] & (uint64_t{1} << 5), 0u) << "the guest's store";
  EXPECT_EQ(bitmap[0] & (uint64_t{1} << 9), 0u) << "the VMM's write is not KVM's to see";
  // Page 0 holds the code: fetched, not written. Whether KVM maps it writable is its business.
  EXPECT_EQ(bitmap[0] & ~uint64_t{0x21}, 0u);
  ASSERT_TRUE(vm_->GetDirtyLog(0, bitmap).ok());
  EXPECT_EQ(bitmap[0], 0u) << "the first call cleared the log";
}

TEST_F(KvmVmTest, MsiVectorsOnARealVm) {
  GsiRouter router(
      [this](std::span<const kvm_irq_routing_entry> table) { return vm_->SetGsiRouting(table); });
  KvmMsiAllocator allocator(vm_.get(), &router);
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> msi = allocator.AllocateKvmMsi();
  ASSERT_TRUE(msi.ok()) << msi.status();
  EXPECT_EQ((*msi)->gsi(), 24u);
  // Never set: KVM takes the event and delivers nothing.
  (*msi)->Trigger();
  ASSERT_TRUE((*msi)->SetMessage({.address = 0xfee00000, .data = 0x41}).ok());
  (*msi)->Trigger();
  ASSERT_TRUE((*msi)->SetMessage({.address = 0, .data = 0}).ok());
  msi->reset();
  // The GSI came back and its irqfd is gone: binding it again works.
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> again = allocator.AllocateKvmMsi();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->gsi(), 24u);
}

// --- MSI vectors against fakes: run everywhere.

class FakeIrqfdBinder : public IrqfdBinder {
 public:
  absl::Status Bind(int event_fd, uint32_t gsi) override {
    absl::MutexLock lock(&mutex_);
    if (fail_bind_) return absl::InternalError("KVM_IRQFD(fake): Input/output error");
    bound_.insert({event_fd, gsi});
    return absl::OkStatus();
  }
  absl::Status Unbind(int event_fd, uint32_t gsi) override {
    absl::MutexLock lock(&mutex_);
    bound_.erase({event_fd, gsi});
    return absl::OkStatus();
  }
  std::set<std::pair<int, uint32_t>> bound() const {
    absl::MutexLock lock(&mutex_);
    return bound_;
  }
  void set_fail_bind(bool fail) {
    absl::MutexLock lock(&mutex_);
    fail_bind_ = fail;
  }

 private:
  mutable absl::Mutex mutex_;
  bool fail_bind_ ABSL_GUARDED_BY(mutex_) = false;
  std::set<std::pair<int, uint32_t>> bound_ ABSL_GUARDED_BY(mutex_);
};

class KvmMsiTest : public ::testing::Test {
 protected:
  // The MSI routes of the last committed table.
  std::vector<std::string> MsiRoutes() const {
    std::vector<std::string> routes;
    for (const kvm_irq_routing_entry& entry : last_table_) {
      if (entry.type != KVM_IRQ_ROUTING_MSI) continue;
      routes.push_back(absl::StrFormat("gsi %d -> %#x data %#x", entry.gsi, entry.u.msi.address_lo,
                                       entry.u.msi.data));
    }
    return routes;
  }

  std::vector<kvm_irq_routing_entry> last_table_;
  int commits_ = 0;
  GsiRouter router_{[this](std::span<const kvm_irq_routing_entry> table) {
    last_table_.assign(table.begin(), table.end());
    ++commits_;
    return absl::OkStatus();
  }};
  std::shared_ptr<FakeIrqfdBinder> irqfds_ = std::make_shared<FakeIrqfdBinder>();
  KvmMsiAllocator allocator_{irqfds_, &router_};
};

TEST_F(KvmMsiTest, AllocationBindsAFreshEventFdToAFreshGsiWithoutARoute) {
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> a = allocator_.AllocateKvmMsi();
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> b = allocator_.AllocateKvmMsi();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->gsi(), 24u);
  EXPECT_EQ((*b)->gsi(), 25u);
  EXPECT_NE((*a)->event_fd(), (*b)->event_fd());
  EXPECT_THAT(irqfds_->bound(),
              ElementsAre(std::pair((*a)->event_fd(), 24u), std::pair((*b)->event_fd(), 25u)));
  EXPECT_EQ(commits_, 0);
}

TEST_F(KvmMsiTest, SetMessageRoutesTheGsiAndAddressZeroUnroutesIt) {
  absl::StatusOr<std::unique_ptr<MsiInterrupt>> msi = allocator_.AllocateMsi();
  ASSERT_TRUE(msi.ok());
  ASSERT_TRUE((*msi)->SetMessage({.address = 0xfee00000, .data = 0x41}).ok());
  EXPECT_THAT(MsiRoutes(), ElementsAre("gsi 24 -> 0xfee00000 data 0x41"));
  ASSERT_TRUE((*msi)->SetMessage({.address = 0xfee02000, .data = 0x42}).ok());
  EXPECT_THAT(MsiRoutes(), ElementsAre("gsi 24 -> 0xfee02000 data 0x42"));
  ASSERT_TRUE((*msi)->SetMessage({.address = 0, .data = 0x42}).ok());
  EXPECT_THAT(MsiRoutes(), IsEmpty());
}

TEST_F(KvmMsiTest, TriggerSignalsTheBoundEventFd) {
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> msi = allocator_.AllocateKvmMsi();
  ASSERT_TRUE(msi.ok());
  (*msi)->Trigger();
  (*msi)->Trigger();
  uint64_t count = 0;
  ASSERT_EQ(::read((*msi)->event_fd(), &count, sizeof(count)), 8);
  EXPECT_EQ(count, 2u);
}

TEST_F(KvmMsiTest, DestructionUnbindsFreesTheGsiAndDropsItsRoute) {
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> msi = allocator_.AllocateKvmMsi();
  ASSERT_TRUE(msi.ok());
  const int fd = (*msi)->event_fd();
  ASSERT_TRUE((*msi)->SetMessage({.address = 0xfee00000, .data = 0x41}).ok());
  msi->reset();
  EXPECT_THAT(irqfds_->bound(), IsEmpty());
  EXPECT_THAT(MsiRoutes(), IsEmpty());
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "eventfd leaked";
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> again = allocator_.AllocateKvmMsi();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->gsi(), 24u);
}

TEST_F(KvmMsiTest, VectorsMayOutliveTheAllocator) {
  absl::StatusOr<std::unique_ptr<MsiInterrupt>> msi;
  {
    KvmMsiAllocator allocator(irqfds_, &router_);
    msi = allocator.AllocateMsi();
    ASSERT_TRUE(msi.ok());
  }
  msi->reset();
  EXPECT_THAT(irqfds_->bound(), IsEmpty());
}

TEST_F(KvmMsiTest, FailedBindReturnsTheGsi) {
  irqfds_->set_fail_bind(true);
  absl::StatusOr<std::unique_ptr<MsiInterrupt>> msi = allocator_.AllocateMsi();
  ASSERT_FALSE(msi.ok());
  EXPECT_THAT(std::string(msi.status().message()),
              HasSubstr("allocating an MSI vector: KVM_IRQFD(fake)"));
  irqfds_->set_fail_bind(false);
  absl::StatusOr<std::unique_ptr<KvmMsiInterrupt>> ok = allocator_.AllocateKvmMsi();
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->gsi(), 24u);
}

}  // namespace
}  // namespace minivmm
