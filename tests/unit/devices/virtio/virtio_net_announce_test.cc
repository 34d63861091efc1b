// virtio-net's GUEST_ANNOUNCE (virtio 1.2 §5.1.6.5.4): after the guest moved, the device sets
// VIRTIO_NET_S_ANNOUNCE and raises a configuration change; the driver announces itself and
// acknowledges on the control queue, which clears the bit. Other control commands get
// VIRTIO_NET_ERR.
#include <array>

#include "devices/virtio/virtio_net.h"
#include "gtest/gtest.h"
#include "tests/unit/devices/virtio/virtio_net_fixture.h"

namespace minivmm::virtio {
namespace {

const uint64_t kAnnounceFeatures = Bit(kNetFeatureCtrlVq) | Bit(kNetFeatureGuestAnnounce);

class VirtioNetAnnounceTest : public VirtioNetTest {
 protected:
  uint16_t Status() {
    std::array<uint8_t, 2> status{};
    device_->ReadConfig(6, status);  // struct virtio_net_config.status
    return static_cast<uint16_t>(status[0] | status[1] << 8);
  }
  bool ConfigChanged() {
    if (!WaitReadable(config_changed_.get(), std::chrono::milliseconds(200))) return false;
    uint64_t n;
    (void)!::read(config_changed_.get(), &n, sizeof(n));
    return true;
  }
  // Sends a control command; returns the ack byte the device wrote.
  uint8_t Command(uint8_t command_class, uint8_t command) {
    const uint64_t header = Allocate(2);
    const uint64_t ack = Allocate(1);
    const std::array<uint8_t, 2> bytes = {command_class, command};
    EXPECT_TRUE(memory_.Write(header, bytes).ok());
    EXPECT_TRUE(memory_.WriteObject<uint8_t>(ack, 0xee).ok());
    const uint16_t before = UsedIdx(ctrl_);
    Offer(ctrl_, {{header, 2, false}, {ack, 1, true}});
    Kick(ctrl_);
    EXPECT_TRUE(WaitUsed(ctrl_, before + 1));
    EXPECT_EQ(Used(ctrl_, before).len, 1u);
    return ReadGuest<uint8_t>(ack);
  }
};

TEST_F(VirtioNetAnnounceTest, AnnouncementWaitsForTheDriversAck) {
  ASSERT_TRUE(Activate(kAnnounceFeatures, /*with_control=*/true).ok());
  EXPECT_EQ(Status(), kNetStatusLinkUp);
  device_->AnnounceMove();
  EXPECT_TRUE(ConfigChanged()) << "no configuration change interrupt";
  EXPECT_EQ(Status(), kNetStatusLinkUp | kNetStatusAnnounce);
  EXPECT_EQ(Command(/*VIRTIO_NET_CTRL_ANNOUNCE*/ 3, /*ACK*/ 0), 0) << "not VIRTIO_NET_OK";
  EXPECT_EQ(Status(), kNetStatusLinkUp) << "the ack did not clear VIRTIO_NET_S_ANNOUNCE";
}

TEST_F(VirtioNetAnnounceTest, OtherControlCommandsAreRefused) {
  ASSERT_TRUE(Activate(kAnnounceFeatures, /*with_control=*/true).ok());
  device_->AnnounceMove();
  ASSERT_TRUE(ConfigChanged());
  EXPECT_EQ(Command(/*VIRTIO_NET_CTRL_RX*/ 0, /*PROMISC*/ 0), 1) << "not VIRTIO_NET_ERR";
  EXPECT_EQ(Command(/*VIRTIO_NET_CTRL_ANNOUNCE*/ 3, /*not ACK*/ 1), 1);
  EXPECT_EQ(Status(), kNetStatusLinkUp | kNetStatusAnnounce) << "a refused command cleared it";
}

TEST_F(VirtioNetAnnounceTest, ADriverWithoutGuestAnnounceIsNotAsked) {
  ASSERT_TRUE(Activate(Bit(kNetFeatureCtrlVq), /*with_control=*/true).ok());
  device_->AnnounceMove();
  EXPECT_FALSE(ConfigChanged());
  EXPECT_EQ(Status(), kNetStatusLinkUp);
}

}  // namespace
}  // namespace minivmm::virtio
