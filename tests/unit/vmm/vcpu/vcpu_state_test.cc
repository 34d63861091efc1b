// Saving and restoring KVM's vCPU and VM state against fakes that record the calls: the order
// KVM's semantics need, byte-exact round trips, refusal of a malformed state before anything is
// set, and the MSR list filtering.
#include "vmm/vcpu/vcpu_state.h"

#include <linux/kvm.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Fills a struct with bytes that differ per field and per vCPU, so a round trip that loses,
// shifts or swaps bytes shows.
template <typename T>
T Pattern(uint8_t seed) {
  T value{};
  auto* bytes = reinterpret_cast<uint8_t*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7);
  return value;
}

template <typename T>
std::string Bytes(const T& value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
}

class FakeVcpu : public VcpuStateAccess {
 public:
  explicit FakeVcpu(uint32_t id) : id_(id) {
    const uint8_t s = static_cast<uint8_t>(id * 16);
    mp_state = {.mp_state = KVM_MP_STATE_HALTED};
    regs = Pattern<kvm_regs>(s + 1);
    sregs = Pattern<kvm_sregs>(s + 2);
    xsave = Pattern<KvmXsave>(s + 3);
    xcrs = Pattern<kvm_xcrs>(s + 4);
    debugregs = Pattern<kvm_debugregs>(s + 5);
    lapic = Pattern<kvm_lapic_state>(s + 6);
    events = Pattern<kvm_vcpu_events>(s + 7);
    cpuid = {Pattern<kvm_cpuid_entry2>(s + 8), Pattern<kvm_cpuid_entry2>(s + 9)};
  }

  // What the getters return.
  kvm_mp_state mp_state;
  kvm_regs regs;
  kvm_sregs sregs;
  KvmXsave xsave;
  kvm_xcrs xcrs;
  kvm_debugregs debugregs;
  kvm_lapic_state lapic;
  kvm_vcpu_events events;
  std::vector<kvm_cpuid_entry2> cpuid;
  std::set<uint32_t> unreadable_msrs;
  absl::Status kvmclock_ctrl_status = absl::OkStatus();

  // Every call, by ioctl name, and what the setters were given.
  std::vector<std::string> calls;
  int get_msrs_calls = 0;
  std::vector<kvm_cpuid_entry2> set_cpuid;
  kvm_mp_state set_mp_state{};
  kvm_regs set_regs{};
  kvm_sregs set_sregs{};
  KvmXsave set_xsave{};
  kvm_xcrs set_xcrs{};
  kvm_debugregs set_debugregs{};
  kvm_lapic_state set_lapic{};
  std::vector<kvm_msr_entry> set_msrs;
  kvm_vcpu_events set_events{};

  static uint64_t MsrValue(uint32_t index) { return (uint64_t{index} << 32) | 0x5a5a; }

