#include "devices/virtio/virtio_net.h"

// Only the constants and structs; the legacy helpers do not compile as C++.
#define VIRTIO_RING_NO_LEGACY
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "devices/virtio/ring_features.h"
#include "devices/virtio/tap.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/guest_memory.h"
#include "vmm/unique_fd.h"

namespace minivmm::virtio {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uint64_t kMemorySize = 1 << 20;
constexpr uint16_t kSize = 16;
constexpr uint64_t kIndirectTable = 0x8000;
constexpr uint64_t kDataStart = 0x10000;
constexpr std::array<uint8_t, 6> kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint64_t kVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;
constexpr uint64_t kGuestCsum = uint64_t{1} << kNetFeatureGuestCsum;
constexpr auto kTimeout = std::chrono::seconds(5);

uint64_t Bit(int bit) { return uint64_t{1} << bit; }

// The test's end of a socketpair as the device's backend; records the offloads it is given.
class SocketBackend : public NetBackend {
 public:
  SocketBackend(UniqueFd fd, std::vector<unsigned>* offloads)
      : fd_(std::move(fd)), offloads_(offloads) {}
  int fd() const override { return fd_.get(); }
  absl::Status SetOffloads(unsigned tun_flags) override {
    offloads_->push_back(tun_flags);
    return absl::OkStatus();
  }
  std::string_view name() const override { return "test-socket"; }

