#include "devices/virtio/virtio_pci_common_config.h"

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <vector>

#include "gtest/gtest.h"

namespace minivmm::virtio {

// Lets gtest name the action in failure messages (found by ADL, so outside the anonymous
// namespace).
void PrintTo(VirtioPciCommonConfig::Action action, std::ostream* os) {
  switch (action) {
    case VirtioPciCommonConfig::Action::kNone:
      *os << "kNone";
      return;
    case VirtioPciCommonConfig::Action::kReset:
      *os << "kReset";
      return;
    case VirtioPciCommonConfig::Action::kActivate:
      *os << "kActivate";
      return;
  }
  *os << "Action(" << static_cast<int>(action) << ")";
}

namespace {

using Action = VirtioPciCommonConfig::Action;

#define COMMON(field) offsetof(virtio_pci_common_cfg, field)

// A device-specific feature (bit 0) plus VERSION_1, which a modern-only transport requires.
constexpr uint64_t kDeviceFeature0 = uint64_t{1} << 0;
constexpr uint64_t kVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;
constexpr uint64_t kAccessPlatform = uint64_t{1} << VIRTIO_F_ACCESS_PLATFORM;
constexpr uint64_t kOffered = kDeviceFeature0 | kVersion1 | kAccessPlatform;
constexpr uint64_t kNotOffered = uint64_t{1} << VIRTIO_F_RING_PACKED;

constexpr uint16_t kQueue0Max = 256;
constexpr uint16_t kQueue1Max = 128;
constexpr uint16_t kMsixVectors = 3;

constexpr uint8_t kAcknowledge = VIRTIO_CONFIG_S_ACKNOWLEDGE;
constexpr uint8_t kDriver = VIRTIO_CONFIG_S_DRIVER;
constexpr uint8_t kFeaturesOk = VIRTIO_CONFIG_S_FEATURES_OK;
constexpr uint8_t kDriverOk = VIRTIO_CONFIG_S_DRIVER_OK;
constexpr uint8_t kNeedsReset = VIRTIO_CONFIG_S_NEEDS_RESET;

class VirtioPciCommonConfigTest : public ::testing::Test {
 protected:
  uint64_t Read(uint64_t offset, size_t size) const {
    std::vector<uint8_t> bytes(size, 0xcc);
    config_.Read(offset, std::span(bytes));
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) value |= uint64_t{bytes[i]} << (8 * i);
    return value;
  }
  uint8_t Read8(uint64_t offset) const { return static_cast<uint8_t>(Read(offset, 1)); }
  uint16_t Read16(uint64_t offset) const { return static_cast<uint16_t>(Read(offset, 2)); }
  uint32_t Read32(uint64_t offset) const { return static_cast<uint32_t>(Read(offset, 4)); }

  Action Write(uint64_t offset, size_t size, uint64_t value) {
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    return config_.Write(offset, bytes);
  }
  Action Write8(uint64_t offset, uint8_t value) { return Write(offset, 1, value); }
  Action Write16(uint64_t offset, uint16_t value) { return Write(offset, 2, value); }
  Action Write32(uint64_t offset, uint32_t value) { return Write(offset, 4, value); }
  Action Write64(uint64_t offset, uint64_t value) { return Write(offset, 8, value); }

  Action SetStatus(uint8_t status) { return Write8(COMMON(device_status), status); }
  uint8_t Status() const { return Read8(COMMON(device_status)); }

  void WriteDriverFeatures(uint64_t features) {
    Write32(COMMON(guest_feature_select), 0);
    Write32(COMMON(guest_feature), static_cast<uint32_t>(features));
    Write32(COMMON(guest_feature_select), 1);
    Write32(COMMON(guest_feature), static_cast<uint32_t>(features >> 32));
  }
  // The driver side of §3.1.1 up to and including FEATURES_OK.
  void NegotiateFeatures(uint64_t features) {
    SetStatus(kAcknowledge);
    SetStatus(kAcknowledge | kDriver);
    WriteDriverFeatures(features);
    SetStatus(kAcknowledge | kDriver | kFeaturesOk);
  }
  void SelectQueue(uint16_t index) { Write16(COMMON(queue_select), index); }