  uint32_t id() const override { return id_; }
  absl::StatusOr<CpuidList> GetCpuid() override {
    calls.push_back("KVM_GET_CPUID2");
    return CpuidList(cpuid);
  }
  absl::Status SetCpuid(const CpuidList& list) override {
    calls.push_back("KVM_SET_CPUID2");
    set_cpuid = list.entries();
    return absl::OkStatus();
  }
  absl::StatusOr<kvm_mp_state> GetMpState() override { return Get("KVM_GET_MP_STATE", mp_state); }
  absl::Status SetMpState(const kvm_mp_state& v) override {
    return Set("KVM_SET_MP_STATE", set_mp_state, v);
  }
  absl::StatusOr<kvm_regs> GetRegs() override { return Get("KVM_GET_REGS", regs); }
  absl::Status SetRegs(const kvm_regs& v) override { return Set("KVM_SET_REGS", set_regs, v); }
  absl::StatusOr<kvm_sregs> GetSregs() override { return Get("KVM_GET_SREGS", sregs); }
  absl::Status SetSregs(const kvm_sregs& v) override { return Set("KVM_SET_SREGS", set_sregs, v); }
  absl::StatusOr<KvmXsave> GetXsave() override { return Get("KVM_GET_XSAVE", xsave); }
  absl::Status SetXsave(const KvmXsave& v) override { return Set("KVM_SET_XSAVE", set_xsave, v); }
  absl::StatusOr<kvm_xcrs> GetXcrs() override { return Get("KVM_GET_XCRS", xcrs); }
  absl::Status SetXcrs(const kvm_xcrs& v) override { return Set("KVM_SET_XCRS", set_xcrs, v); }
  absl::StatusOr<kvm_debugregs> GetDebugRegs() override {
    return Get("KVM_GET_DEBUGREGS", debugregs);
  }
  absl::Status SetDebugRegs(const kvm_debugregs& v) override {
    return Set("KVM_SET_DEBUGREGS", set_debugregs, v);
  }
  absl::StatusOr<kvm_lapic_state> GetLapic() override { return Get("KVM_GET_LAPIC", lapic); }
  absl::Status SetLapic(const kvm_lapic_state& v) override {
    return Set("KVM_SET_LAPIC", set_lapic, v);
  }
  // As KVM: reads in order, stops at the first unreadable MSR.
  absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(std::span<const uint32_t> indices) override {
    calls.push_back("KVM_GET_MSRS");
    ++get_msrs_calls;
    std::vector<kvm_msr_entry> read;
    for (uint32_t index : indices) {
      if (unreadable_msrs.contains(index)) break;
      read.push_back({.index = index, .reserved = 0, .data = MsrValue(index)});
    }
    return read;
  }
  absl::Status SetMsrs(std::span<const kvm_msr_entry> msrs) override {
    calls.push_back("KVM_SET_MSRS");
    set_msrs.assign(msrs.begin(), msrs.end());
    return absl::OkStatus();
  }
  absl::StatusOr<kvm_vcpu_events> GetVcpuEvents() override {
    return Get("KVM_GET_VCPU_EVENTS", events);
  }
  absl::Status SetVcpuEvents(const kvm_vcpu_events& v) override {
    return Set("KVM_SET_VCPU_EVENTS", set_events, v);
  }
  absl::Status NoteGuestPaused() override {
    calls.push_back("KVM_KVMCLOCK_CTRL");
    return kvmclock_ctrl_status;
  }

 private:
  template <typename T>
  absl::StatusOr<T> Get(const char* name, const T& value) {
    calls.push_back(name);
    return value;
  }
  template <typename T>
  absl::Status Set(const char* name, T& slot, const T& value) {
    calls.push_back(name);
    slot = value;
    return absl::OkStatus();
  }

  uint32_t id_;
};

constexpr uint32_t kMsrList[] = {0x10, 0x1b, 0x3a, 0x174, 0x6e0, 0xc0000080, 0xc0000102};

state::VcpuState SavedState(FakeVcpu& vcpu) {
  absl::StatusOr<state::VcpuState> saved = SaveVcpuState(vcpu, kMsrList);
  EXPECT_TRUE(saved.ok()) << saved.status();
  return *saved;
}

// --- vCPU: order.

TEST(SaveVcpuStateTest, ReadsMpStateFirstAndVcpuEventsLastInFirecrackersOrder) {
  FakeVcpu vcpu(1);
  ASSERT_TRUE(SaveVcpuState(vcpu, kMsrList).ok());
  EXPECT_THAT(vcpu.calls,
              ElementsAre("KVM_GET_MP_STATE", "KVM_GET_REGS", "KVM_GET_SREGS", "KVM_GET_XSAVE",
                          "KVM_GET_XCRS", "KVM_GET_DEBUGREGS", "KVM_GET_LAPIC", "KVM_GET_CPUID2",
                          "KVM_GET_MSRS", "KVM_GET_VCPU_EVENTS"));
}

TEST(RestoreVcpuStateTest, WritesCpuidFirstLapicBeforeMsrsEventsLastThenKvmclockCtrl) {
  FakeVcpu source(1);
  const state::VcpuState saved = SavedState(source);
  FakeVcpu target(1);
  ASSERT_TRUE(RestoreVcpuState(target, saved).ok());
  EXPECT_THAT(target.calls,
              ElementsAre("KVM_SET_CPUID2", "KVM_SET_MP_STATE", "KVM_SET_REGS", "KVM_SET_SREGS",
                          "KVM_SET_XSAVE", "KVM_SET_XCRS", "KVM_SET_DEBUGREGS", "KVM_SET_LAPIC",
                          "KVM_SET_MSRS", "KVM_SET_VCPU_EVENTS", "KVM_KVMCLOCK_CTRL"));
}