 private:
  UniqueFd fd_;
  std::vector<unsigned>* offloads_;
};

// A frame as the backend carries it: header, then `payload_size` bytes counting up from `seed`.
std::vector<uint8_t> MakeFrame(size_t payload_size, uint8_t seed, uint8_t flags = 0) {
  std::vector<uint8_t> frame(kVirtioNetHeaderSize + payload_size);
  frame[kVirtioNetHeaderFlagsOffset] = flags;
  for (size_t i = 0; i < payload_size; ++i) {
    frame[kVirtioNetHeaderSize + i] = static_cast<uint8_t>(seed + i);
  }
  return frame;
}

// The driver's side of one queue, laid out by hand in guest memory.
struct DriverQueue {
  QueueLayout layout;
  UniqueFd kick;
  UniqueFd interrupt;
  uint16_t avail_idx = 0;
  uint16_t next_desc = 0;
};

struct Buffer {
  uint64_t address;
  uint32_t length;
  bool writable;
};

class VirtioNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    device_fd_ = fds[0];
    peer_.Reset(fds[1]);
    device_ = std::make_unique<VirtioNet>(
        std::make_unique<SocketBackend>(UniqueFd(fds[0]), &offloads_), kMac);
    broken_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    rx_.layout = {.size = kSize, .desc_table = 0x1000, .avail_ring = 0x2000, .used_ring = 0x3000};
    tx_.layout = {.size = kSize, .desc_table = 0x4000, .avail_ring = 0x5000, .used_ring = 0x6000};
  }
  void TearDown() override { device_->Reset(); }

  absl::Status Activate(uint64_t features) {
    Activation activation;
    activation.memory = &memory_;
    activation.features = features | kVersion1;
    for (auto [index, queue] :
         {std::pair{VirtioNet::kReceiveQueue, &rx_}, std::pair{VirtioNet::kTransmitQueue, &tx_}}) {
      queue->kick.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      queue->interrupt.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      const int interrupt = queue->interrupt.get();
      activation.queues.push_back({.index = index,
                                   .layout = queue->layout,
                                   .kick_fd = queue->kick.get(),
                                   .signal_used = [interrupt] { Signal(interrupt); }});
    }
    const int broken = broken_.get();
    activation.report_broken = [broken] { Signal(broken); };
    return device_->Activate(std::move(activation));
  }

  static void Signal(int event_fd) {
    const uint64_t one = 1;
    ASSERT_EQ(::write(event_fd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  }

  // Guest memory for a buffer of `length` bytes (never reused within a test).
  uint64_t Allocate(uint32_t length) {
    const uint64_t address = next_data_;
    next_data_ += (length + 15) & ~15u;
    return address;
  }

  // Writes the chain's descriptors and makes it available (§2.7.13); returns its head.
  uint16_t Offer(DriverQueue& queue, const std::vector<Buffer>& buffers) {
    const uint16_t size = queue.layout.size;
    const uint16_t head = queue.next_desc;
    for (size_t i = 0; i < buffers.size(); ++i) {
      const uint16_t index = (head + i) % size;
      const bool last = i + 1 == buffers.size();
      const vring_desc desc = {
          .addr = buffers[i].address,
          .len = buffers[i].length,
          .flags = static_cast<uint16_t>((buffers[i].writable ? VRING_DESC_F_WRITE : 0) |
                                         (last ? 0 : VRING_DESC_F_NEXT)),
          .next = static_cast<uint16_t>((index + 1) % size)};
      EXPECT_TRUE(memory_.WriteObject(queue.layout.desc_table + 16 * index, desc).ok());
    }
    queue.next_desc = (head + buffers.size()) % size;
    Write16(queue.layout.avail_ring + 4 + 2 * (queue.avail_idx % size), head);
    Write16(queue.layout.avail_ring + 2, ++queue.avail_idx);
    return head;
  }
  // A transmit chain: each piece of `frame` in its own readable descriptor.
  uint16_t OfferFrame(const std::vector<uint8_t>& frame, const std::vector<size_t>& pieces) {
    std::vector<Buffer> buffers;
    size_t offset = 0;
    for (size_t piece : pieces) {
      const uint64_t address = Allocate(piece);
      EXPECT_TRUE(memory_.Write(address, std::span(frame).subspan(offset, piece)).ok());
      buffers.push_back({address, static_cast<uint32_t>(piece), false});
      offset += piece;
    }
    EXPECT_EQ(offset, frame.size());
    return Offer(tx_, buffers);
  }
  void Kick(DriverQueue& queue) { Signal(queue.kick.get()); }

  void Write16(uint64_t gpa, uint16_t value) { EXPECT_TRUE(memory_.WriteObject(gpa, value).ok()); }
  template <typename T>
  T ReadGuest(uint64_t gpa) {
    T value{};
    EXPECT_TRUE(memory_.Read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))).ok());
    return value;
  }
  std::vector<uint8_t> ReadBytes(uint64_t gpa, size_t length) {
    std::vector<uint8_t> bytes(length);
    EXPECT_TRUE(memory_.Read(gpa, bytes).ok());
    return bytes;
  }
  uint16_t UsedIdx(const DriverQueue& queue) {
    return ReadGuest<uint16_t>(queue.layout.used_ring + 2);
  }
  vring_used_elem Used(const DriverQueue& queue, uint16_t i) {
    return ReadGuest<vring_used_elem>(queue.layout.used_ring + 4 + 8 * (i % queue.layout.size));
  }

  static bool WaitReadable(int fd, std::chrono::milliseconds timeout) {
    pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }
  // Waits until the device has used at least `count` chains of the queue in all.
  bool WaitUsed(DriverQueue& queue, uint16_t count) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (WaitReadable(queue.interrupt.get(), std::chrono::milliseconds(10))) {
        uint64_t n;
        (void)!::read(queue.interrupt.get(), &n, sizeof(n));
      }
      if (UsedIdx(queue) >= count) return true;
    }
    return false;
  }
  bool WaitBroken() {
    return WaitReadable(broken_.get(),
                        std::chrono::duration_cast<std::chrono::milliseconds>(kTimeout));
  }

  void SendFromPeer(const std::vector<uint8_t>& frame) {
    ASSERT_EQ(::send(peer_.get(), frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()));
  }

  GuestMemory memory_ = [] {
    const std::vector<GuestRegionSpec> ram = {{0, kMemorySize}};
    absl::StatusOr<GuestMemory> memory = GuestMemory::Create(ram);
    EXPECT_TRUE(memory.ok()) << memory.status();
    return std::move(*memory);
  }();
  std::vector<unsigned> offloads_;
  int device_fd_ = -1;  // owned by the device's backend
  UniqueFd peer_;
  UniqueFd broken_;
  DriverQueue rx_;
  DriverQueue tx_;
  uint64_t next_data_ = kDataStart;
  std::unique_ptr<VirtioNet> device_;
};

// Features and configuration

TEST_F(VirtioNetTest, OffersTapOffloadsMacAndStatusButNoMergeableBuffersOrControlQueue) {
  EXPECT_EQ(device_->device_type(), VIRTIO_ID_NET);
  EXPECT_EQ(device_->pci_class_code(), 0x020000u);
  EXPECT_THAT(device_->queue_max_sizes(), ElementsAre(256, 256));
  const uint64_t features = device_->features();
  for (int bit : {kNetFeatureCsum, kNetFeatureGuestCsum, kNetFeatureMac, kNetFeatureGuestTso4,
                  kNetFeatureGuestTso6, kNetFeatureGuestEcn, kNetFeatureHostTso4,
                  kNetFeatureHostTso6, kNetFeatureHostEcn, kNetFeatureStatus}) {
    EXPECT_TRUE(features & Bit(bit)) << "bit " << bit;
  }
  for (int bit : {kNetFeatureMrgRxbuf, kNetFeatureCtrlVq, kNetFeatureMq}) {
    EXPECT_FALSE(features & Bit(bit)) << "bit " << bit;
  }
}

