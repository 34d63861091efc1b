// VirtioNet against a socketpair backend: the features and configuration it offers, and
// frames moving through its transmit and receive queues.
#include "devices/virtio/virtio_net.h"

#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "devices/virtio/ring_features.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_net_fixture.h"

namespace minivmm::virtio {
namespace {

using ::testing::ElementsAre;

// Features and configuration

TEST_F(VirtioNetTest, OffersTapOffloadsMacStatusAndAnnounceButNoMergeableBuffers) {
  EXPECT_EQ(device_->device_type(), VIRTIO_ID_NET);
  EXPECT_EQ(device_->pci_class_code(), 0x020000u);
  EXPECT_THAT(device_->queue_max_sizes(), ElementsAre(256, 256, 64));
  const uint64_t features = device_->features();
  for (int bit : {kNetFeatureCsum, kNetFeatureGuestCsum, kNetFeatureMac, kNetFeatureGuestTso4,
                  kNetFeatureGuestTso6, kNetFeatureGuestEcn, kNetFeatureHostTso4,
                  kNetFeatureHostTso6, kNetFeatureHostEcn, kNetFeatureStatus, kNetFeatureCtrlVq,
                  kNetFeatureGuestAnnounce}) {
    EXPECT_TRUE(features & Bit(bit)) << "bit " << bit;
  }
  for (int bit : {kNetFeatureMrgRxbuf, kNetFeatureMq}) {
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

}  // namespace
}  // namespace minivmm::virtio
