// VirtioPciCommonConfig::SaveState/RestoreState: a restored register file reads the same to
// the driver and keeps the rules that depend on its state (read-only queues after DRIVER_OK).
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "devices/virtio/virtio_pci_common_config.h"
#include "devices/virtio/virtio_state.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm::virtio {
namespace {

using ::testing::HasSubstr;

#define COMMON(field) offsetof(virtio_pci_common_cfg, field)

constexpr uint64_t kVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;
constexpr uint64_t kOffered = uint64_t{1} << 0 | kVersion1;
constexpr uint16_t kQueue0Max = 256;
constexpr uint16_t kQueue1Max = 128;
constexpr uint16_t kMsixVectors = 3;
constexpr uint8_t kFeaturesOkStatus =
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
constexpr uint8_t kRunningStatus = kFeaturesOkStatus | VIRTIO_CONFIG_S_DRIVER_OK;

// The driver's side of one register file.
class Driver {
 public:
  explicit Driver(VirtioPciCommonConfig& config) : config_(config) {}

  uint64_t Read(uint64_t offset, size_t size) const {
    std::vector<uint8_t> bytes(size);
    config_.Read(offset, bytes);
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) value |= uint64_t{bytes[i]} << (8 * i);
    return value;
  }
  VirtioPciCommonConfig::Action Write(uint64_t offset, size_t size, uint64_t value) {
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    return config_.Write(offset, bytes);
  }