TEST_F(VirtioNetTest, ConfigHasMacLinkUpAndOneQueuePair) {
  ASSERT_EQ(device_->config_size(), 10u);
  std::array<uint8_t, 16> config;
  config.fill(0xaa);
  device_->ReadConfig(0, config);
  EXPECT_THAT(config, ElementsAre(0x52, 0x54, 0x00, 0x12, 0x34, 0x56,  // mac
                                  1, 0,                                // status: LINK_UP
                                  1, 0,                                // max_virtqueue_pairs
                                  0, 0, 0, 0, 0, 0));                  // not exposed
  std::array<uint8_t, 2> status;
  device_->ReadConfig(6, status);
  EXPECT_THAT(status, ElementsAre(1, 0));
  device_->ReadConfig(64, status);
  EXPECT_THAT(status, ElementsAre(0, 0));
}

TEST(TunOffloadsTest, FollowWhatTheGuestCanReceive) {
  const uint64_t csum = Bit(kNetFeatureGuestCsum);
  const uint64_t tso4 = Bit(kNetFeatureGuestTso4);
  const uint64_t tso6 = Bit(kNetFeatureGuestTso6);
  const uint64_t ecn = Bit(kNetFeatureGuestEcn);
  EXPECT_EQ(TunOffloadsFor(0), 0u);
  // Host-side (transmit) offloads are not the tap's business.
  EXPECT_EQ(TunOffloadsFor(Bit(kNetFeatureCsum) | Bit(kNetFeatureHostTso4)), 0u);
  EXPECT_EQ(TunOffloadsFor(csum), unsigned{TUN_F_CSUM});
  EXPECT_EQ(TunOffloadsFor(csum | tso4), unsigned{TUN_F_CSUM | TUN_F_TSO4});
  EXPECT_EQ(TunOffloadsFor(csum | tso6 | ecn), unsigned{TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN});
  // Dependencies the driver broke (§5.1.3.1) are not passed on: TUNSETOFFLOAD would refuse.
  EXPECT_EQ(TunOffloadsFor(tso4 | tso6), 0u);
  EXPECT_EQ(TunOffloadsFor(csum | ecn), unsigned{TUN_F_CSUM});
}

TEST_F(VirtioNetTest, SetsBackendOffloadsOnActivationAndClearsThemOnReset) {
  ASSERT_TRUE(Activate(kGuestCsum | Bit(kNetFeatureGuestTso4) | Bit(kNetFeatureGuestTso6) |
                       Bit(kNetFeatureGuestEcn) | Bit(kNetFeatureHostTso4))
                  .ok());
  EXPECT_THAT(offloads_, ElementsAre(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN));
  device_->Reset();
  EXPECT_THAT(offloads_, ElementsAre(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN, 0u));
  device_->Reset();  // not active: nothing more
  EXPECT_EQ(offloads_.size(), 2u);
}

// Transmit

TEST_F(VirtioNetTest, TransmitsChainAsOneFrameWithItsHeader) {
  ASSERT_TRUE(Activate(0).ok());
  const std::vector<uint8_t> frame = MakeFrame(100, 7, kVirtioNetHeaderNeedsCsum);
  // The header split across descriptors, as a driver may (§2.6.4).
  const uint16_t head = OfferFrame(frame, {5, 7, 40, 60});
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, 1));
  EXPECT_EQ(Used(tx_, 0).id, head);
  EXPECT_EQ(Used(tx_, 0).len, 0u);  // the device wrote nothing
  std::vector<uint8_t> received(2048);
  const ssize_t n = ::recv(peer_.get(), received.data(), received.size(), MSG_DONTWAIT);
  ASSERT_EQ(n, static_cast<ssize_t>(frame.size()));
  received.resize(n);
  EXPECT_EQ(received, frame);
  EXPECT_EQ(device_->counters().tx_frames, 1u);
}

TEST_F(VirtioNetTest, TransmitsEveryChainOfABatch) {
  ASSERT_TRUE(Activate(0).ok());
  for (uint8_t i = 0; i < 5; ++i) OfferFrame(MakeFrame(60 + i, i), {72u + i});
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, 5));
  for (uint8_t i = 0; i < 5; ++i) {
    std::vector<uint8_t> received(2048);
    const ssize_t n = ::recv(peer_.get(), received.data(), received.size(), MSG_DONTWAIT);
    ASSERT_EQ(n, 72 + i);
    received.resize(n);
    EXPECT_EQ(received, MakeFrame(60 + i, i));
  }
}