  VirtioPciCommonConfig config_{kOffered, {kQueue0Max, kQueue1Max}, kMsixVectors};
};

TEST_F(VirtioPciCommonConfigTest, DeviceFeatureWindowShowsOfferedBitsBySelect) {
  EXPECT_EQ(Read32(COMMON(device_feature_select)), 0u);
  EXPECT_EQ(Read32(COMMON(device_feature)), static_cast<uint32_t>(kOffered));
  Write32(COMMON(device_feature_select), 1);
  EXPECT_EQ(Read32(COMMON(device_feature_select)), 1u);
  EXPECT_EQ(Read32(COMMON(device_feature)), static_cast<uint32_t>(kOffered >> 32));
  Write32(COMMON(device_feature_select), 2);
  EXPECT_EQ(Read32(COMMON(device_feature)), 0u);
  Write32(COMMON(device_feature_select), 0xffffffff);
  EXPECT_EQ(Read32(COMMON(device_feature_select)), 0xffffffffu);
  EXPECT_EQ(Read32(COMMON(device_feature)), 0u);
}

TEST_F(VirtioPciCommonConfigTest, DeviceFeatureIsReadOnly) {
  Write32(COMMON(device_feature), 0);
  EXPECT_EQ(Read32(COMMON(device_feature)), static_cast<uint32_t>(kOffered));
}

TEST_F(VirtioPciCommonConfigTest, DriverFeaturesAreWrittenInTwoHalves) {
  Write32(COMMON(guest_feature_select), 0);
  Write32(COMMON(guest_feature), 0x00000001);
  EXPECT_EQ(config_.driver_features(), 0x00000001u);
  Write32(COMMON(guest_feature_select), 1);
  EXPECT_EQ(Read32(COMMON(guest_feature_select)), 1u);
  Write32(COMMON(guest_feature), 0x00000003);
  EXPECT_EQ(config_.driver_features(), 0x0000000300000001u);
  EXPECT_EQ(Read32(COMMON(guest_feature)), 3u);
  Write32(COMMON(guest_feature_select), 0);
  EXPECT_EQ(Read32(COMMON(guest_feature)), 1u);
  Write32(COMMON(guest_feature), 0);
  EXPECT_EQ(config_.driver_features(), 0x0000000300000000u) << "the high half stays";
}

TEST_F(VirtioPciCommonConfigTest, DriverFeatureWritesBeyondTheSecondHalfAreIgnored) {
  WriteDriverFeatures(kVersion1 | kDeviceFeature0);
  Write32(COMMON(guest_feature_select), 2);
  Write32(COMMON(guest_feature), 0xffffffff);
  EXPECT_EQ(Read32(COMMON(guest_feature)), 0u);
  EXPECT_EQ(config_.driver_features(), kVersion1 | kDeviceFeature0);
}

TEST_F(VirtioPciCommonConfigTest, NumQueuesCountsTheDeviceQueuesAndIsReadOnly) {
  EXPECT_EQ(Read16(COMMON(num_queues)), 2u);
  Write16(COMMON(num_queues), 7);
  EXPECT_EQ(Read16(COMMON(num_queues)), 2u);
}

TEST_F(VirtioPciCommonConfigTest, QueueSelectShowsEachQueueAtItsMaximumSize) {
  EXPECT_EQ(Read16(COMMON(queue_select)), 0u);
  EXPECT_EQ(Read16(COMMON(queue_size)), kQueue0Max);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 0u);
  EXPECT_EQ(Read16(COMMON(queue_msix_vector)), kNoMsixVector);
  SelectQueue(1);
  EXPECT_EQ(Read16(COMMON(queue_select)), 1u);
  EXPECT_EQ(Read16(COMMON(queue_size)), kQueue1Max);
}

TEST_F(VirtioPciCommonConfigTest, QueueNotifyOffEqualsTheQueueIndexAndIsReadOnly) {
  EXPECT_EQ(Read16(COMMON(queue_notify_off)), 0u);
  SelectQueue(1);
  EXPECT_EQ(Read16(COMMON(queue_notify_off)), 1u);
  Write16(COMMON(queue_notify_off), 9);
  EXPECT_EQ(Read16(COMMON(queue_notify_off)), 1u);
}

