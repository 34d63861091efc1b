// The virtio-over-PCI common configuration structure (virtio 1.2 §4.1.4.3): feature
// negotiation, device status and per-queue setup, as a register file. It only records what the
// driver programs and reports what the transport must do (reset, activate); it never touches
// guest memory, so its rules are unit-tested on their own.
#ifndef MINIVMM_DEVICES_VIRTIO_VIRTIO_PCI_COMMON_CONFIG_H_
#define MINIVMM_DEVICES_VIRTIO_VIRTIO_PCI_COMMON_CONFIG_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "devices/virtio/virtio_state.pb.h"
#include "devices/virtio/virtqueue.h"

namespace minivmm::virtio {

// queue_msix_vector / config_msix_vector value meaning "no vector" (§4.1.4.3).
inline constexpr uint16_t kNoMsixVector = 0xffff;

struct QueueRegisters {
  uint16_t max_size = 0;  // what the device supports; queue_size starts here
  uint16_t size = 0;
  uint16_t msix_vector = kNoMsixVector;
  bool enabled = false;
  uint64_t desc = 0, driver = 0, device = 0;  // descriptor area, driver (avail), device (used)

  QueueLayout layout() const { return {size, desc, driver, device}; }
};

class VirtioPciCommonConfig {
 public:
  // What a register write asks of the transport.
  enum class Action { kNone, kReset, kActivate };

  // offered: the full feature set the device offers (transport bits included).
  // msix_vectors: table size, so out-of-range vector numbers read back as kNoMsixVector.
  VirtioPciCommonConfig(uint64_t offered, std::vector<uint16_t> queue_max_sizes,
                        uint16_t msix_vectors);

  void Read(uint64_t offset, std::span<uint8_t> data) const;
  Action Write(uint64_t offset, std::span<const uint8_t> data);

  // Back to the reset state (status 0, no features, queues disabled and at max size).
  void Reset();
  // Sets DEVICE_NEEDS_RESET (§2.1.2), e.g. when activation failed or the driver broke a rule.
  void SetNeedsReset();

  // Snapshot and restore of every register. RestoreState accepts what the driver's writes could
  // have produced and checks the whole message first; on a bad field it changes nothing and
  // names the field. It reports no Action: the transport starts the queues itself when the
  // restored status has DRIVER_OK.
  state::VirtioCommonConfigState SaveState() const;
  absl::Status RestoreState(const state::VirtioCommonConfigState& s);

  uint8_t status() const { return status_; }
  uint64_t driver_features() const { return driver_features_; }
  uint16_t config_msix_vector() const { return config_msix_vector_; }
  const std::vector<QueueRegisters>& queues() const { return queues_; }

 private:
  void WriteStatus(uint8_t value, Action* action);
  QueueRegisters* SelectedQueue();
  const QueueRegisters* SelectedQueue() const;
  uint16_t CheckVector(uint16_t vector) const;
  absl::Status CheckState(const state::VirtioCommonConfigState& s) const;

  const uint64_t offered_;
  const uint16_t msix_vectors_;
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  uint64_t driver_features_ = 0;
  uint16_t config_msix_vector_ = kNoMsixVector;
  uint8_t status_ = 0;
  uint16_t queue_select_ = 0;
  std::vector<QueueRegisters> queues_;
};

}  // namespace minivmm::virtio

#endif  // MINIVMM_DEVICES_VIRTIO_VIRTIO_PCI_COMMON_CONFIG_H_