TEST_F(VirtioNetTest, TransmitChainShorterThanTheHeaderBreaksTheDevice) {
  ASSERT_TRUE(Activate(0).ok());
  OfferFrame(std::vector<uint8_t>(8), {8});
  Kick(tx_);
  ASSERT_TRUE(WaitBroken());
  EXPECT_EQ(UsedIdx(tx_), 0);
  // Broken until reset: a good frame after it is not sent.
  OfferFrame(MakeFrame(60, 0), {72});
  Kick(tx_);
  EXPECT_FALSE(WaitReadable(peer_.get(), std::chrono::milliseconds(100)));
}

TEST_F(VirtioNetTest, TransmitChainWithWritableBufferBreaksTheDevice) {
  ASSERT_TRUE(Activate(0).ok());
  const uint64_t header = Allocate(12);
  const uint64_t reply = Allocate(16);
  Offer(tx_, {{header, 12, false}, {reply, 16, true}});
  Kick(tx_);
  ASSERT_TRUE(WaitBroken());
  EXPECT_FALSE(WaitReadable(peer_.get(), std::chrono::milliseconds(50)));
}

TEST_F(VirtioNetTest, DropsTransmittedFramesWhenTheBackendIsFull) {
  // The smallest send buffer holds a couple of 1.5 KB frames; the peer reads none.
  const int small = 1;
  ASSERT_EQ(::setsockopt(device_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  ASSERT_TRUE(Activate(0).ok());
  constexpr int kFrames = 10;
  for (int i = 0; i < kFrames; ++i) OfferFrame(MakeFrame(1500, i), {1512});
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, kFrames));  // every chain goes back, sent or not
  const NetCounters counters = device_->counters();
  EXPECT_GT(counters.tx_frames, 0u);
  EXPECT_GT(counters.tx_dropped, 0u);
  EXPECT_EQ(counters.tx_frames + counters.tx_dropped, uint64_t{kFrames});
  EXPECT_FALSE(WaitReadable(broken_.get(), std::chrono::milliseconds(0)));
}

TEST_F(VirtioNetTest, DropsTransmitChainWithMorePiecesThanOneWritevTakes) {
  ASSERT_TRUE(Activate(Bit(kRingIndirectDescFeature)).ok());
  // One indirect descriptor (§2.7.5.3) pointing at a header and IOV_MAX one-byte pieces.
  constexpr uint16_t kPieces = IOV_MAX + 1;
  const uint64_t header = Allocate(12);
  const uint64_t payload = Allocate(kPieces);
  for (uint16_t i = 0; i < kPieces; ++i) {
    const bool last = i + 1 == kPieces;
    const vring_desc desc = {.addr = i == 0 ? header : payload + i,
                             .len = i == 0 ? 12u : 1u,
                             .flags = static_cast<uint16_t>(last ? 0 : VRING_DESC_F_NEXT),
                             .next = static_cast<uint16_t>(i + 1)};
    ASSERT_TRUE(memory_.WriteObject(kIndirectTable + 16 * i, desc).ok());
  }
  const vring_desc indirect = {
      .addr = kIndirectTable, .len = 16u * kPieces, .flags = VRING_DESC_F_INDIRECT, .next = 0};
  ASSERT_TRUE(memory_.WriteObject(tx_.layout.desc_table, indirect).ok());
  Write16(tx_.layout.avail_ring + 4, 0);
  Write16(tx_.layout.avail_ring + 2, ++tx_.avail_idx);
  tx_.next_desc = 1;
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, 1));
  EXPECT_EQ(device_->counters().tx_errors, 1u);
  // The device still works.
  OfferFrame(MakeFrame(60, 1), {72});
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, 2));
  EXPECT_EQ(device_->counters().tx_frames, 1u);
}

// Receive

TEST_F(VirtioNetTest, ReceivesFrameIntoGuestBufferWithNumBuffersOne) {
  ASSERT_TRUE(Activate(kGuestCsum).ok());
  // Two writable descriptors, the header straddling them.
  const uint64_t first = Allocate(6);
  const uint64_t second = Allocate(2000);
  const uint16_t head = Offer(rx_, {{first, 6, true}, {second, 2000, true}});
  Kick(rx_);
  std::vector<uint8_t> frame = MakeFrame(200, 3, kVirtioNetHeaderDataValid);
  frame[kVirtioNetHeaderNumBuffersOffset] = 0x77;  // the backend's value is not trusted
  SendFromPeer(frame);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).id, head);
  EXPECT_EQ(Used(rx_, 0).len, frame.size());
  std::vector<uint8_t> received = ReadBytes(first, 6);
  const std::vector<uint8_t> rest = ReadBytes(second, frame.size() - 6);
  received.insert(received.end(), rest.begin(), rest.end());
  frame[kVirtioNetHeaderNumBuffersOffset] = 1;  // §5.1.6.4.1: le16 1
  frame[kVirtioNetHeaderNumBuffersOffset + 1] = 0;
  EXPECT_EQ(received, frame);  // flags kept: GUEST_CSUM was negotiated
  EXPECT_EQ(device_->counters().rx_frames, 1u);
}

