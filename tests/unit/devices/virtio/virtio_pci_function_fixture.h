// The fixture shared by the virtio_pci_function_*_test files: drives a VirtioPciFunction wrapping
// a VirtioRng the way the Linux virtio-pci driver does: config space through
// ReadConfig/WriteConfig, BAR 0 through the MMIO bus, guest RAM through GuestMemory, interrupts
// through fakes. No KVM: doorbell registrations go to a fake that records them (and can signal
// their eventfds as KVM's ioeventfd would).
#ifndef MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_PCI_FUNCTION_FIXTURE_H_
#define MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_PCI_FUNCTION_FIXTURE_H_

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <unistd.h>

// Only the constants and structs; the legacy helpers do not compile as C++.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/virtio/ring_features.h"
#include "devices/virtio/virtio_pci_function.h"
#include "devices/virtio/virtio_rng.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/fake_irq_line.h"
#include "tests/unit/testing/fake_msi.h"
#include "vmm/core/bus.h"
#include "vmm/core/guest_memory.h"
#include "vmm/core/irq_line.h"
#include "vmm/core/mmio_write_events.h"

namespace minivmm::virtio {

using Layout = VirtioPciBarLayout;

inline constexpr uint64_t kMemorySize = 1 << 20;
// Firmware's assignment of BAR 0, and where the tests move it: both aligned to the BAR's size,
// the second above 4 GiB to exercise the upper dword of the 64-bit BAR.
inline constexpr uint64_t kBarAddress = 0xc000'0000;
inline constexpr uint64_t kMovedBarAddress = 0x8'0001'0000;
inline constexpr uint8_t kIntxLine = 11;

// The ring the driver sets up for queue 0, inside guest RAM, and the buffers it offers.
inline constexpr uint16_t kQueueSize = 16;
inline constexpr uint64_t kDescTable = 0x1000;
inline constexpr uint64_t kAvailRing = 0x2000;
inline constexpr uint64_t kUsedRing = 0x3000;
inline constexpr uint64_t kBuffer = 0x10000;
inline constexpr uint32_t kBufferSize = 64;

// MSI-X: one vector per queue plus the configuration-change vector (virtio 1.2 §4.1.5.1.2).
inline constexpr uint16_t kQueueVector = 0;
inline constexpr uint16_t kConfigVector = 1;
inline constexpr uint16_t kTableSize = 2;
// x86 MSI messages (Intel SDM vol. 3 §11.11): the LAPIC window at 0xfee00000, vector in data.
inline constexpr MsiMessage kQueueMessage = {.address = 0xfee00000, .data = 0x4041};
inline constexpr MsiMessage kConfigMessage = {.address = 0xfee00000, .data = 0x4051};

inline constexpr uint64_t kVersion1 = 1ull << VIRTIO_F_VERSION_1;
inline constexpr uint64_t kIndirectDesc = 1ull << kRingIndirectDescFeature;
inline constexpr uint64_t kEventIdx = 1ull << kRingEventIdxFeature;

inline constexpr uint8_t kAcknowledge = VIRTIO_CONFIG_S_ACKNOWLEDGE;
inline constexpr uint8_t kDriver = VIRTIO_CONFIG_S_DRIVER;
inline constexpr uint8_t kFeaturesOk = VIRTIO_CONFIG_S_FEATURES_OK;
inline constexpr uint8_t kDriverOk = VIRTIO_CONFIG_S_DRIVER_OK;
inline constexpr uint8_t kNeedsReset = VIRTIO_CONFIG_S_NEEDS_RESET;

// ISR status bits (virtio 1.2 §4.1.4.5).
inline constexpr uint8_t kIsrQueue = 0x1;
inline constexpr uint8_t kIsrConfig = VIRTIO_PCI_ISR_CONFIG;

// Common configuration registers (struct virtio_pci_common_cfg, §4.1.4.3).
#define COMMON(field) (Layout::kCommonConfig + offsetof(virtio_pci_common_cfg, field))
inline constexpr uint64_t kDeviceFeatureSelect = COMMON(device_feature_select);
inline constexpr uint64_t kDeviceFeature = COMMON(device_feature);
inline constexpr uint64_t kDriverFeatureSelect = COMMON(guest_feature_select);
inline constexpr uint64_t kDriverFeature = COMMON(guest_feature);
inline constexpr uint64_t kConfigMsixVector = COMMON(msix_config);
inline constexpr uint64_t kNumQueues = COMMON(num_queues);
inline constexpr uint64_t kDeviceStatus = COMMON(device_status);
inline constexpr uint64_t kQueueSelect = COMMON(queue_select);
inline constexpr uint64_t kQueueSizeReg = COMMON(queue_size);
inline constexpr uint64_t kQueueMsixVector = COMMON(queue_msix_vector);
inline constexpr uint64_t kQueueEnable = COMMON(queue_enable);
inline constexpr uint64_t kQueueNotifyOff = COMMON(queue_notify_off);
inline constexpr uint64_t kQueueDescLo = COMMON(queue_desc_lo);
inline constexpr uint64_t kQueueDescHi = COMMON(queue_desc_hi);
inline constexpr uint64_t kQueueAvailLo = COMMON(queue_avail_lo);
inline constexpr uint64_t kQueueAvailHi = COMMON(queue_avail_hi);
inline constexpr uint64_t kQueueUsedLo = COMMON(queue_used_lo);
inline constexpr uint64_t kQueueUsedHi = COMMON(queue_used_hi);
#undef COMMON

// Upper bound for anything the device does on its worker thread.
inline constexpr auto kTimeout = std::chrono::seconds(2);
// How long a test watches for something that must not happen.
inline constexpr auto kQuietPeriod = std::chrono::milliseconds(100);

// Polls `done` until it holds or kTimeout passes; returns its last value.
inline bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Checks that `holds` stays true for kQuietPeriod (for things that must not happen).
inline bool StaysTrue(const std::function<bool()>& holds) {
  const auto deadline = std::chrono::steady_clock::now() + kQuietPeriod;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!holds()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return holds();
}

// Records Watch calls and whether each registration is still alive. KVM would signal the
// eventfd on a matching guest write; SignalWrite does that on the test's request.
class FakeMmioWriteEvents : public MmioWriteEvents {
 public:
  struct WatchRecord {
    uint64_t address = 0;
    uint32_t length = 0;
    int event_fd = -1;
    bool live = false;
  };

