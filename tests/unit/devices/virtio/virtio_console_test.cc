// Drives a VirtioConsole the way the Linux virtio_console driver does, without a transport:
// the test lays out port 0's two split queues in guest RAM by hand, activates the device with
// eventfds as doorbells and counters as interrupts, and plays the driver's side of the rings.
#include "devices/virtio/virtio_console.h"

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "devices/virtio/ring_features.h"
#include "gtest/gtest.h"
#include "vmm/base/unique_fd.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {
namespace {

// Split ring layout, restated from <linux/virtio_ring.h> (which does not compile as C++):
// struct vring_desc (§2.7.5) and its flags.
struct RingDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RingDesc) == 16);
constexpr uint16_t kNext = 1;   // VRING_DESC_F_NEXT
constexpr uint16_t kWrite = 2;  // VRING_DESC_F_WRITE
// avail->flags: the driver does not want used buffer notifications (§2.7.7).
constexpr uint16_t kAvailNoInterrupt = 1;  // VRING_AVAIL_F_NO_INTERRUPT

constexpr uint64_t kMemorySize = 1 << 20;
constexpr uint16_t kSize = 16;
constexpr uint64_t kData = 0x10000;  // buffers the test offers start here
constexpr auto kTimeout = std::chrono::seconds(5);
// How long a check that something does NOT happen waits for it.
constexpr auto kQuietPeriod = std::chrono::milliseconds(100);

std::span<const uint8_t> Bytes(std::string_view text) {
  return std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// Polls `done` until it holds or kTimeout passes; returns its last value.
bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The driver's side of one split queue in guest memory (§2.7.6, §2.7.8).
class DriverQueue {
 public:
  DriverQueue(GuestMemory& memory, uint16_t index, uint64_t base)
      : memory_(memory),
        index_(index),
        layout_{.size = kSize,
                .desc_table = base,
                .avail_ring = base + 0x1000,
                .used_ring = base + 0x2000} {
    UniqueFd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    EXPECT_TRUE(kick.valid());
    kick_ = std::move(kick);
  }

  ActiveQueue Active() {
    return {index_, layout_, kick_.get(), [this] { interrupts_.fetch_add(1); }};
  }

  void Desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    const RingDesc desc = {.addr = addr, .len = len, .flags = flags, .next = next};
    ASSERT_TRUE(memory_.WriteObject(layout_.desc_table + 16 * i, desc).ok());
  }
  // Puts `head` in the next avail->ring slot and publishes it (§2.7.13).
  void Offer(uint16_t head) {
    Write16(layout_.avail_ring + 4 + 2 * (avail_idx_ % kSize), head);
    Write16(layout_.avail_ring + 2, ++avail_idx_);
  }
  void SetAvailFlags(uint16_t flags) { Write16(layout_.avail_ring, flags); }
  // The doorbell (§4.1.5.2): what KVM's ioeventfd does on the notify write.
  void Kick() {
    const uint64_t one = 1;
    ASSERT_EQ(::write(kick_.get(), &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  }

  uint16_t UsedIdx() const { return Read<uint16_t>(layout_.used_ring + 2); }
  uint32_t UsedId(uint16_t i) const { return Read<uint32_t>(layout_.used_ring + 4 + 8 * i); }
  uint32_t UsedLen(uint16_t i) const { return Read<uint32_t>(layout_.used_ring + 8 + 8 * i); }
  // avail_event, which the device writes with VIRTIO_F_EVENT_IDX (§2.7.10).
  uint16_t AvailEvent() const { return Read<uint16_t>(layout_.used_ring + 4 + 8 * kSize); }
  bool WaitForUsed(uint16_t idx) const {
    return WaitFor([&] { return UsedIdx() == idx; });
  }
  int interrupts() const { return interrupts_.load(); }

 private:
  void Write16(uint64_t gpa, uint16_t value) { ASSERT_TRUE(memory_.WriteObject(gpa, value).ok()); }
  template <typename T>
  T Read(uint64_t gpa) const {
    T value{};
    EXPECT_TRUE(memory_.Read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))).ok());
    return value;
  }

  GuestMemory& memory_;
  const uint16_t index_;
  const QueueLayout layout_;
  UniqueFd kick_;
  uint16_t avail_idx_ = 0;
  std::atomic<int> interrupts_{0};
};