  // §3.1.1 with both queues set up, queue 1 at a lowered size; the last queue selected is 1.
  void Initialize() {
    Write(COMMON(device_status), 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    Write(COMMON(device_status), 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    Write(COMMON(guest_feature_select), 4, 1);
    Write(COMMON(guest_feature), 4, static_cast<uint32_t>(kOffered >> 32));
    Write(COMMON(guest_feature_select), 4, 0);
    Write(COMMON(guest_feature), 4, static_cast<uint32_t>(kOffered));
    Write(COMMON(device_status), 1, kFeaturesOkStatus);
    Write(COMMON(msix_config), 2, 0);
    for (uint16_t queue = 0; queue < 2; ++queue) {
      Write(COMMON(queue_select), 2, queue);
      if (queue == 1) Write(COMMON(queue_size), 2, 64);
      Write(COMMON(queue_msix_vector), 2, queue + 1);
      Write(COMMON(queue_desc_lo), 8, 0x10000 * (queue + 1));
      Write(COMMON(queue_avail_lo), 8, 0x10000 * (queue + 1) + 0x4000);
      Write(COMMON(queue_used_lo), 8, 0x10000 * (queue + 1) + 0x8000);
      Write(COMMON(queue_enable), 2, 1);
    }
    Write(COMMON(device_feature_select), 4, 1);
    Write(COMMON(device_status), 1, kRunningStatus);
  }

 private:
  VirtioPciCommonConfig& config_;
};

VirtioPciCommonConfig NewConfig() {
  return VirtioPciCommonConfig(kOffered, {kQueue0Max, kQueue1Max}, kMsixVectors);
}

TEST(VirtioPciCommonConfigStateTest, RestoredRegistersReadTheSameAndQueuesStayReadOnly) {
  VirtioPciCommonConfig config = NewConfig();
  Driver(config).Initialize();
  const state::VirtioCommonConfigState saved = config.SaveState();

  VirtioPciCommonConfig restored = NewConfig();
  ASSERT_TRUE(restored.RestoreState(saved).ok());
  EXPECT_EQ(restored.SaveState().SerializeAsString(), saved.SerializeAsString());
  Driver driver(restored);
  EXPECT_EQ(driver.Read(COMMON(device_status), 1), kRunningStatus);
  EXPECT_EQ(driver.Read(COMMON(device_feature_select), 4), 1u);
  EXPECT_EQ(driver.Read(COMMON(device_feature), 4), kOffered >> 32);
  EXPECT_EQ(driver.Read(COMMON(guest_feature_select), 4), 0u);
  EXPECT_EQ(driver.Read(COMMON(guest_feature), 4), static_cast<uint32_t>(kOffered));
  EXPECT_EQ(driver.Read(COMMON(msix_config), 2), 0u);
  EXPECT_EQ(driver.Read(COMMON(queue_select), 2), 1u);
  EXPECT_EQ(driver.Read(COMMON(queue_size), 2), 64u);
  EXPECT_EQ(driver.Read(COMMON(queue_msix_vector), 2), 2u);
  EXPECT_EQ(driver.Read(COMMON(queue_enable), 2), 1u);
  EXPECT_EQ(driver.Read(COMMON(queue_desc_lo), 8), 0x20000u);
  EXPECT_EQ(driver.Read(COMMON(queue_avail_lo), 8), 0x24000u);
  EXPECT_EQ(driver.Read(COMMON(queue_used_lo), 8), 0x28000u);
  EXPECT_EQ(restored.driver_features(), kOffered);
  EXPECT_EQ(restored.queues()[0].layout().desc_table, 0x10000u);
  EXPECT_EQ(restored.queues()[0].size, kQueue0Max);

  // DRIVER_OK came back with the state, so the queue registers are read-only again.
  driver.Write(COMMON(queue_size), 2, 32);
  driver.Write(COMMON(queue_desc_lo), 8, 0x90000);
  EXPECT_EQ(driver.Read(COMMON(queue_size), 2), 64u);
  EXPECT_EQ(driver.Read(COMMON(queue_desc_lo), 8), 0x20000u);
}

TEST(VirtioPciCommonConfigStateTest, RefusesStateThisDeviceCouldNotHaveChangingNothing) {
  VirtioPciCommonConfig config = NewConfig();
  Driver(config).Initialize();
  const state::VirtioCommonConfigState good = config.SaveState();
  const std::string before = good.SerializeAsString();

  auto refusal = [&config](const state::VirtioCommonConfigState& s) {
    absl::Status status = config.RestoreState(s);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    return std::string(status.message());
  };
  state::VirtioCommonConfigState bad = good;
  bad.add_queues();
  bad.set_status(0);  // would reset the device if applied
  EXPECT_THAT(refusal(bad), HasSubstr("queues"));

  bad = good;
  bad.mutable_queues(1)->set_size(kQueue1Max + 1);
  EXPECT_THAT(refusal(bad), HasSubstr("queues[1].size"));

  bad = good;
  bad.mutable_queues(0)->set_msix_vector(kMsixVectors);
  EXPECT_THAT(refusal(bad), HasSubstr("queues[0].msix_vector"));

  bad = good;
  bad.set_config_msix_vector(0x10000 | kNoMsixVector);
  EXPECT_THAT(refusal(bad), HasSubstr("config_msix_vector"));

  bad = good;
  bad.set_driver_features(kOffered | uint64_t{1} << VIRTIO_F_RING_PACKED);
  EXPECT_THAT(refusal(bad), HasSubstr("driver_features"));

  bad = good;
  bad.set_status(0x100 | kRunningStatus);
  EXPECT_THAT(refusal(bad), HasSubstr("status"));

  EXPECT_EQ(config.SaveState().SerializeAsString(), before);
  EXPECT_EQ(Driver(config).Read(COMMON(device_status), 1), kRunningStatus);
}

TEST(VirtioPciCommonConfigStateTest, AcceptsWhatTheDriverCouldWriteBeforeFeaturesOk) {
  // Before FEATURES_OK the driver may write unoffered features and any lower queue size;
  // both are refused later (FEATURES_OK does not stick, activation rejects the size), not here.
  VirtioPciCommonConfig config = NewConfig();
  Driver driver(config);
  driver.Write(COMMON(device_status), 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  driver.Write(COMMON(guest_feature), 4, 0xffffffff);
  driver.Write(COMMON(queue_size), 2, 3);
  const state::VirtioCommonConfigState saved = config.SaveState();

  VirtioPciCommonConfig restored = NewConfig();
  ASSERT_TRUE(restored.RestoreState(saved).ok());
  EXPECT_EQ(restored.driver_features(), 0xffffffffu);
  EXPECT_EQ(restored.queues()[0].size, 3u);
  Driver(restored).Write(COMMON(device_status), 1, kFeaturesOkStatus);
  EXPECT_EQ(restored.status() & VIRTIO_CONFIG_S_FEATURES_OK, 0) << "unoffered features";
}

}  // namespace
}  // namespace minivmm::virtio