TEST_F(VirtioPciCommonConfigTest, NonexistentQueueReadsSizeZeroAndIgnoresWrites) {
  // §4.1.4.3.2: queue_size 0 tells the driver the selected queue is unavailable.
  SelectQueue(2);
  EXPECT_EQ(Read16(COMMON(queue_select)), 2u);
  EXPECT_EQ(Read16(COMMON(queue_size)), 0u);
  Write16(COMMON(queue_size), 64);
  Write16(COMMON(queue_msix_vector), 1);
  Write32(COMMON(queue_desc_lo), 0x1000);
  Write64(COMMON(queue_avail_lo), 0x2000);
  Write32(COMMON(queue_used_hi), 0x1);
  Write16(COMMON(queue_enable), 1);
  EXPECT_EQ(Read16(COMMON(queue_size)), 0u);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 0u);
  EXPECT_EQ(Read(COMMON(queue_desc_lo), 8), 0u);
  SelectQueue(0xffff);
  EXPECT_EQ(Read16(COMMON(queue_size)), 0u);
  for (const QueueRegisters& q : config_.queues()) {
    EXPECT_EQ(q.size, q.max_size);
    EXPECT_EQ(q.msix_vector, kNoMsixVector);
    EXPECT_FALSE(q.enabled);
    EXPECT_EQ(q.desc, 0u);
    EXPECT_EQ(q.driver, 0u);
    EXPECT_EQ(q.device, 0u);
  }
}

TEST_F(VirtioPciCommonConfigTest, QueueSizeCanBeLoweredBeforeDriverOk) {
  SelectQueue(1);
  Write16(COMMON(queue_size), 64);
  EXPECT_EQ(Read16(COMMON(queue_size)), 64u);
  EXPECT_EQ(config_.queues()[1].size, 64u);
  EXPECT_EQ(config_.queues()[1].max_size, kQueue1Max);
  EXPECT_EQ(config_.queues()[0].size, kQueue0Max);
}

// The device's maximum is what it can serve; a driver asking for more (up to the spec's 32768)
// gets the maximum, so the rings it lays out and the work per kick stay bounded by the device.
TEST_F(VirtioPciCommonConfigTest, QueueSizeAboveTheMaximumIsClampedToIt) {
  SelectQueue(0);
  Write16(COMMON(queue_size), 32768);
  EXPECT_EQ(Read16(COMMON(queue_size)), kQueue0Max);
  EXPECT_EQ(config_.queues()[0].size, kQueue0Max);
  Write16(COMMON(queue_size), 0xffff);
  EXPECT_EQ(config_.queues()[0].size, kQueue0Max);
}

TEST_F(VirtioPciCommonConfigTest, QueueAddressesAreWrittenAs32BitHalves) {
  // How Linux writes them (vp_iowrite64_twopart).
  SelectQueue(1);
  Write32(COMMON(queue_desc_lo), 0x89abc000);
  Write32(COMMON(queue_desc_hi), 0x00000001);
  Write32(COMMON(queue_avail_lo), 0x89abd000);
  Write32(COMMON(queue_avail_hi), 0x00000002);
  Write32(COMMON(queue_used_lo), 0x89abe000);
  Write32(COMMON(queue_used_hi), 0x00000003);
  const QueueRegisters& q = config_.queues()[1];
  EXPECT_EQ(q.desc, 0x189abc000u);
  EXPECT_EQ(q.driver, 0x289abd000u);
  EXPECT_EQ(q.device, 0x389abe000u);
  EXPECT_EQ(Read32(COMMON(queue_desc_lo)), 0x89abc000u);
  EXPECT_EQ(Read32(COMMON(queue_desc_hi)), 1u);
  EXPECT_EQ(Read32(COMMON(queue_avail_lo)), 0x89abd000u);
  EXPECT_EQ(Read32(COMMON(queue_avail_hi)), 2u);
  EXPECT_EQ(Read32(COMMON(queue_used_lo)), 0x89abe000u);
  EXPECT_EQ(Read32(COMMON(queue_used_hi)), 3u);
  EXPECT_EQ(Read(COMMON(queue_desc_lo), 8), 0x189abc000u);

  Write32(COMMON(queue_desc_lo), 0x4000);
  EXPECT_EQ(config_.queues()[1].desc, 0x100004000u) << "the high half stays";
  Write32(COMMON(queue_desc_hi), 0);
  EXPECT_EQ(config_.queues()[1].desc, 0x4000u) << "the low half stays";

  SelectQueue(0);
  EXPECT_EQ(Read(COMMON(queue_desc_lo), 8), 0u) << "queue 0 is untouched";
}