GuestMemory CreateMemory() {
  const GuestRegionSpec spec = {0, kMemorySize};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(std::span(&spec, 1));
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

class VirtioConsoleTest : public ::testing::Test {
 protected:
  ~VirtioConsoleTest() override { console_.Reset(); }  // before the queues' fds close

  void Activate(uint64_t features = 0) {
    Activation activation;
    activation.memory = &memory_;
    activation.features = features;
    activation.queues = {rx_.Active(), tx_.Active()};
    activation.report_broken = [this] { broken_.fetch_add(1); };
    ASSERT_TRUE(console_.Activate(std::move(activation)).ok());
  }

  std::string output() {
    absl::MutexLock lock(&output_mutex_);
    return output_;
  }
  bool WaitForOutput(std::string_view expected) {
    return WaitFor([&] { return output() == expected; });
  }

  std::string GuestString(uint64_t gpa, size_t len) {
    std::string text(len, '\0');
    EXPECT_TRUE(memory_.Read(gpa, std::span(reinterpret_cast<uint8_t*>(text.data()), len)).ok());
    return text;
  }
  void WriteGuest(uint64_t gpa, std::string_view text) {
    ASSERT_TRUE(memory_.Write(gpa, Bytes(text)).ok());
  }
  // Offers one transmit chain holding `text` in a single descriptor.
  void Transmit(uint16_t desc, uint64_t gpa, std::string_view text) {
    WriteGuest(gpa, text);
    tx_.Desc(desc, gpa, static_cast<uint32_t>(text.size()), 0);
    tx_.Offer(desc);
  }
  // Offers one receive chain of `len` writable bytes in a single descriptor.
  void PostReceive(uint16_t desc, uint64_t gpa, uint32_t len) {
    rx_.Desc(desc, gpa, len, kWrite);
    rx_.Offer(desc);
  }

  GuestMemory memory_ = CreateMemory();
  DriverQueue rx_{memory_, VirtioConsole::kReceiveQueue, 0x1000};
  DriverQueue tx_{memory_, VirtioConsole::kTransmitQueue, 0x4000};
  std::atomic<int> broken_{0};
  absl::Mutex output_mutex_;
  std::string output_ ABSL_GUARDED_BY(output_mutex_);
  VirtioConsole console_{[this](std::span<const uint8_t> bytes) {
    absl::MutexLock lock(&output_mutex_);
    output_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }};
};

// Identity and configuration

TEST_F(VirtioConsoleTest, IdentifiesAsSinglePortConsoleWithEmergencyWrite) {
  EXPECT_EQ(console_.device_type(), VIRTIO_ID_CONSOLE);
  EXPECT_EQ(console_.pci_class_code(), 0x078000u);
  EXPECT_EQ(console_.features(), uint64_t{1} << VIRTIO_CONSOLE_F_EMERG_WRITE);
  EXPECT_EQ(console_.queue_max_sizes(), (std::vector<uint16_t>{64, 64}));
  EXPECT_EQ(console_.config_size(), 12u);
}

TEST_F(VirtioConsoleTest, ConfigReadsAsZero) {
  std::vector<uint8_t> config(12, 0xaa);
  console_.ReadConfig(0, config);
  EXPECT_EQ(config, std::vector<uint8_t>(12, 0));
  std::vector<uint8_t> emerg_wr(4, 0xaa);
  console_.WriteConfig(8, std::vector<uint8_t>{'x', 0, 0, 0});
  console_.ReadConfig(8, emerg_wr);
  EXPECT_EQ(emerg_wr, std::vector<uint8_t>(4, 0));  // write-only
}

TEST_F(VirtioConsoleTest, EmergencyWriteOutputsLowByteWithoutDriver) {
  console_.WriteConfig(8, std::vector<uint8_t>{'h', 0, 0, 0});  // 32-bit, as Linux writes it
  console_.WriteConfig(8, std::vector<uint8_t>{'i'});           // 8-bit
  console_.WriteConfig(6, std::vector<uint8_t>{0, 0, '!', 0});  // straddling: byte at offset 8
  console_.WriteConfig(0, std::vector<uint8_t>{'c', 0});        // cols: read-only, ignored
  console_.WriteConfig(9, std::vector<uint8_t>{'z'});           // not the low byte
  EXPECT_EQ(output(), "hi!");
}

// Transmit (guest -> host)

TEST_F(VirtioConsoleTest, TransmitsBytesInOrderAcrossDescriptorsAndChains) {
  Activate();
  // Chain 0: "hel" + "lo " in two descriptors; chain 2: "world".
  WriteGuest(kData, "hel");
  WriteGuest(kData + 0x100, "lo ");
  tx_.Desc(0, kData, 3, kNext, 1);
  tx_.Desc(1, kData + 0x100, 3, 0);
  tx_.Offer(0);
  Transmit(2, kData + 0x200, "world");
  tx_.Kick();

  ASSERT_TRUE(tx_.WaitForUsed(2));
  EXPECT_EQ(output(), "hello world");
  EXPECT_EQ(tx_.UsedId(0), 0u);
  EXPECT_EQ(tx_.UsedId(1), 2u);
  EXPECT_EQ(tx_.UsedLen(0), 0u);  // the device wrote nothing into them
  EXPECT_EQ(tx_.UsedLen(1), 0u);
  ASSERT_TRUE(WaitFor([&] { return tx_.interrupts() == 1; }));  // one per batch

  Transmit(3, kData + 0x300, "\r\n");
  tx_.Kick();
  ASSERT_TRUE(tx_.WaitForUsed(3));
  EXPECT_EQ(output(), "hello world\r\n");
  EXPECT_TRUE(WaitFor([&] { return tx_.interrupts() == 2; }));
  EXPECT_EQ(broken_.load(), 0);
}

TEST_F(VirtioConsoleTest, TransmitHonoursNoInterruptFlag) {
  Activate();
  tx_.SetAvailFlags(kAvailNoInterrupt);
  Transmit(0, kData, "quiet");
  tx_.Kick();
  ASSERT_TRUE(tx_.WaitForUsed(1));
  EXPECT_TRUE(WaitForOutput("quiet"));
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(tx_.interrupts(), 0);
}

// Receive (host -> guest)

TEST_F(VirtioConsoleTest, InputSentBeforeActivationArrivesOnceDriverPostsBuffers) {
  ASSERT_EQ(console_.SendInput(Bytes("ls\r")), 3u);
  Activate();
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(rx_.UsedIdx(), 0);  // no buffer yet: the input waits

  PostReceive(0, kData, 64);
  rx_.Kick();
  ASSERT_TRUE(rx_.WaitForUsed(1));
  EXPECT_EQ(rx_.UsedId(0), 0u);
  ASSERT_EQ(rx_.UsedLen(0), 3u);
  EXPECT_EQ(GuestString(kData, 3), "ls\r");
  EXPECT_TRUE(WaitFor([&] { return rx_.interrupts() == 1; }));
}

TEST_F(VirtioConsoleTest, InputWakesWorkerWhenBuffersAreWaiting) {
  Activate();
  PostReceive(0, kData, 64);
  rx_.Kick();
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(rx_.UsedIdx(), 0);  // a buffer stays with the device until there is input

  ASSERT_EQ(console_.SendInput(Bytes("y")), 1u);
  ASSERT_TRUE(rx_.WaitForUsed(1));
  EXPECT_EQ(rx_.UsedLen(0), 1u);
  EXPECT_EQ(GuestString(kData, 1), "y");
  EXPECT_TRUE(WaitFor([&] { return rx_.interrupts() == 1; }));
}

TEST_F(VirtioConsoleTest, InputLargerThanOneBufferSpansSeveralChains) {
  Activate();
  // A two-descriptor chain (2 + 2 bytes), then two single 4-byte buffers.
  rx_.Desc(0, kData, 2, kWrite | kNext, 1);
  rx_.Desc(1, kData + 0x100, 2, kWrite);
  rx_.Offer(0);
  PostReceive(2, kData + 0x200, 4);
  PostReceive(3, kData + 0x300, 4);
  rx_.Kick();

  ASSERT_EQ(console_.SendInput(Bytes("0123456789")), 10u);
  ASSERT_TRUE(rx_.WaitForUsed(3));
  EXPECT_EQ(rx_.UsedId(0), 0u);
  EXPECT_EQ(rx_.UsedLen(0), 4u);
  EXPECT_EQ(rx_.UsedId(1), 2u);
  EXPECT_EQ(rx_.UsedLen(1), 4u);
  EXPECT_EQ(rx_.UsedId(2), 3u);
  EXPECT_EQ(rx_.UsedLen(2), 2u);
  EXPECT_EQ(GuestString(kData, 2) + GuestString(kData + 0x100, 2) + GuestString(kData + 0x200, 4) +
                GuestString(kData + 0x300, 2),
            "0123456789");
  EXPECT_GE(rx_.interrupts(), 1);
}

TEST_F(VirtioConsoleTest, AsksForKickWhenBuffersRunOutWithEventIdx) {
  Activate(uint64_t{1} << kRingEventIdxFeature);
  PostReceive(0, kData, 4);
  rx_.Kick();
  ASSERT_EQ(console_.SendInput(Bytes("abcdefgh")), 8u);
  ASSERT_TRUE(rx_.WaitForUsed(1));
  EXPECT_EQ(GuestString(kData, 4), "abcd");
  // Input still waits: the device must have published avail_event = 1 so that the driver
  // kicks for its next buffer (§2.7.10); a driver honouring EVENT_IDX kicks only then.
  ASSERT_TRUE(WaitFor([&] { return rx_.AvailEvent() == 1; }));

  PostReceive(1, kData + 0x100, 4);
  rx_.Kick();
  ASSERT_TRUE(rx_.WaitForUsed(2));
  EXPECT_EQ(rx_.UsedLen(1), 4u);
  EXPECT_EQ(GuestString(kData + 0x100, 4), "efgh");
}

TEST_F(VirtioConsoleTest, SendInputAppliesBackpressureWhenBufferIsFull) {
  const std::string big(VirtioConsole::kInputCapacity + 100, 'a');
  EXPECT_EQ(console_.SendInput(Bytes(big)), VirtioConsole::kInputCapacity);
  EXPECT_EQ(console_.SendInput(Bytes("b")), 0u);

  // The guest takes 16 bytes: exactly that much room opens up, and the order is kept.
  Activate();
  PostReceive(0, kData, 16);
  rx_.Kick();
  ASSERT_TRUE(rx_.WaitForUsed(1));
  EXPECT_EQ(rx_.UsedLen(0), 16u);
  EXPECT_EQ(console_.SendInput(Bytes(std::string(20, 'c'))), 16u);
  EXPECT_EQ(console_.SendInput(Bytes("d")), 0u);
}

// Broken drivers

TEST_F(VirtioConsoleTest, MalformedTransmitChainReportsBroken) {
  Activate();
  tx_.Desc(0, kData, 4, kNext, kSize);  // next past the table
  tx_.Offer(0);
  tx_.Kick();
  ASSERT_TRUE(WaitFor([&] { return broken_.load() == 1; }));
  EXPECT_EQ(tx_.UsedIdx(), 0);

  // The device stays stopped until reset: a good chain behind it is not served.
  Transmit(1, kData + 0x100, "late");
  tx_.Kick();
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(output(), "");
  EXPECT_EQ(broken_.load(), 1);
}

TEST_F(VirtioConsoleTest, WritableBufferInTransmitqReportsBroken) {
  Activate();
  tx_.Desc(0, kData, 4, kWrite);
  tx_.Offer(0);
  tx_.Kick();
  ASSERT_TRUE(WaitFor([&] { return broken_.load() == 1; }));
  EXPECT_EQ(output(), "");
}

TEST_F(VirtioConsoleTest, ReadableBufferInReceiveqReportsBroken) {
  Activate();
  rx_.Desc(0, kData, 4, 0);
  rx_.Offer(0);
  rx_.Kick();
  ASSERT_EQ(console_.SendInput(Bytes("x")), 1u);
  ASSERT_TRUE(WaitFor([&] { return broken_.load() == 1; }));
  EXPECT_EQ(rx_.UsedIdx(), 0);
}

// Reset

TEST_F(VirtioConsoleTest, ResetStopsWorkerAndKeepsPendingInput) {
  Activate();
  Transmit(0, kData, "before");
  tx_.Kick();
  ASSERT_TRUE(WaitForOutput("before"));
  console_.Reset();

  Transmit(1, kData + 0x100, "after");
  tx_.Kick();
  PostReceive(0, kData + 0x200, 16);
  rx_.Kick();
  ASSERT_EQ(console_.SendInput(Bytes("kept")), 4u);
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(output(), "before");
  EXPECT_EQ(tx_.UsedIdx(), 1);
  EXPECT_EQ(rx_.UsedIdx(), 0);

  // A driver that sets the device up again (fresh rings) gets the input typed meanwhile.
  DriverQueue rx2(memory_, VirtioConsole::kReceiveQueue, 0x7000);
  Activation activation;
  activation.memory = &memory_;
  activation.queues = {rx2.Active()};  // the transmitq left disabled
  activation.report_broken = [this] { broken_.fetch_add(1); };
  ASSERT_TRUE(console_.Activate(std::move(activation)).ok());
  rx2.Desc(0, kData + 0x300, 16, kWrite);
  rx2.Offer(0);
  rx2.Kick();
  ASSERT_TRUE(rx2.WaitForUsed(1));
  EXPECT_EQ(rx2.UsedLen(0), 4u);
  EXPECT_EQ(GuestString(kData + 0x300, 4), "kept");
  console_.Reset();  // before rx2's kick fd closes
}

TEST_F(VirtioConsoleTest, ActivationWithoutQueuesIsHarmless) {
  Activation activation;
  activation.memory = &memory_;
  ASSERT_TRUE(console_.Activate(std::move(activation)).ok());
  EXPECT_EQ(console_.SendInput(Bytes("x")), 1u);
  console_.Reset();
  console_.Reset();  // safe when not active
}

}  // namespace
}  // namespace minivmm::virtio