TEST_F(VirtioNetTest, ClearsHeaderFlagsWhenGuestCsumIsNotNegotiated) {
  ASSERT_TRUE(Activate(0).ok());
  const uint64_t buffer = Allocate(1526);
  Offer(rx_, {{buffer, 1526, true}});
  Kick(rx_);
  SendFromPeer(MakeFrame(60, 0, kVirtioNetHeaderDataValid));
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(ReadGuest<uint8_t>(buffer + kVirtioNetHeaderFlagsOffset), 0);  // §5.1.6.4.1
  EXPECT_EQ(ReadGuest<uint16_t>(buffer + kVirtioNetHeaderNumBuffersOffset), 1);
}

TEST_F(VirtioNetTest, FramesWaitForReceiveBuffersAndFlowAfterTheKick) {
  ASSERT_TRUE(Activate(0).ok());
  const std::vector<uint8_t> frame1 = MakeFrame(100, 1);
  const std::vector<uint8_t> frame2 = MakeFrame(150, 2);
  SendFromPeer(frame1);
  SendFromPeer(frame2);
  // No buffers: nothing is used, and the frames stay in the backend.
  EXPECT_FALSE(WaitReadable(rx_.interrupt.get(), std::chrono::milliseconds(100)));
  EXPECT_EQ(UsedIdx(rx_), 0);
  const uint64_t buffer1 = Allocate(1526);
  Offer(rx_, {{buffer1, 1526, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).len, frame1.size());
  EXPECT_EQ(ReadBytes(buffer1 + kVirtioNetHeaderSize, 100),
            std::vector(frame1.begin() + kVirtioNetHeaderSize, frame1.end()));
  // The second frame is still waiting, for the next buffer.
  EXPECT_FALSE(WaitReadable(rx_.interrupt.get(), std::chrono::milliseconds(50)));
  const uint64_t buffer2 = Allocate(1526);
  Offer(rx_, {{buffer2, 1526, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 2));
  EXPECT_EQ(Used(rx_, 1).len, frame2.size());
  EXPECT_EQ(ReadBytes(buffer2 + kVirtioNetHeaderSize, 150),
            std::vector(frame2.begin() + kVirtioNetHeaderSize, frame2.end()));
}

TEST_F(VirtioNetTest, AsksForAKickWhenOutOfReceiveBuffersWithEventIdx) {
  ASSERT_TRUE(Activate(Bit(kRingEventIdxFeature)).ok());
  const uint64_t buffer = Allocate(1526);
  Offer(rx_, {{buffer, 1526, true}});
  Kick(rx_);
  SendFromPeer(MakeFrame(60, 0));
  ASSERT_TRUE(WaitUsed(rx_, 1));
  // avail_event (§2.7.10) names the next buffer, so the driver kicks when it adds one.
  const uint64_t avail_event = rx_.layout.used_ring + 4 + 8 * kSize;
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (ReadGuest<uint16_t>(avail_event) != 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(ReadGuest<uint16_t>(avail_event), 1);
}

TEST_F(VirtioNetTest, DropsFrameLargerThanTheBufferAndReusesTheBuffer) {
  ASSERT_TRUE(Activate(0).ok());
  SendFromPeer(MakeFrame(200, 1));  // does not fit
  const std::vector<uint8_t> small = MakeFrame(50, 2);
  SendFromPeer(small);
  const uint64_t buffer = Allocate(kVirtioNetHeaderSize + 100);
  const uint16_t head = Offer(rx_, {{buffer, kVirtioNetHeaderSize + 100, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).id, head);
  EXPECT_EQ(Used(rx_, 0).len, small.size());
  EXPECT_EQ(ReadBytes(buffer + kVirtioNetHeaderSize, 50),
            std::vector(small.begin() + kVirtioNetHeaderSize, small.end()));
  const NetCounters counters = device_->counters();
  EXPECT_EQ(counters.rx_dropped, 1u);
  EXPECT_EQ(counters.rx_frames, 1u);
}

TEST_F(VirtioNetTest, DeliversFrameThatExactlyFillsTheBufferAndDropsOneByteMore) {
  ASSERT_TRUE(Activate(0).ok());
  SendFromPeer(MakeFrame(101, 1));
  const std::vector<uint8_t> exact = MakeFrame(100, 2);
  SendFromPeer(exact);
  const uint64_t first = Allocate(40);
  const uint64_t second = Allocate(kVirtioNetHeaderSize + 60);
  Offer(rx_, {{first, 40, true}, {second, kVirtioNetHeaderSize + 60, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).len, exact.size());
  EXPECT_EQ(ReadBytes(second, 72), std::vector(exact.begin() + 40, exact.end()));
  EXPECT_EQ(device_->counters().rx_dropped, 1u);
}

TEST_F(VirtioNetTest, DropsFrameShorterThanTheHeader) {
  ASSERT_TRUE(Activate(0).ok());
  SendFromPeer(std::vector<uint8_t>(5, 0xee));
  const std::vector<uint8_t> good = MakeFrame(60, 9);
  SendFromPeer(good);
  const uint64_t buffer = Allocate(1526);
  Offer(rx_, {{buffer, 1526, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).len, good.size());
  EXPECT_EQ(device_->counters().rx_dropped, 1u);
}

TEST_F(VirtioNetTest, ReturnsReceiveBufferTooSmallForTheHeaderUnused) {
  ASSERT_TRUE(Activate(0).ok());
  const uint64_t tiny = Allocate(8);
  const uint16_t tiny_head = Offer(rx_, {{tiny, 8, true}});
  const uint64_t buffer = Allocate(1526);
  Offer(rx_, {{buffer, 1526, true}});
  Kick(rx_);
  const std::vector<uint8_t> frame = MakeFrame(60, 4);
  SendFromPeer(frame);
  ASSERT_TRUE(WaitUsed(rx_, 2));
  EXPECT_EQ(Used(rx_, 0).id, tiny_head);
  EXPECT_EQ(Used(rx_, 0).len, 0u);
  EXPECT_EQ(Used(rx_, 1).len, frame.size());
}

TEST_F(VirtioNetTest, KeepsReceivingAsTheDriverRecyclesBuffers) {
  // More frames than the 16-entry queue holds: the driver side recycles buffers as they come
  // back, like a real one, and the rings wrap.
  ASSERT_TRUE(Activate(0).ok());
  constexpr int kFrames = 40;
  std::vector<uint64_t> buffers;
  for (int i = 0; i < kSize; ++i) {
    buffers.push_back(Allocate(128));
    Offer(rx_, {{buffers.back(), 128, true}});
  }
  Kick(rx_);
  for (int i = 0; i < kFrames; ++i) {
    if (i >= kSize) {
      ASSERT_TRUE(WaitUsed(rx_, i - kSize + 1));
      Offer(rx_, {{buffers[i % kSize], 128, true}});
      Kick(rx_);
    }
    SendFromPeer(MakeFrame(60, i));
  }
  ASSERT_TRUE(WaitUsed(rx_, kFrames));
  EXPECT_EQ(device_->counters().rx_frames, uint64_t{kFrames});
}

TEST_F(VirtioNetTest, ContinuesInANewRoundAfterTheFrameBudget) {
  // A round handles at most 256 frames; the rest must follow without a new kick or frame.
  // Drops count towards the budget, so one buffer and 300 oversized frames take two rounds.
  const int big_buffer = 1 << 20;
  ASSERT_EQ(::setsockopt(peer_.get(), SOL_SOCKET, SO_SNDBUF, &big_buffer, sizeof(big_buffer)), 0);
  ASSERT_TRUE(Activate(0).ok());
  constexpr int kOversized = 300;
  for (int i = 0; i < kOversized; ++i) SendFromPeer(MakeFrame(100, i));
  const std::vector<uint8_t> last = MakeFrame(40, 1);
  SendFromPeer(last);
  const uint64_t buffer = Allocate(kVirtioNetHeaderSize + 64);
  Offer(rx_, {{buffer, kVirtioNetHeaderSize + 64, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).len, last.size());
  const NetCounters counters = device_->counters();
  EXPECT_EQ(counters.rx_dropped, uint64_t{kOversized});
  EXPECT_EQ(counters.rx_frames, 1u);
}

TEST_F(VirtioNetTest, ResetStopsServingAndTheDeviceCanBeActivatedAgain) {
  ASSERT_TRUE(Activate(0).ok());
  device_->Reset();
  const std::vector<uint8_t> frame = MakeFrame(60, 5);
  SendFromPeer(frame);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::array<uint8_t, 1> peek;
  EXPECT_EQ(::recv(device_fd_, peek.data(), peek.size(), MSG_PEEK | MSG_DONTWAIT), 1)
      << "the frame stays in the backend";
  ASSERT_TRUE(Activate(0).ok());
  const uint64_t buffer = Allocate(1526);
  Offer(rx_, {{buffer, 1526, true}});
  Kick(rx_);
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).len, frame.size());
}

TEST_F(VirtioNetTest, ServesOnlyTheQueuesTheDriverEnabled) {
  Activation activation;
  activation.memory = &memory_;
  activation.features = kVersion1;
  tx_.kick.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  tx_.interrupt.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const int interrupt = tx_.interrupt.get();
  activation.queues.push_back({.index = VirtioNet::kTransmitQueue,
                               .layout = tx_.layout,
                               .kick_fd = tx_.kick.get(),
                               .signal_used = [interrupt] { Signal(interrupt); }});
  ASSERT_TRUE(device_->Activate(std::move(activation)).ok());
  SendFromPeer(MakeFrame(60, 0));  // nobody receives it
  OfferFrame(MakeFrame(60, 1), {72});
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, 1));
  EXPECT_EQ(device_->counters().rx_frames, 0u);
}

// Tap

TEST(TapTest, RejectsNamesTheKernelCannotTake) {
  absl::StatusOr<std::unique_ptr<Tap>> tap = Tap::Open("0123456789abcdef");
  ASSERT_FALSE(tap.ok());
  EXPECT_EQ(tap.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tap.status().message(), HasSubstr("'0123456789abcdef' is 16 characters long"));
  EXPECT_THAT(tap.status().message(), HasSubstr("at most 15"));
  EXPECT_FALSE(Tap::Open("").ok());
}

TEST(TapTest, ErrorsNameTheTapAndTheFix) {
  const absl::Status denied = TapOpenError("vm0", "TUNSETIFF", EPERM);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("CAP_NET_ADMIN"));
  EXPECT_THAT(denied.message(), HasSubstr("ip tuntap add vm0 mode tap user $USER"));
  EXPECT_THAT(TapOpenError("vm0", "TUNSETIFF", EBUSY).message(),
              HasSubstr("tap 'vm0' is in use by another process"));
  EXPECT_THAT(TapOpenError("vm0", "opening /dev/net/tun", ENOENT).message(),
              HasSubstr("modprobe tun"));
  EXPECT_THAT(TapOpenError("eth0", "TUNSETIFF", EINVAL).message(),
              HasSubstr("cannot use 'eth0' as a tap"));
  EXPECT_THAT(TapOpenError("vm0", "TUNSETOFFLOAD", EIO).message(), HasSubstr("tap 'vm0'"));
}

// Creates a non-persistent tap (gone when closed), or skips where that is not allowed.
std::unique_ptr<Tap> OpenTestTapOrNull() {
  absl::StatusOr<std::unique_ptr<Tap>> tap = Tap::Open("mvmtest%d");
  if (!tap.ok()) {
    std::cerr << "no tap: " << tap.status() << "\n";
    return nullptr;
  }
  return std::move(*tap);
}

TEST(TapTest, CreatesANonPersistentTapAndRefusesASecondUser) {
  std::unique_ptr<Tap> tap = OpenTestTapOrNull();
  if (tap == nullptr) GTEST_SKIP() << "cannot create taps here (needs CAP_NET_ADMIN)";
  const std::string name(tap->name());
  EXPECT_THAT(name, StartsWith("mvmtest"));
  EXPECT_NE(name, "mvmtest%d");
  const unsigned index = ::if_nametoindex(name.c_str());
  EXPECT_NE(index, 0u);
  EXPECT_GE(tap->fd(), 0);
  EXPECT_TRUE(tap->SetOffloads(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN).ok());
  EXPECT_TRUE(tap->SetOffloads(0).ok());

  absl::StatusOr<std::unique_ptr<Tap>> second = Tap::Open(name);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another process"));

  tap.reset();
  // Another test process may have taken the name since: compare interface indexes, which the
  // kernel does not reuse soon.
  EXPECT_NE(::if_nametoindex(name.c_str()), index) << "a tap the VMM created outlived it";
}

// End to end through a real tap: frames the host sends to the interface (an AF_PACKET socket
// here) reach the guest's buffers, and the guest's frames come out of the interface.
class VirtioNetTapTest : public VirtioNetTest {
 protected:
  static constexpr uint16_t kEtherType = 0x88b5;  // IEEE 802 local experimental

  void SetUp() override {
    std::unique_ptr<Tap> tap = OpenTestTapOrNull();
    if (tap == nullptr) GTEST_SKIP() << "cannot create taps here (needs CAP_NET_ADMIN)";
    name_ = std::string(tap->name());
    // No IPv6 autoconfiguration chatter on the interface; then bring it up.
    std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + name_ + "/disable_ipv6") << "1";
    UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq request{};
    std::strncpy(request.ifr_name, name_.c_str(), IFNAMSIZ - 1);
    ASSERT_EQ(::ioctl(control.get(), SIOCGIFFLAGS, &request), 0);
    request.ifr_flags |= IFF_UP;
    ASSERT_EQ(::ioctl(control.get(), SIOCSIFFLAGS, &request), 0);
    packet_.Reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kEtherType)));
    ASSERT_TRUE(packet_.valid()) << strerror(errno);
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(kEtherType);
    address.sll_ifindex = static_cast<int>(::if_nametoindex(name_.c_str()));
    ASSERT_EQ(::bind(packet_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    device_ = std::make_unique<VirtioNet>(std::move(tap), kMac);
    broken_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    rx_.layout = {.size = kSize, .desc_table = 0x1000, .avail_ring = 0x2000, .used_ring = 0x3000};
    tx_.layout = {.size = kSize, .desc_table = 0x4000, .avail_ring = 0x5000, .used_ring = 0x6000};
  }
  void TearDown() override {
    if (device_ != nullptr) device_->Reset();
  }

  // An Ethernet frame of `size` bytes with our EtherType.
  static std::vector<uint8_t> Ethernet(std::array<uint8_t, 6> destination, size_t size,
                                       uint8_t seed) {
    std::vector<uint8_t> frame(size);
    std::copy(destination.begin(), destination.end(), frame.begin());
    const std::array<uint8_t, 6> source = {0x02, 0, 0, 0, 0, 0x01};
    std::copy(source.begin(), source.end(), frame.begin() + 6);
    frame[12] = kEtherType >> 8;
    frame[13] = kEtherType & 0xff;
    for (size_t i = 14; i < size; ++i) frame[i] = static_cast<uint8_t>(seed + i);
    return frame;
  }

  std::string name_;
  UniqueFd packet_;
};