  absl::StatusOr<std::unique_ptr<Registration>> Watch(uint64_t address, uint32_t length,
                                                      int event_fd) override {
    absl::MutexLock lock(&state_->mutex);
    if (!state_->error.ok()) return state_->error;
    state_->watches.push_back({address, length, event_fd, true});
    return std::make_unique<FakeRegistration>(state_, state_->watches.size() - 1);
  }

  // Every Watch that succeeded, oldest first, with its registration's state.
  std::vector<WatchRecord> watches() const {
    absl::MutexLock lock(&state_->mutex);
    return state_->watches;
  }
  std::vector<WatchRecord> live_watches() const {
    std::vector<WatchRecord> live;
    for (const WatchRecord& watch : watches()) {
      if (watch.live) live.push_back(watch);
    }
    return live;
  }
  void set_watch_error(absl::Status error) {
    absl::MutexLock lock(&state_->mutex);
    state_->error = std::move(error);
  }

  // What KVM does for a guest write that matches a live registration: signal its eventfd (the
  // write itself never reaches the bus). Returns false when no live registration matches.
  bool SignalWrite(uint64_t address, uint32_t length) {
    for (const WatchRecord& watch : live_watches()) {
      if (watch.address != address || watch.length != length) continue;
      const uint64_t one = 1;
      return ::write(watch.event_fd, &one, sizeof(one)) == sizeof(one);
    }
    return false;
  }

 private:
  // Shared with the registrations, which may outlive this object.
  struct State {
    absl::Mutex mutex;
    std::vector<WatchRecord> watches ABSL_GUARDED_BY(mutex);
    absl::Status error ABSL_GUARDED_BY(mutex);
  };

  class FakeRegistration : public Registration {
   public:
    FakeRegistration(std::shared_ptr<State> state, size_t index)
        : state_(std::move(state)), index_(index) {}
    ~FakeRegistration() override {
      absl::MutexLock lock(&state_->mutex);
      state_->watches[index_].live = false;
    }

   private:
    std::shared_ptr<State> state_;
    size_t index_;
  };

  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// An INTx line whose next deassertion can be held inside SetLevel, so a test can order another
// thread's interrupt between the device's ISR read and its lowering of the line.
class GatedIrqLine : public IrqLine {
 public:
  void SetLevel(bool asserted) override {
    absl::MutexLock lock(&mutex_);
    if (!asserted && hold_next_lower_) {
      hold_next_lower_ = false;
      lower_waiting_ = true;
      mutex_.Await(absl::Condition(&released_));
      lower_waiting_ = false;
    }
    if (asserted && !level_) ++rising_edges_;
    level_ = asserted;
  }