TEST_F(VirtioPciCommonConfigTest, QueueAddressesAcceptOne64BitWrite) {
  Write64(COMMON(queue_desc_lo), 0x0000123456789000);
  Write64(COMMON(queue_avail_lo), 0x000012345678a000);
  Write64(COMMON(queue_used_lo), 0x000012345678b000);
  const QueueRegisters& q = config_.queues()[0];
  EXPECT_EQ(q.desc, 0x0000123456789000u);
  EXPECT_EQ(q.driver, 0x000012345678a000u);
  EXPECT_EQ(q.device, 0x000012345678b000u);
  EXPECT_EQ(Read(COMMON(queue_avail_lo), 8), 0x000012345678a000u);
  const QueueLayout layout = q.layout();
  EXPECT_EQ(layout.size, kQueue0Max);
  EXPECT_EQ(layout.desc_table, q.desc);
  EXPECT_EQ(layout.avail_ring, q.driver);
  EXPECT_EQ(layout.used_ring, q.device);
}

TEST_F(VirtioPciCommonConfigTest, MsixVectorsBeyondTheTableReadBackAsNoVector) {
  // §4.1.5.1.2.1: NO_VECTOR on readback is how the driver learns the mapping failed.
  EXPECT_EQ(Read16(COMMON(msix_config)), kNoMsixVector);
  Write16(COMMON(msix_config), kMsixVectors - 1);
  EXPECT_EQ(Read16(COMMON(msix_config)), kMsixVectors - 1);
  EXPECT_EQ(config_.config_msix_vector(), kMsixVectors - 1);
  Write16(COMMON(msix_config), kMsixVectors);
  EXPECT_EQ(Read16(COMMON(msix_config)), kNoMsixVector);
  Write16(COMMON(msix_config), 0);
  EXPECT_EQ(Read16(COMMON(msix_config)), 0u);
  Write16(COMMON(msix_config), VIRTIO_MSI_NO_VECTOR);
  EXPECT_EQ(Read16(COMMON(msix_config)), kNoMsixVector);

  SelectQueue(1);
  Write16(COMMON(queue_msix_vector), 1);
  EXPECT_EQ(Read16(COMMON(queue_msix_vector)), 1u);
  EXPECT_EQ(config_.queues()[1].msix_vector, 1u);
  Write16(COMMON(queue_msix_vector), 0x7ff);
  EXPECT_EQ(Read16(COMMON(queue_msix_vector)), kNoMsixVector);
  EXPECT_EQ(config_.queues()[1].msix_vector, kNoMsixVector);
  EXPECT_EQ(config_.queues()[0].msix_vector, kNoMsixVector);
}

TEST_F(VirtioPciCommonConfigTest, WithoutMsixEveryVectorReadsBackAsNoVector) {
  VirtioPciCommonConfig config(kOffered, {16}, 0);
  const std::array<uint8_t, 2> vector0 = {0, 0};
  config.Write(COMMON(msix_config), vector0);
  config.Write(COMMON(queue_msix_vector), vector0);
  EXPECT_EQ(config.config_msix_vector(), kNoMsixVector);
  EXPECT_EQ(config.queues()[0].msix_vector, kNoMsixVector);
}

TEST_F(VirtioPciCommonConfigTest, FeaturesOkIsRefusedWithoutVersion1) {
  NegotiateFeatures(kDeviceFeature0);
  EXPECT_EQ(Status(), kAcknowledge | kDriver) << "FEATURES_OK must not read back";
  EXPECT_EQ(config_.status() & kFeaturesOk, 0);
}

TEST_F(VirtioPciCommonConfigTest, FeaturesOkIsRefusedForFeaturesNotOffered) {
  NegotiateFeatures(kVersion1 | kNotOffered);
  EXPECT_EQ(Status(), kAcknowledge | kDriver);
}

TEST_F(VirtioPciCommonConfigTest, FeaturesOkIsAcceptedForAnOfferedSubsetWithVersion1) {
  NegotiateFeatures(kVersion1 | kDeviceFeature0);
  EXPECT_EQ(Status(), kAcknowledge | kDriver | kFeaturesOk);
  EXPECT_EQ(config_.driver_features(), kVersion1 | kDeviceFeature0);
}