TEST_F(VirtioNetTapTest, HostFramesReachTheGuestAndOversizedOnesAreDropped) {
  ASSERT_TRUE(Activate(kGuestCsum).ok());
  constexpr uint32_t kBufferSize = kVirtioNetHeaderSize + 64;
  const uint64_t buffer = Allocate(kBufferSize);
  const uint16_t head = Offer(rx_, {{buffer, kBufferSize, true}});
  Kick(rx_);
  const std::vector<uint8_t> big = Ethernet(kMac, 1000, 1);
  const std::vector<uint8_t> small = Ethernet(kMac, 60, 2);
  ASSERT_EQ(::send(packet_.get(), big.data(), big.size(), 0), static_cast<ssize_t>(big.size()));
  ASSERT_EQ(::send(packet_.get(), small.data(), small.size(), 0),
            static_cast<ssize_t>(small.size()));
  ASSERT_TRUE(WaitUsed(rx_, 1));
  EXPECT_EQ(Used(rx_, 0).id, head);
  ASSERT_EQ(Used(rx_, 0).len, kVirtioNetHeaderSize + small.size());
  EXPECT_EQ(ReadBytes(buffer + kVirtioNetHeaderSize, small.size()), small);
  EXPECT_EQ(ReadGuest<uint16_t>(buffer + kVirtioNetHeaderNumBuffersOffset), 1);
  EXPECT_GE(device_->counters().rx_dropped, 1u);
}

TEST_F(VirtioNetTapTest, GuestFramesComeOutOfTheInterface) {
  ASSERT_TRUE(Activate(0).ok());
  const std::vector<uint8_t> ethernet = Ethernet({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 100, 3);
  std::vector<uint8_t> frame(kVirtioNetHeaderSize);  // no offloads: all-zero header
  frame.insert(frame.end(), ethernet.begin(), ethernet.end());
  OfferFrame(frame, {kVirtioNetHeaderSize, ethernet.size()});
  Kick(tx_);
  ASSERT_TRUE(WaitUsed(tx_, 1));
  EXPECT_EQ(device_->counters().tx_frames, 1u);
  // The socket also sees frames going out of the interface; skip those.
  for (;;) {
    ASSERT_TRUE(WaitReadable(packet_.get(), std::chrono::seconds(5)));
    std::vector<uint8_t> received(2048);
    sockaddr_ll from{};
    socklen_t from_size = sizeof(from);
    const ssize_t n = ::recvfrom(packet_.get(), received.data(), received.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_size);
    ASSERT_GT(n, 0);
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    received.resize(n);
    EXPECT_EQ(received, ethernet);
    break;
  }
}

}  // namespace
}  // namespace minivmm::virtio