// --- vCPU: data.

TEST(SaveVcpuStateTest, StoresKvmStructsAsTheirUapiBytesAndMsrsByIndex) {
  FakeVcpu vcpu(2);
  const state::VcpuState saved = SavedState(vcpu);
  EXPECT_EQ(saved.id(), 2u);
  EXPECT_EQ(saved.mp_state(), Bytes(vcpu.mp_state));
  EXPECT_EQ(saved.regs(), Bytes(vcpu.regs));
  EXPECT_EQ(saved.sregs(), Bytes(vcpu.sregs));
  // KVM's struct kvm_xsave is 4096 bytes; C++'s sizeof says 4100.
  EXPECT_EQ(saved.xsave().size(), 4096u);
  EXPECT_EQ(saved.xsave(), Bytes(vcpu.xsave));
  EXPECT_EQ(saved.xcrs(), Bytes(vcpu.xcrs));
  EXPECT_EQ(saved.debugregs(), Bytes(vcpu.debugregs));
  EXPECT_EQ(saved.lapic(), Bytes(vcpu.lapic));
  EXPECT_EQ(saved.vcpu_events(), Bytes(vcpu.events));
  EXPECT_EQ(saved.cpuid(), Bytes(vcpu.cpuid[0]) + Bytes(vcpu.cpuid[1]));
  ASSERT_EQ(saved.msrs_size(), static_cast<int>(std::size(kMsrList)));
  for (size_t i = 0; i < std::size(kMsrList); ++i) {
    EXPECT_EQ(saved.msrs(i).index(), kMsrList[i]);
    EXPECT_EQ(saved.msrs(i).value(), FakeVcpu::MsrValue(kMsrList[i]));
  }
}

TEST(RestoreVcpuStateTest, SetsExactlyWhatSaveRead) {
  FakeVcpu source(3);
  const state::VcpuState saved = SavedState(source);
  FakeVcpu target(3);
  ASSERT_TRUE(RestoreVcpuState(target, saved).ok());

  EXPECT_EQ(Bytes(target.set_mp_state), Bytes(source.mp_state));
  EXPECT_EQ(Bytes(target.set_regs), Bytes(source.regs));
  EXPECT_EQ(Bytes(target.set_sregs), Bytes(source.sregs));
  EXPECT_EQ(Bytes(target.set_xsave), Bytes(source.xsave));
  EXPECT_EQ(Bytes(target.set_xcrs), Bytes(source.xcrs));
  EXPECT_EQ(Bytes(target.set_debugregs), Bytes(source.debugregs));
  EXPECT_EQ(Bytes(target.set_lapic), Bytes(source.lapic));
  ASSERT_EQ(target.set_cpuid.size(), source.cpuid.size());
  for (size_t i = 0; i < source.cpuid.size(); ++i) {
    EXPECT_EQ(Bytes(target.set_cpuid[i]), Bytes(source.cpuid[i]));
  }
  ASSERT_EQ(target.set_msrs.size(), std::size(kMsrList));
  for (size_t i = 0; i < std::size(kMsrList); ++i) {
    EXPECT_EQ(target.set_msrs[i].index, kMsrList[i]);
    EXPECT_EQ(target.set_msrs[i].data, FakeVcpu::MsrValue(kMsrList[i]));
  }
  // The events go back as read, plus the flag that makes KVM take nmi.pending.
  kvm_vcpu_events expected_events = source.events;
  expected_events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
  EXPECT_EQ(Bytes(target.set_events), Bytes(expected_events));
}

