// A driver that keeps its ring full (from another vCPU, kicks being eventfds, it needs no exit
// to do so) must get bounded rounds from the device, and must not keep a reset, and with it
// the stop of the VM, waiting for the device's lock.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "devices/virtio/queue_server.h"
#include "devices/virtio/single_queue_device.h"
#include "devices/virtio/virtqueue.h"
#include "gtest/gtest.h"
#include "vmm/base/event_fd.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {
namespace {

constexpr uint64_t kMemorySize = 1 << 20;
constexpr uint16_t kSize = 8;
constexpr QueueLayout kLayout = {
    .size = kSize, .desc_table = 0x1000, .avail_ring = 0x2000, .used_ring = 0x3000};
constexpr uint64_t kBuffer = 0x10000;

GuestMemory CreateMemory() {
  const std::vector<GuestRegionSpec> specs = {{0, kMemorySize}};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(specs);
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

// The driver's side of a ring whose every avail slot names descriptor 0, a writable buffer:
// publishing avail->idx one further offers one more chain.
class FloodingDriver {
 public:
  explicit FloodingDriver(GuestMemory& memory) : memory_(memory) {
    const vring_desc desc = {.addr = kBuffer, .len = 16, .flags = VRING_DESC_F_WRITE, .next = 0};
    EXPECT_TRUE(memory_.WriteObject(kLayout.desc_table, desc).ok());
    for (uint16_t slot = 0; slot < kSize; ++slot) {
      EXPECT_TRUE(memory_.WriteObject<uint16_t>(kLayout.avail_ring + 4 + 2 * slot, 0).ok());
    }
  }
  // Keeps the ring full: as many chains available as the device has not used yet, up to kSize.
  void Refill() {
    uint16_t used = 0;
    EXPECT_TRUE(
        memory_.Read(kLayout.used_ring + 2, std::span(reinterpret_cast<uint8_t*>(&used), 2)).ok());
    EXPECT_TRUE(
        memory_.WriteObject<uint16_t>(kLayout.avail_ring + 2, uint16_t(used + kSize)).ok());
  }

 private:
  GuestMemory& memory_;
};

TEST(ServeQueueTest, RoundEndsAfterItsBudgetWhileTheDriverKeepsTheRingFull) {
  GuestMemory memory = CreateMemory();
  FloodingDriver driver(memory);
  driver.Refill();
  SplitVirtqueue queue(kLayout, /*event_idx=*/false, /*indirect=*/false);
  int interrupts = 0;
  const ActiveQueue active = {.index = 0, .layout = kLayout, .kick_fd = -1,
                              .signal_used = [&] { ++interrupts; }};
  int handled = 0;
  // The handler refills the ring as a driver on another CPU would, so it is never empty. The
  // give-up after many chains only keeps an unbounded loop from hanging the test.
  const Round round = ServeQueue(queue, memory, active, "test", /*max_chains=*/5,
                                 [&](const DescriptorChain&) -> std::optional<uint32_t> {
                                   if (++handled > 1000) return std::nullopt;
                                   driver.Refill();
                                   return 16;
                                 });
  EXPECT_EQ(round, Round::kMore);
  EXPECT_EQ(handled, 5);
  EXPECT_EQ(interrupts, 1);  // the chains used so far are not held back from the driver
}

TEST(ServeQueueTest, RoundEndsDoneWhenTheRingRunsEmpty) {
  GuestMemory memory = CreateMemory();
  FloodingDriver driver(memory);
  driver.Refill();
  SplitVirtqueue queue(kLayout, /*event_idx=*/false, /*indirect=*/false);
  const ActiveQueue active = {.index = 0, .layout = kLayout, .kick_fd = -1, .signal_used = [] {}};
  int handled = 0;
  const Round round = ServeQueue(queue, memory, active, "test", /*max_chains=*/100,
                                 [&](const DescriptorChain&) -> std::optional<uint32_t> {
                                   ++handled;
                                   return 16;
                                 });
  EXPECT_EQ(round, Round::kDone);
  EXPECT_EQ(handled, kSize);
}

// A device whose every request refills the ring: the driver never lets it run dry.
class FloodedDevice : public SingleQueueDevice {
 public:
  explicit FloodedDevice(FloodingDriver* driver) : driver_(driver) {}
  ~FloodedDevice() override { Reset(); }
  std::string_view Name() const override { return "flooded"; }
  uint16_t device_type() const override { return 4; }
  uint32_t pci_class_code() const override { return 0; }
  uint64_t features() const override { return 0; }
  std::vector<uint16_t> queue_max_sizes() const override { return {kSize}; }
  size_t config_size() const override { return 0; }
  void ReadConfig(uint64_t, std::span<uint8_t>) override {}

  void StopFlooding() { flooding_.store(false); }
  int handled() const { return handled_.load(); }

 protected:
  std::optional<uint32_t> HandleChain(GuestMemory&, const DescriptorChain&) override {
    handled_.fetch_add(1);
    if (flooding_.load()) driver_->Refill();
    return 16;
  }

 private:
  FloodingDriver* driver_;
  std::atomic<bool> flooding_{true};
  std::atomic<int> handled_{0};
};

TEST(SingleQueueDeviceTest, ResetReturnsWhileTheDriverKeepsTheRingFull) {
  GuestMemory memory = CreateMemory();
  FloodingDriver driver(memory);
  driver.Refill();
  absl::StatusOr<EventFd> kick = EventFd::Create("test kick");
  ASSERT_TRUE(kick.ok()) << kick.status();
  FloodedDevice device(&driver);
  Activation activation;
  activation.memory = &memory;
  activation.queues.push_back(
      {.index = 0, .layout = kLayout, .kick_fd = kick->fd(), .signal_used = [] {}});
  ASSERT_TRUE(device.Activate(std::move(activation)).ok());
  ASSERT_TRUE(kick->Signal().ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (device.handled() < 100 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_GE(device.handled(), 100) << "the worker did not start serving";

  // What a vCPU writing device_status = 0 does, while the flood goes on.
  std::atomic<bool> reset_returned{false};
  std::thread resetter([&] {
    device.Reset();
    reset_returned.store(true);
  });
  const auto reset_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!reset_returned.load() && std::chrono::steady_clock::now() < reset_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const bool returned_while_flooded = reset_returned.load();
  device.StopFlooding();  // lets an unbounded round end, so the test ends either way
  resetter.join();
  EXPECT_TRUE(returned_while_flooded) << "Reset waited for the flooded worker";

  // Reset stopped the worker: further kicks are not served.
  const int handled_after_reset = device.handled();
  ASSERT_TRUE(kick->Signal().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(device.handled(), handled_after_reset);
}

}  // namespace
}  // namespace minivmm::virtio
