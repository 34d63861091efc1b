// The fixture shared by the virtio_net_*_test files: a VirtioNet whose driver side (two split
// queues laid out by hand in guest memory) the test plays, with the test's end of a socketpair
// as its backend.
#ifndef MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_NET_FIXTURE_H_
#define MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_NET_FIXTURE_H_

// Only the constants and structs; the legacy helpers do not compile as C++.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/virtio/virtio_net.h"
#include "gtest/gtest.h"
#include "vmm/base/unique_fd.h"
#include "vmm/core/guest_memory.h"

namespace minivmm::virtio {

inline constexpr uint64_t kMemorySize = 1 << 20;
inline constexpr uint16_t kSize = 16;
inline constexpr uint64_t kIndirectTable = 0x8000;
inline constexpr uint64_t kDataStart = 0x10000;
inline constexpr std::array<uint8_t, 6> kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
inline constexpr uint64_t kVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;
inline constexpr uint64_t kGuestCsum = uint64_t{1} << kNetFeatureGuestCsum;
inline constexpr auto kTimeout = std::chrono::seconds(5);

inline uint64_t Bit(int bit) { return uint64_t{1} << bit; }

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
inline std::vector<uint8_t> MakeFrame(size_t payload_size, uint8_t seed, uint8_t flags = 0) {
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
    ctrl_.layout = {.size = kSize, .desc_table = 0x7000, .avail_ring = 0x8000, .used_ring = 0x9000};
    config_changed_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  void TearDown() override { device_->Reset(); }

  // with_control: the driver also enables the control queue (it negotiated CTRL_VQ).
  absl::Status Activate(uint64_t features, bool with_control = false) {
    Activation activation;
    activation.memory = &memory_;
    activation.features = features | kVersion1;
    std::vector<std::pair<uint16_t, DriverQueue*>> queues = {{VirtioNet::kReceiveQueue, &rx_},
                                                             {VirtioNet::kTransmitQueue, &tx_}};
    if (with_control) queues.push_back({VirtioNet::kControlQueue, &ctrl_});
    for (auto [index, queue] : queues) {
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
    const int config_changed = config_changed_.get();
    activation.signal_config_change = [config_changed] { Signal(config_changed); };
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
  DriverQueue ctrl_;
  UniqueFd config_changed_;  // signalled by the device's configuration change interrupts
  uint64_t next_data_ = kDataStart;
  std::unique_ptr<VirtioNet> device_;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_TESTS_UNIT_DEVICES_VIRTIO_VIRTIO_NET_FIXTURE_H_