TEST(RestoreVcpuStateTest, ToleratesAGuestWithoutKvmclock) {
  FakeVcpu source(0);
  FakeVcpu target(0);
  target.kvmclock_ctrl_status = absl::InvalidArgumentError("KVM_KVMCLOCK_CTRL(vCPU 0): EINVAL");
  EXPECT_TRUE(RestoreVcpuState(target, SavedState(source)).ok());
}

TEST(RestoreVcpuStateTest, ReportsOtherKvmclockCtrlFailures) {
  FakeVcpu source(0);
  FakeVcpu target(0);
  target.kvmclock_ctrl_status = absl::InternalError("KVM_KVMCLOCK_CTRL(vCPU 0): EIO");
  EXPECT_EQ(RestoreVcpuState(target, SavedState(source)).code(), absl::StatusCode::kInternal);
}

TEST(SaveVcpuStateTest, FailsNamingAnMsrOfTheListThatThisVcpuCannotRead) {
  FakeVcpu vcpu(1);
  vcpu.unreadable_msrs = {0x174};
  absl::StatusOr<state::VcpuState> saved = SaveVcpuState(vcpu, kMsrList);
  ASSERT_FALSE(saved.ok());
  EXPECT_THAT(std::string(saved.status().message()),
              HasSubstr("vCPU 1: KVM_GET_MSRS cannot read MSR 0x174"));
}

// --- vCPU: a malformed state is refused whole, before any set call.