TEST_F(VirtioPciCommonConfigTest, FeaturesOkCanBeRetriedAfterARefusal) {
  NegotiateFeatures(kVersion1 | kNotOffered);
  ASSERT_EQ(Status(), kAcknowledge | kDriver);
  WriteDriverFeatures(kVersion1);
  SetStatus(kAcknowledge | kDriver | kFeaturesOk);
  EXPECT_EQ(Status(), kAcknowledge | kDriver | kFeaturesOk);
}

TEST_F(VirtioPciCommonConfigTest, DriverFeaturesAreReadOnlyAfterFeaturesOk) {
  NegotiateFeatures(kVersion1 | kDeviceFeature0);
  ASSERT_EQ(Status() & kFeaturesOk, kFeaturesOk);
  WriteDriverFeatures(kVersion1 | kAccessPlatform);
  EXPECT_EQ(config_.driver_features(), kVersion1 | kDeviceFeature0);
  Write32(COMMON(guest_feature_select), 0);
  EXPECT_EQ(Read32(COMMON(guest_feature)), static_cast<uint32_t>(kDeviceFeature0));
}

TEST_F(VirtioPciCommonConfigTest, DriverOkActivatesExactlyOnce) {
  NegotiateFeatures(kVersion1);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kActivate);
  EXPECT_EQ(Status(), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kNone);
  EXPECT_EQ(Status(), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
}

TEST_F(VirtioPciCommonConfigTest, StatusWritesBeforeDriverOkDoNotActivate) {
  EXPECT_EQ(SetStatus(kAcknowledge), Action::kNone);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver), Action::kNone);
  WriteDriverFeatures(kVersion1);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk), Action::kNone);
}

TEST_F(VirtioPciCommonConfigTest, DriverOkWithoutFeaturesOkSetsNeedsResetAndDoesNotActivate) {
  SetStatus(kAcknowledge);
  SetStatus(kAcknowledge | kDriver);
  WriteDriverFeatures(kVersion1);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kDriverOk), Action::kNone);
  EXPECT_EQ(Status() & kNeedsReset, kNeedsReset);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kDriverOk), Action::kNone);
}

TEST_F(VirtioPciCommonConfigTest, DriverOkAfterRefusedFeaturesSetsNeedsReset) {
  NegotiateFeatures(kNotOffered | kVersion1);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kNone);
  EXPECT_EQ(Status() & (kNeedsReset | kFeaturesOk), kNeedsReset);
}

TEST_F(VirtioPciCommonConfigTest, NeedsResetSurvivesStatusWritesUntilReset) {
  config_.SetNeedsReset();
  EXPECT_EQ(Status(), kNeedsReset);
  SetStatus(kAcknowledge);
  EXPECT_EQ(Status(), kAcknowledge | kNeedsReset);
  EXPECT_EQ(SetStatus(0), Action::kReset);
  EXPECT_EQ(Status(), 0);
}

TEST_F(VirtioPciCommonConfigTest, WritingZeroStatusResetsEverythingToDefaults) {
  Write16(COMMON(msix_config), 1);
  for (uint16_t i = 0; i < 2; ++i) {
    SelectQueue(i);
    Write16(COMMON(queue_size), 32);
    Write16(COMMON(queue_msix_vector), i);
    Write64(COMMON(queue_desc_lo), 0x10000 * (i + 1));
    Write64(COMMON(queue_avail_lo), 0x10000 * (i + 1) + 0x1000);
    Write64(COMMON(queue_used_lo), 0x10000 * (i + 1) + 0x2000);
    Write16(COMMON(queue_enable), 1);
  }
  Write32(COMMON(device_feature_select), 1);
  NegotiateFeatures(kVersion1 | kDeviceFeature0);
  ASSERT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kActivate);

  EXPECT_EQ(SetStatus(0), Action::kReset);
  EXPECT_EQ(Status(), 0);
  EXPECT_EQ(config_.status(), 0);
  EXPECT_EQ(config_.driver_features(), 0u);
  EXPECT_EQ(Read32(COMMON(guest_feature)), 0u);
  EXPECT_EQ(Read32(COMMON(device_feature_select)), 0u);
  EXPECT_EQ(Read32(COMMON(guest_feature_select)), 0u);
  EXPECT_EQ(Read16(COMMON(msix_config)), kNoMsixVector);
  EXPECT_EQ(config_.config_msix_vector(), kNoMsixVector);
  EXPECT_EQ(Read16(COMMON(queue_select)), 0u);
  for (const QueueRegisters& q : config_.queues()) {
    EXPECT_EQ(q.size, q.max_size);
    EXPECT_EQ(q.msix_vector, kNoMsixVector);
    EXPECT_FALSE(q.enabled);
    EXPECT_EQ(q.desc, 0u);
    EXPECT_EQ(q.driver, 0u);
    EXPECT_EQ(q.device, 0u);
  }
  EXPECT_EQ(config_.queues()[0].max_size, kQueue0Max);
  EXPECT_EQ(config_.queues()[1].max_size, kQueue1Max);
  EXPECT_EQ(Read16(COMMON(queue_size)), kQueue0Max);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 0u);

  // The device can be driven again from scratch.
  NegotiateFeatures(kVersion1);
  EXPECT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kActivate);
}

