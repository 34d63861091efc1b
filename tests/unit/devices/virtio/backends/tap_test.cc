// The tap backend: opening a tap and its errors, and VirtioNet end to end through a real tap
// (skipped where taps cannot be created).
#include "devices/virtio/backends/tap.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "devices/virtio/virtio_net.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_net_fixture.h"
#include "vmm/base/unique_fd.h"

namespace minivmm::virtio {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

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