TEST(RestoreVcpuStateTest, RefusesTruncatedSregsNamingTheFieldAndSetsNothing) {
  FakeVcpu source(1);
  state::VcpuState saved = SavedState(source);
  saved.mutable_sregs()->resize(300);
  FakeVcpu target(1);
  absl::Status restored = RestoreVcpuState(target, saved);
  EXPECT_EQ(restored.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(restored.message(),
            "vCPU 1: state field 'sregs' is 300 bytes, KVM's struct kvm_sregs is 312");
  EXPECT_THAT(target.calls, IsEmpty());
}

TEST(RestoreVcpuStateTest, RefusesEveryFieldOfTheWrongSizeAndSetsNothing) {
  FakeVcpu source(2);
  const state::VcpuState good = SavedState(source);
  const std::map<std::string, std::string* (state::VcpuState::*)()> fields = {
      {"mp_state", &state::VcpuState::mutable_mp_state},
      {"regs", &state::VcpuState::mutable_regs},
      {"sregs", &state::VcpuState::mutable_sregs},
      {"xsave", &state::VcpuState::mutable_xsave},
      {"xcrs", &state::VcpuState::mutable_xcrs},
      {"debugregs", &state::VcpuState::mutable_debugregs},
      {"lapic", &state::VcpuState::mutable_lapic},
      {"vcpu_events", &state::VcpuState::mutable_vcpu_events},
  };
  for (const auto& [name, field] : fields) {
    for (int delta : {-1, +1}) {
      state::VcpuState bad = good;
      std::string* bytes = (bad.*field)();
      bytes->resize(bytes->size() + delta);
      FakeVcpu target(2);
      absl::Status restored = RestoreVcpuState(target, bad);
      EXPECT_EQ(restored.code(), absl::StatusCode::kInvalidArgument) << name;
      EXPECT_THAT(
          std::string(restored.message()),
          HasSubstr(absl::StrFormat("vCPU 2: state field '%s' is %d bytes", name, bytes->size())));
      EXPECT_THAT(target.calls, IsEmpty()) << name;
    }
  }
}

TEST(RestoreVcpuStateTest, RefusesCpuidThatIsNotOneTo256WholeEntries) {
  FakeVcpu source(0);
  const state::VcpuState good = SavedState(source);
  for (size_t size : {size_t{0}, sizeof(kvm_cpuid_entry2) + 1, 257 * sizeof(kvm_cpuid_entry2)}) {
    state::VcpuState bad = good;
    bad.mutable_cpuid()->resize(size);
    FakeVcpu target(0);
    absl::Status restored = RestoreVcpuState(target, bad);
    EXPECT_EQ(restored.code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_THAT(std::string(restored.message()),
                HasSubstr(absl::StrFormat("vCPU 0: state field 'cpuid' is %d bytes", size)));
    EXPECT_THAT(target.calls, IsEmpty()) << size;
  }
}

TEST(RestoreVcpuStateTest, RefusesAnotherVcpusStateAndSetsNothing) {
  FakeVcpu source(1);
  FakeVcpu target(2);
  absl::Status restored = RestoreVcpuState(target, SavedState(source));
  EXPECT_EQ(restored.message(), "vCPU 2: the state is vCPU 1's");
  EXPECT_THAT(target.calls, IsEmpty());
}

// --- The MSR list.

TEST(SavableMsrsTest, DropsTheMsrKvmCannotReadAndKeepsTheOthersInOrder) {
  FakeVcpu vcpu(0);
  vcpu.unreadable_msrs = {0x3a};
  absl::StatusOr<std::vector<uint32_t>> savable = SavableMsrs(vcpu, kMsrList);
  ASSERT_TRUE(savable.ok()) << savable.status();
  EXPECT_THAT(*savable, ElementsAre(0x10, 0x1b, 0x174, 0x6e0, 0xc0000080, 0xc0000102));
  EXPECT_EQ(vcpu.get_msrs_calls, 2);
}

TEST(SavableMsrsTest, DropsRefusedMsrsAtBothEnds) {
  FakeVcpu vcpu(0);
  vcpu.unreadable_msrs = {0x10, 0x1b, 0xc0000102};
  absl::StatusOr<std::vector<uint32_t>> savable = SavableMsrs(vcpu, kMsrList);
  ASSERT_TRUE(savable.ok()) << savable.status();
  EXPECT_THAT(*savable, ElementsAre(0x3a, 0x174, 0x6e0, 0xc0000080));
}

TEST(SavableMsrsTest, EndsWithNothingWhenKvmRefusesEveryMsr) {
  FakeVcpu vcpu(0);
  vcpu.unreadable_msrs = std::set<uint32_t>(std::begin(kMsrList), std::end(kMsrList));
  absl::StatusOr<std::vector<uint32_t>> savable = SavableMsrs(vcpu, kMsrList);
  ASSERT_TRUE(savable.ok()) << savable.status();
  EXPECT_THAT(*savable, IsEmpty());
  // One call per refused MSR: the loop is bounded by the list.
  EXPECT_EQ(vcpu.get_msrs_calls, static_cast<int>(std::size(kMsrList)));
}

TEST(SavableMsrsTest, KeepsAFullyReadableListInOneCall) {
  FakeVcpu vcpu(0);
  absl::StatusOr<std::vector<uint32_t>> savable = SavableMsrs(vcpu, kMsrList);
  ASSERT_TRUE(savable.ok()) << savable.status();
  EXPECT_THAT(*savable, ElementsAreArray(kMsrList));
  EXPECT_EQ(vcpu.get_msrs_calls, 1);
}

// --- The VM-wide state.

class FakeVm : public VmKvmStateAccess {
 public:
  std::vector<std::string> calls;
  kvm_pit_state2 pit = Pattern<kvm_pit_state2>(0x40);
  kvm_clock_data clock = Pattern<kvm_clock_data>(0x50);
  std::map<uint32_t, kvm_irqchip> set_irqchips;
  kvm_pit_state2 set_pit{};
  kvm_clock_data set_clock{};

  static kvm_irqchip Chip(uint32_t chip_id) {
    kvm_irqchip chip = Pattern<kvm_irqchip>(static_cast<uint8_t>(0x20 + chip_id));
    chip.chip_id = chip_id;
    chip.pad = 0;
    return chip;
  }

  absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip_id) override {
    calls.push_back(absl::StrFormat("KVM_GET_IRQCHIP(%d)", chip_id));
    return Chip(chip_id);
  }
  absl::Status SetIrqchip(const kvm_irqchip& irqchip) override {
    calls.push_back(absl::StrFormat("KVM_SET_IRQCHIP(%d)", irqchip.chip_id));
    set_irqchips[irqchip.chip_id] = irqchip;
    return absl::OkStatus();
  }
  absl::StatusOr<kvm_pit_state2> GetPit2() override {
    calls.push_back("KVM_GET_PIT2");
    return pit;
  }
  absl::Status SetPit2(const kvm_pit_state2& value) override {
    calls.push_back("KVM_SET_PIT2");
    set_pit = value;
    return absl::OkStatus();
  }
  absl::StatusOr<kvm_clock_data> GetClock() override {
    calls.push_back("KVM_GET_CLOCK");
    return clock;
  }
  absl::Status SetClock(const kvm_clock_data& value) override {
    calls.push_back("KVM_SET_CLOCK");
    set_clock = value;
    return absl::OkStatus();
  }
};

state::VmKvmState SavedVmState(FakeVm& vm) {
  absl::StatusOr<state::VmKvmState> saved = SaveVmKvmState(vm);
  EXPECT_TRUE(saved.ok()) << saved.status();
  return *saved;
}

TEST(VmKvmStateTest, SavesPicMasterPicSlaveIoapicPitThenClock) {
  FakeVm vm;
  const state::VmKvmState saved = SavedVmState(vm);
  EXPECT_THAT(vm.calls, ElementsAre("KVM_GET_IRQCHIP(0)", "KVM_GET_IRQCHIP(1)",
                                    "KVM_GET_IRQCHIP(2)", "KVM_GET_PIT2", "KVM_GET_CLOCK"));
  EXPECT_EQ(saved.pic_master(), Bytes(FakeVm::Chip(KVM_IRQCHIP_PIC_MASTER)));
  EXPECT_EQ(saved.pic_slave(), Bytes(FakeVm::Chip(KVM_IRQCHIP_PIC_SLAVE)));
  EXPECT_EQ(saved.ioapic(), Bytes(FakeVm::Chip(KVM_IRQCHIP_IOAPIC)));
  EXPECT_EQ(saved.pit(), Bytes(vm.pit));
  EXPECT_EQ(saved.clock(), Bytes(vm.clock));
}

TEST(VmKvmStateTest, RestoreSetsWhatSaveReadWithTheClockFlagsCleared) {
  FakeVm source;
  const state::VmKvmState saved = SavedVmState(source);
  FakeVm target;
  ASSERT_TRUE(RestoreVmKvmState(target, saved).ok());
  EXPECT_THAT(target.calls, ElementsAre("KVM_SET_IRQCHIP(0)", "KVM_SET_IRQCHIP(1)",
                                        "KVM_SET_IRQCHIP(2)", "KVM_SET_PIT2", "KVM_SET_CLOCK"));
  for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    EXPECT_EQ(Bytes(target.set_irqchips[chip]), Bytes(FakeVm::Chip(chip))) << chip;
  }
  EXPECT_EQ(Bytes(target.set_pit), Bytes(source.pit));
  // The saved clock value, no KVM_CLOCK_REALTIME adjustment.
  EXPECT_EQ(target.set_clock.clock, source.clock.clock);
  EXPECT_EQ(target.set_clock.flags, 0u);
}

TEST(VmKvmStateTest, RefusesATruncatedFieldNamingItAndSetsNothing) {
  FakeVm source;
  state::VmKvmState saved = SavedVmState(source);
  saved.mutable_pit()->resize(100);
  FakeVm target;
  absl::Status restored = RestoreVmKvmState(target, saved);
  EXPECT_EQ(restored.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(restored.message(),
            "VM: state field 'pit' is 100 bytes, KVM's struct kvm_pit_state2 is 112");
  EXPECT_THAT(target.calls, IsEmpty());
}

TEST(VmKvmStateTest, RefusesAnIrqchipFieldHoldingAnotherChipAndSetsNothing) {
  FakeVm source;
  state::VmKvmState saved = SavedVmState(source);
  *saved.mutable_pic_slave() = Bytes(FakeVm::Chip(KVM_IRQCHIP_IOAPIC));
  FakeVm target;
  absl::Status restored = RestoreVmKvmState(target, saved);
  EXPECT_EQ(restored.message(), "VM: state field 'pic_slave' holds irqchip 2, not 1");
  EXPECT_THAT(target.calls, IsEmpty());
}

}  // namespace
}  // namespace minivmm