TEST_F(VirtioPciCommonConfigTest, QueueRegistersAreReadOnlyAfterDriverOk) {
  SelectQueue(0);
  Write16(COMMON(queue_size), 64);
  Write64(COMMON(queue_desc_lo), 0x1000);
  Write64(COMMON(queue_avail_lo), 0x2000);
  Write64(COMMON(queue_used_lo), 0x3000);
  Write16(COMMON(queue_enable), 1);
  NegotiateFeatures(kVersion1);
  ASSERT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kActivate);

  Write16(COMMON(queue_size), 16);
  Write32(COMMON(queue_desc_lo), 0x8000);
  Write32(COMMON(queue_desc_hi), 1);
  Write64(COMMON(queue_avail_lo), 0x9000);
  Write32(COMMON(queue_used_hi), 1);
  const QueueRegisters& q0 = config_.queues()[0];
  EXPECT_EQ(q0.size, 64u);
  EXPECT_EQ(q0.desc, 0x1000u);
  EXPECT_EQ(q0.driver, 0x2000u);
  EXPECT_EQ(q0.device, 0x3000u);
  EXPECT_TRUE(q0.enabled);

  SelectQueue(1);
  Write16(COMMON(queue_enable), 1);
  Write64(COMMON(queue_desc_lo), 0x4000);
  EXPECT_FALSE(config_.queues()[1].enabled) << "no queue is enabled after DRIVER_OK";
  EXPECT_EQ(config_.queues()[1].desc, 0u);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 0u);
}

TEST_F(VirtioPciCommonConfigTest, QueueEnableWriteOfZeroIsIgnored) {
  // §4.1.4.3.2: the driver MUST NOT write 0 to queue_enable; only a reset disables a queue.
  SelectQueue(1);
  Write16(COMMON(queue_enable), 0);
  EXPECT_FALSE(config_.queues()[1].enabled);
  Write16(COMMON(queue_enable), 1);
  EXPECT_TRUE(config_.queues()[1].enabled);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 1u);
  Write16(COMMON(queue_enable), 0);
  EXPECT_TRUE(config_.queues()[1].enabled);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 1u);
  EXPECT_FALSE(config_.queues()[0].enabled);
}