  void HoldNextLower() {
    absl::MutexLock lock(&mutex_);
    hold_next_lower_ = true;
    released_ = false;
  }
  bool lower_waiting() const {
    absl::MutexLock lock(&mutex_);
    return lower_waiting_;
  }
  void Release() {
    absl::MutexLock lock(&mutex_);
    released_ = true;
  }
  bool level() const {
    absl::MutexLock lock(&mutex_);
    return level_;
  }
  int rising_edges() const {
    absl::MutexLock lock(&mutex_);
    return rising_edges_;
  }

 private:
  mutable absl::Mutex mutex_;
  bool hold_next_lower_ ABSL_GUARDED_BY(mutex_) = false;
  bool lower_waiting_ ABSL_GUARDED_BY(mutex_) = false;
  bool released_ ABSL_GUARDED_BY(mutex_) = false;
  bool level_ ABSL_GUARDED_BY(mutex_) = false;
  int rising_edges_ ABSL_GUARDED_BY(mutex_) = 0;
};

inline GuestMemory CreateMemory() {
  const std::vector<GuestRegionSpec> specs = {{0, kMemorySize}};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(specs);
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

inline uint64_t FromLittleEndian(std::span<const uint8_t> bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) value |= uint64_t{bytes[i]} << (8 * i);
  return value;
}

template <size_t N>
std::array<uint8_t, N> ToLittleEndian(uint64_t value) {
  std::array<uint8_t, N> bytes;
  for (size_t i = 0; i < N; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  return bytes;
}

struct DriverOptions {
  bool msix = true;
  uint64_t features = kVersion1;
  QueueLayout queue = {.size = kQueueSize,
                       .desc_table = kDescTable,
                       .avail_ring = kAvailRing,
                       .used_ring = kUsedRing};
};

class VirtioPciFunctionTest : public ::testing::Test {
 protected:
  void SetUp() override { CreateFunction(&write_events_, &intx_); }

  void CreateFunction(MmioWriteEvents* write_events, IrqLine* intx) {
    function_.reset();
    const VirtioPciResources resources = {.memory = &memory_,
                                          .mmio_bus = &bus_,
                                          .write_events = write_events,
                                          .msi = &msi_,
                                          .intx = intx,
                                          .intx_line = kIntxLine,
                                          .bar_address = kBarAddress};
    const size_t vectors_before = msi_.allocated().size();
    absl::StatusOr<std::shared_ptr<VirtioPciFunction>> function =
        VirtioPciFunction::Create(std::make_unique<VirtioRng>(), resources);
    ASSERT_TRUE(function.ok()) << function.status();
    function_ = *std::move(function);
    ASSERT_EQ(msi_.allocated().size(), vectors_before + kTableSize);
    queue_msi_ = msi_.allocated()[vectors_before + kQueueVector];
    config_msi_ = msi_.allocated()[vectors_before + kConfigVector];
  }

  // --- Config space, as the host bridge forwards it. ---
  uint32_t ConfigRead(uint32_t offset, size_t size) {
    std::array<uint8_t, 4> bytes{};
    function_->ReadConfig(offset, std::span(bytes.data(), size));
    return static_cast<uint32_t>(FromLittleEndian(std::span(bytes.data(), size)));
  }
  uint8_t Config8(uint32_t offset) { return static_cast<uint8_t>(ConfigRead(offset, 1)); }
  uint16_t Config16(uint32_t offset) { return static_cast<uint16_t>(ConfigRead(offset, 2)); }
  uint32_t Config32(uint32_t offset) { return ConfigRead(offset, 4); }
  void ConfigWrite16(uint32_t offset, uint16_t value) {
    function_->WriteConfig(offset, ToLittleEndian<2>(value));
  }
  void ConfigWrite32(uint32_t offset, uint32_t value) {
    function_->WriteConfig(offset, ToLittleEndian<4>(value));
  }

  // Walks the capability list (PCI 3.0 §6.7); returns offsets by position.
  std::vector<uint8_t> Capabilities() {
    std::vector<uint8_t> caps;
    for (uint8_t at = Config8(PCI_CAPABILITY_LIST); at != 0 && caps.size() < 48;
         at = Config8(at + PCI_CAP_LIST_NEXT)) {
      caps.push_back(at);
    }
    return caps;
  }
  uint8_t FindCapability(uint8_t id) {
    for (uint8_t at : Capabilities()) {
      if (Config8(at + PCI_CAP_LIST_ID) == id) return at;
    }
    ADD_FAILURE() << "no capability " << int{id};
    return 0;
  }

  void EnableMemory(bool enable) {
    const uint16_t command = Config16(PCI_COMMAND);
    ConfigWrite16(PCI_COMMAND, enable ? command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
                                      : command & ~PCI_COMMAND_MEMORY);
  }
  void ProgramBar(uint64_t address) {
    ConfigWrite32(PCI_BASE_ADDRESS_0, static_cast<uint32_t>(address));
    ConfigWrite32(PCI_BASE_ADDRESS_1, static_cast<uint32_t>(address >> 32));
    bar_ = address;
  }

  // --- BAR 0 through the MMIO bus, at the address the BAR was programmed with. ---
  uint64_t BarRead(uint64_t offset, size_t size) {
    std::array<uint8_t, 8> bytes{};
    EXPECT_TRUE(bus_.Read(bar_ + offset, std::span(bytes.data(), size)))
        << "BAR 0 not mapped at " << std::hex << bar_;
    return FromLittleEndian(std::span(bytes.data(), size));
  }
  void BarWrite(uint64_t offset, size_t size, uint64_t value) {
    const std::array<uint8_t, 8> bytes = ToLittleEndian<8>(value);
    EXPECT_TRUE(bus_.Write(bar_ + offset, std::span(bytes.data(), size)))
        << "BAR 0 not mapped at " << std::hex << bar_;
  }
  bool BarMappedAt(uint64_t address) {
    std::array<uint8_t, 2> bytes{};
    return bus_.Read(address + kNumQueues, bytes) && FromLittleEndian(bytes) == 1;
  }

  uint8_t Status() { return static_cast<uint8_t>(BarRead(kDeviceStatus, 1)); }
  void SetStatus(uint8_t status) { BarWrite(kDeviceStatus, 1, status); }
  uint8_t ReadIsr() { return static_cast<uint8_t>(BarRead(Layout::kIsr, 1)); }

  void SetMsixControl(uint16_t flags) {
    const uint8_t cap = FindCapability(PCI_CAP_ID_MSIX);
    const uint16_t control = Config16(cap + PCI_MSIX_FLAGS);
    ConfigWrite16(cap + PCI_MSIX_FLAGS,
                  (control & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)) | flags);
  }
  void ProgramMsixEntry(uint16_t index, const MsiMessage& message, bool masked) {
    const uint64_t entry = Layout::kMsixTable + index * PCI_MSIX_ENTRY_SIZE;
    BarWrite(entry + PCI_MSIX_ENTRY_LOWER_ADDR, 4, static_cast<uint32_t>(message.address));
    BarWrite(entry + PCI_MSIX_ENTRY_UPPER_ADDR, 4, message.address >> 32);
    BarWrite(entry + PCI_MSIX_ENTRY_DATA, 4, message.data);
    BarWrite(entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
  }

  uint64_t DeviceFeatures() {
    BarWrite(kDeviceFeatureSelect, 4, 0);
    const uint64_t low = BarRead(kDeviceFeature, 4);
    BarWrite(kDeviceFeatureSelect, 4, 1);
    return low | BarRead(kDeviceFeature, 4) << 32;
  }
  void WriteDriverFeatures(uint64_t features) {
    BarWrite(kDriverFeatureSelect, 4, 0);
    BarWrite(kDriverFeature, 4, static_cast<uint32_t>(features));
    BarWrite(kDriverFeatureSelect, 4, 1);
    BarWrite(kDriverFeature, 4, features >> 32);
  }

  // The Linux driver's probe (virtio_dev_probe, vp_modern_find_vqs): memory decoding on, reset,
  // ACKNOWLEDGE, DRIVER, features, FEATURES_OK, MSI-X vectors, queue 0, DRIVER_OK.
  void InitDriver(const DriverOptions& options = {}) {
    EnableMemory(true);
    SetStatus(0);
    ASSERT_EQ(Status(), 0);
    SetStatus(kAcknowledge);
    SetStatus(kAcknowledge | kDriver);
    const uint64_t offered = DeviceFeatures();
    ASSERT_EQ(offered & options.features, options.features);
    WriteDriverFeatures(options.features);
    SetStatus(kAcknowledge | kDriver | kFeaturesOk);
    ASSERT_EQ(Status(), kAcknowledge | kDriver | kFeaturesOk);

    if (options.msix) {
      // pci_msix_enable: enable with the function masked, program the entries, unmask.
      SetMsixControl(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
      ProgramMsixEntry(kQueueVector, kQueueMessage, /*masked=*/true);
      ProgramMsixEntry(kConfigVector, kConfigMessage, /*masked=*/true);
      SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
      ProgramMsixEntry(kQueueVector, kQueueMessage, /*masked=*/false);
      ProgramMsixEntry(kConfigVector, kConfigMessage, /*masked=*/false);
      BarWrite(kConfigMsixVector, 2, kConfigVector);
      ASSERT_EQ(BarRead(kConfigMsixVector, 2), kConfigVector);
    }

    BarWrite(kQueueSelect, 2, 0);
    ASSERT_EQ(BarRead(kQueueSizeReg, 2), VirtioRng::kQueueSize);
    ASSERT_EQ(BarRead(kQueueEnable, 2), 0u);
    BarWrite(kQueueSizeReg, 2, options.queue.size);
    BarWrite(kQueueDescLo, 4, static_cast<uint32_t>(options.queue.desc_table));
    BarWrite(kQueueDescHi, 4, options.queue.desc_table >> 32);
    BarWrite(kQueueAvailLo, 4, static_cast<uint32_t>(options.queue.avail_ring));
    BarWrite(kQueueAvailHi, 4, options.queue.avail_ring >> 32);
    BarWrite(kQueueUsedLo, 4, static_cast<uint32_t>(options.queue.used_ring));
    BarWrite(kQueueUsedHi, 4, options.queue.used_ring >> 32);
    if (options.msix) {
      BarWrite(kQueueMsixVector, 2, kQueueVector);
      ASSERT_EQ(BarRead(kQueueMsixVector, 2), kQueueVector);
    }
    notify_offset_ = Layout::kNotify + Layout::kNotifyOffMultiplier * BarRead(kQueueNotifyOff, 2);
    BarWrite(kQueueEnable, 2, 1);
    ASSERT_EQ(BarRead(kQueueEnable, 2), 1u);
    SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
    driver_avail_idx_ = 0;
  }

  // --- Guest RAM: the driver's side of the split ring (§2.7). ---
  template <typename T>
  T ReadGuest(uint64_t gpa) {
    T value{};
    EXPECT_TRUE(memory_.Read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))).ok());
    return value;
  }
  void PutDescriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next = 0) {
    const vring_desc desc = {.addr = addr, .len = len, .flags = flags, .next = next};
    ASSERT_TRUE(memory_.WriteObject(kDescTable + sizeof(vring_desc) * index, desc).ok());
  }
  // Puts `head` in the next avail->ring slot, then publishes it through avail->idx (§2.7.13).
  void Offer(uint16_t head) {
    const uint16_t slot = driver_avail_idx_ % kQueueSize;
    ASSERT_TRUE(memory_.WriteObject<uint16_t>(kAvailRing + 4 + 2 * slot, head).ok());
    ++driver_avail_idx_;
    ASSERT_TRUE(memory_.WriteObject<uint16_t>(kAvailRing + 2, driver_avail_idx_).ok());
  }
  uint16_t UsedIdx() { return ReadGuest<uint16_t>(kUsedRing + 2); }
  vring_used_elem UsedElem(uint16_t slot) {
    return ReadGuest<vring_used_elem>(kUsedRing + 4 + sizeof(vring_used_elem) * slot);
  }
  std::vector<uint8_t> GuestBytes(uint64_t gpa, size_t length) {
    std::vector<uint8_t> bytes(length);
    EXPECT_TRUE(memory_.Read(gpa, bytes).ok());
    return bytes;
  }
  static bool AllZero(const std::vector<uint8_t>& bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
  }
  // The driver's notification: the 16-bit queue index to the queue's doorbell (§4.1.5.2).
  void Kick() { BarWrite(notify_offset_, 2, 0); }

  GuestMemory memory_ = CreateMemory();
  Bus bus_{"mmio"};
  FakeMsiAllocator msi_;
  FakeIrqLine intx_;
  GatedIrqLine gated_intx_;  // for the tests that order INTx changes between threads
  FakeMmioWriteEvents write_events_;
  // Destroyed first: it unregisters from bus_ and drops its write_events_ registrations.
  std::shared_ptr<VirtioPciFunction> function_;
  FakeMsiInterrupt* queue_msi_ = nullptr;
  FakeMsiInterrupt* config_msi_ = nullptr;
  uint64_t bar_ = kBarAddress;
  uint64_t notify_offset_ = Layout::kNotify;
  uint16_t driver_avail_idx_ = 0;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_PCI_FUNCTION_FIXTURE_H_