TEST_F(VirtioPciCommonConfigTest, WrongSizeWritesAreIgnored) {
  Write16(COMMON(device_feature_select), 1);
  EXPECT_EQ(Read32(COMMON(device_feature_select)), 0u);
  Write8(COMMON(guest_feature_select), 1);
  EXPECT_EQ(Read32(COMMON(guest_feature_select)), 0u);
  Write16(COMMON(guest_feature), 0xffff);
  Write64(COMMON(guest_feature_select), 0xffffffff00000000);
  EXPECT_EQ(config_.driver_features(), 0u);
  Write32(COMMON(msix_config), 1);
  EXPECT_EQ(Read16(COMMON(msix_config)), kNoMsixVector);
  Write16(COMMON(device_status), kAcknowledge);
  Write32(COMMON(device_status), kAcknowledge);
  EXPECT_EQ(Status(), 0);
  Write8(COMMON(queue_select), 1);
  Write32(COMMON(queue_select), 1);
  EXPECT_EQ(Read16(COMMON(queue_select)), 0u);
  Write8(COMMON(queue_size), 16);
  Write32(COMMON(queue_size), 16);
  EXPECT_EQ(Read16(COMMON(queue_size)), kQueue0Max);
  Write8(COMMON(queue_msix_vector), 1);
  EXPECT_EQ(Read16(COMMON(queue_msix_vector)), kNoMsixVector);
  Write8(COMMON(queue_enable), 1);
  Write32(COMMON(queue_enable), 1);
  EXPECT_EQ(Read16(COMMON(queue_enable)), 0u);
  Write16(COMMON(queue_desc_lo), 0x1000);
  Write64(COMMON(queue_desc_hi), 0x1000);
  Write8(COMMON(queue_avail_hi), 1);
  Write16(COMMON(queue_used_lo), 0x1000);
  const QueueRegisters& q = config_.queues()[0];
  EXPECT_EQ(q.desc, 0u);
  EXPECT_EQ(q.driver, 0u);
  EXPECT_EQ(q.device, 0u);
  EXPECT_EQ(config_.Write(COMMON(queue_desc_lo), std::vector<uint8_t>(16, 0x11)), Action::kNone);
  EXPECT_EQ(q.desc, 0u);
}

TEST_F(VirtioPciCommonConfigTest, UnalignedWritesAreIgnored) {
  Write16(COMMON(queue_size) + 1, 16);
  EXPECT_EQ(Read16(COMMON(queue_size)), kQueue0Max);
  Write32(COMMON(queue_desc_lo) + 2, 0x1000);
  Write32(COMMON(queue_desc_lo) + 1, 0x1000);
  EXPECT_EQ(config_.queues()[0].desc, 0u);
  Write16(COMMON(queue_select) + 1, 1);
  EXPECT_EQ(Read16(COMMON(queue_select)), 0u);
  Write32(COMMON(guest_feature) + 2, 0xffffffff);
  EXPECT_EQ(config_.driver_features(), 0u);
  // A status byte arriving inside a wider write to the dword that holds it.
  Write16(COMMON(msix_config) + 1, 0x0100);
  EXPECT_EQ(Read16(COMMON(msix_config)), kNoMsixVector);
  EXPECT_EQ(Status(), 0);
}

TEST_F(VirtioPciCommonConfigTest, ReadsOfAnyWidthComeFromTheRegisterFile) {
  SelectQueue(1);
  Write16(COMMON(queue_size), 0x40);
  // queue_select and queue_size share a dword; a 32-bit read returns both.
  EXPECT_EQ(Read32(COMMON(queue_select)), 0x00400001u);
  EXPECT_EQ(Read8(COMMON(queue_size) + 0), 0x40u);
  EXPECT_EQ(Read8(COMMON(queue_size) + 1), 0x00u);
  EXPECT_EQ(Read8(COMMON(config_generation)), 0u);
}

TEST_F(VirtioPciCommonConfigTest, ReadsPastTheStructureReturnZero) {
  constexpr uint64_t kEnd = sizeof(virtio_pci_common_cfg);
  EXPECT_EQ(Read32(kEnd), 0u);
  EXPECT_EQ(Read32(kEnd - 2), 0u) << "a read straddling the end";
  EXPECT_EQ(Read(kEnd + 0x1000, 8), 0u);
  EXPECT_EQ(Write32(kEnd, 0xffffffff), Action::kNone);
}

TEST_F(VirtioPciCommonConfigTest, ClearingDriverOkWithoutResetDoesNotReactivate) {
  // §2.1.2: the driver MUST NOT clear a device status bit; only writing 0 resets. A driver that
  // does anyway must not get a second activation of a running device, nor writable queues.
  NegotiateFeatures(kVersion1);
  ASSERT_EQ(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kActivate);
  SetStatus(kAcknowledge | kDriver | kFeaturesOk);
  Write64(COMMON(queue_desc_lo), 0x5000);
  EXPECT_EQ(config_.queues()[0].desc, 0u) << "queue registers became writable again";
  EXPECT_NE(SetStatus(kAcknowledge | kDriver | kFeaturesOk | kDriverOk), Action::kActivate)
      << "a running device was activated a second time";
}

}  // namespace
}  // namespace minivmm::virtio
