#include "devices/virtio/virtio_pci_common_config.h"

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm::virtio {
namespace {

// Register offsets: struct virtio_pci_common_cfg (virtio 1.2 §4.1.4.3).
#define COMMON_OFFSET(field) offsetof(virtio_pci_common_cfg, field)
constexpr uint64_t kDeviceFeatureSelect = COMMON_OFFSET(device_feature_select);
constexpr uint64_t kDeviceFeature = COMMON_OFFSET(device_feature);
constexpr uint64_t kDriverFeatureSelect = COMMON_OFFSET(guest_feature_select);
constexpr uint64_t kDriverFeature = COMMON_OFFSET(guest_feature);
constexpr uint64_t kConfigMsixVector = COMMON_OFFSET(msix_config);
constexpr uint64_t kNumQueues = COMMON_OFFSET(num_queues);
constexpr uint64_t kDeviceStatus = COMMON_OFFSET(device_status);
constexpr uint64_t kConfigGeneration = COMMON_OFFSET(config_generation);
constexpr uint64_t kQueueSelect = COMMON_OFFSET(queue_select);
constexpr uint64_t kQueueSize = COMMON_OFFSET(queue_size);
constexpr uint64_t kQueueMsixVector = COMMON_OFFSET(queue_msix_vector);
constexpr uint64_t kQueueEnable = COMMON_OFFSET(queue_enable);
constexpr uint64_t kQueueNotifyOff = COMMON_OFFSET(queue_notify_off);
constexpr uint64_t kQueueDescLo = COMMON_OFFSET(queue_desc_lo);
constexpr uint64_t kQueueDescHi = COMMON_OFFSET(queue_desc_hi);
constexpr uint64_t kQueueDriverLo = COMMON_OFFSET(queue_avail_lo);
constexpr uint64_t kQueueDriverHi = COMMON_OFFSET(queue_avail_hi);
constexpr uint64_t kQueueDeviceLo = COMMON_OFFSET(queue_used_lo);
constexpr uint64_t kQueueDeviceHi = COMMON_OFFSET(queue_used_hi);
#undef COMMON_OFFSET
constexpr uint64_t kCommonConfigSize = sizeof(virtio_pci_common_cfg);

void SetHalf(uint64_t* value, bool high, uint32_t half) {
  const int shift = high ? 32 : 0;
  *value = (*value & ~(0xffffffffull << shift)) | (static_cast<uint64_t>(half) << shift);
}

}  // namespace

VirtioPciCommonConfig::VirtioPciCommonConfig(uint64_t offered,
                                             std::vector<uint16_t> queue_max_sizes,
                                             uint16_t msix_vectors)
    : offered_(offered), msix_vectors_(msix_vectors) {
  for (uint16_t max : queue_max_sizes) queues_.push_back({.max_size = max, .size = max});
}

void VirtioPciCommonConfig::Reset() {
  device_feature_select_ = driver_feature_select_ = 0;
  driver_features_ = 0;
  config_msix_vector_ = kNoMsixVector;
  status_ = 0;
  queue_select_ = 0;
  for (QueueRegisters& q : queues_) q = {.max_size = q.max_size, .size = q.max_size};
}

void VirtioPciCommonConfig::SetNeedsReset() { status_ |= VIRTIO_CONFIG_S_NEEDS_RESET; }

QueueRegisters* VirtioPciCommonConfig::SelectedQueue() {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

const QueueRegisters* VirtioPciCommonConfig::SelectedQueue() const {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

uint16_t VirtioPciCommonConfig::CheckVector(uint16_t vector) const {
  // A vector the table does not have reads back as NO_VECTOR, which is how the driver learns
  // the mapping failed (§4.1.5.1.2.1).
  return vector < msix_vectors_ ? vector : kNoMsixVector;
}

state::VirtioCommonConfigState VirtioPciCommonConfig::SaveState() const {
  state::VirtioCommonConfigState s;
  s.set_device_feature_select(device_feature_select_);
  s.set_driver_feature_select(driver_feature_select_);
  s.set_driver_features(driver_features_);
  s.set_config_msix_vector(config_msix_vector_);
  s.set_status(status_);
  s.set_queue_select(queue_select_);
  for (const QueueRegisters& q : queues_) {
    state::VirtioQueueState* saved = s.add_queues();
    saved->set_size(q.size);
    saved->set_msix_vector(q.msix_vector);
    saved->set_enabled(q.enabled);
    saved->set_desc(q.desc);
    saved->set_driver(q.driver);
    saved->set_device(q.device);
  }
  return s;
}

absl::Status VirtioPciCommonConfig::CheckState(const state::VirtioCommonConfigState& s) const {
  auto invalid = [](const std::string& what) {
    return absl::InvalidArgumentError("virtio common config state: " + what);
  };
  // A vector register holds a table index or NO_VECTOR: Write turns anything else into
  // NO_VECTOR (CheckVector), so another value did not come from this function.
  auto check_vector = [&](const std::string& field, uint32_t vector) {
    if (vector == kNoMsixVector || vector < msix_vectors_) return absl::OkStatus();
    return invalid(absl::StrFormat("%s = %#x is neither below the %d MSI-X vectors nor %#x", field,
                                   vector, msix_vectors_, kNoMsixVector));
  };
  if (static_cast<size_t>(s.queues_size()) != queues_.size()) {
    return invalid(absl::StrFormat("queues holds %d queues, this device has %d", s.queues_size(),
                                   queues_.size()));
  }
  if (s.status() > 0xff) {
    return invalid(absl::StrFormat("status = %#x does not fit in 8 bits", s.status()));
  }
  if (s.queue_select() > 0xffff) {
    return invalid(absl::StrFormat("queue_select = %#x does not fit in 16 bits", s.queue_select()));
  }
  // FEATURES_OK reads back only for offered features with VERSION_1 (WriteStatus); before it,
  // the driver may have written anything.
  const bool modern = (s.driver_features() >> VIRTIO_F_VERSION_1) & 1;
  if ((s.status() & VIRTIO_CONFIG_S_FEATURES_OK) != 0 &&
      ((s.driver_features() & ~offered_) != 0 || !modern)) {
    return invalid(absl::StrFormat(
        "driver_features = %#x with FEATURES_OK set: not VERSION_1 or not a subset of the "
        "offered %#x",
        s.driver_features(), offered_));
  }
  MINIVMM_RETURN_IF_ERROR(check_vector("config_msix_vector", s.config_msix_vector()));
  for (int i = 0; i < s.queues_size(); ++i) {
    const state::VirtioQueueState& q = s.queues(i);
    // Write lets the driver lower the size to any value (0 and non-powers of two included;
    // activation refuses those, virtio 1.2 §2.7), never raise it above the maximum.
    if (q.size() > queues_[i].max_size) {
      return invalid(absl::StrFormat("queues[%d].size = %d exceeds the queue's maximum %d", i,
                                     q.size(), queues_[i].max_size));
    }
    MINIVMM_RETURN_IF_ERROR(
        check_vector(absl::StrFormat("queues[%d].msix_vector", i), q.msix_vector()));
  }
  return absl::OkStatus();
}

absl::Status VirtioPciCommonConfig::RestoreState(const state::VirtioCommonConfigState& s) {
  MINIVMM_RETURN_IF_ERROR(CheckState(s));
  device_feature_select_ = s.device_feature_select();
  driver_feature_select_ = s.driver_feature_select();
  driver_features_ = s.driver_features();
  config_msix_vector_ = static_cast<uint16_t>(s.config_msix_vector());
  status_ = static_cast<uint8_t>(s.status());
  queue_select_ = static_cast<uint16_t>(s.queue_select());
  for (size_t i = 0; i < queues_.size(); ++i) {
    const state::VirtioQueueState& saved = s.queues(static_cast<int>(i));
    QueueRegisters& q = queues_[i];
    q.size = static_cast<uint16_t>(saved.size());
    q.msix_vector = static_cast<uint16_t>(saved.msix_vector());
    q.enabled = saved.enabled();
    q.desc = saved.desc();
    q.driver = saved.driver();
    q.device = saved.device();
  }
  return absl::OkStatus();
}

void VirtioPciCommonConfig::Read(uint64_t offset, std::span<uint8_t> data) const {
  // Reads are served from a snapshot of the structure for the selected queue, so any
  // naturally aligned access width returns what a real register file would.
  virtio_pci_common_cfg cfg{};
  cfg.device_feature_select = device_feature_select_;
  cfg.device_feature = device_feature_select_ < 2
                           ? static_cast<uint32_t>(offered_ >> (32 * device_feature_select_))
                           : 0;
  cfg.guest_feature_select = driver_feature_select_;
  cfg.guest_feature = driver_feature_select_ < 2
                          ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_))
                          : 0;
  cfg.msix_config = config_msix_vector_;
  cfg.num_queues = static_cast<uint16_t>(queues_.size());
  cfg.device_status = status_;
  cfg.config_generation = 0;  // the device configuration never changes under the driver
  cfg.queue_select = queue_select_;
  if (const QueueRegisters* q = SelectedQueue()) {
    // queue_size 0 marks a queue that does not exist (§4.1.4.3.2); ours all exist.
    cfg.queue_size = q->size;
    cfg.queue_msix_vector = q->msix_vector;
    cfg.queue_enable = q->enabled ? 1 : 0;
    cfg.queue_notify_off = queue_select_;
    cfg.queue_desc_lo = static_cast<uint32_t>(q->desc);
    cfg.queue_desc_hi = static_cast<uint32_t>(q->desc >> 32);
    cfg.queue_avail_lo = static_cast<uint32_t>(q->driver);
    cfg.queue_avail_hi = static_cast<uint32_t>(q->driver >> 32);
    cfg.queue_used_lo = static_cast<uint32_t>(q->device);
    cfg.queue_used_hi = static_cast<uint32_t>(q->device >> 32);
  }
  if (offset >= kCommonConfigSize || data.size() > kCommonConfigSize - offset) {
    std::memset(data.data(), 0, data.size());
    return;
  }
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&cfg) + offset, data.size());
}

VirtioPciCommonConfig::Action VirtioPciCommonConfig::Write(uint64_t offset,
                                                           std::span<const uint8_t> data) {
  uint64_t value = 0;
  if (data.size() > sizeof(value)) return Action::kNone;
  std::memcpy(&value, data.data(), data.size());
  const size_t size = data.size();
  auto is = [&](uint64_t field, size_t field_size) {
    return offset == field && size == field_size;
  };
  Action action = Action::kNone;
  QueueRegisters* q = SelectedQueue();
  // The driver may touch queue registers only before DRIVER_OK (§4.1.4.3.2); after that they
  // are read-only, so a running queue never changes under the device.
  const bool queue_writable = q != nullptr && (status_ & VIRTIO_CONFIG_S_DRIVER_OK) == 0;
  const bool features_writable = (status_ & VIRTIO_CONFIG_S_FEATURES_OK) == 0;
  if (is(kDeviceFeatureSelect, 4)) {
    device_feature_select_ = static_cast<uint32_t>(value);
  } else if (is(kDriverFeatureSelect, 4)) {
    driver_feature_select_ = static_cast<uint32_t>(value);
  } else if (is(kDriverFeature, 4)) {
    if (features_writable && driver_feature_select_ < 2) {
      SetHalf(&driver_features_, driver_feature_select_ == 1, static_cast<uint32_t>(value));
    }
  } else if (is(kConfigMsixVector, 2)) {
    config_msix_vector_ = CheckVector(static_cast<uint16_t>(value));
  } else if (is(kDeviceStatus, 1)) {
    WriteStatus(static_cast<uint8_t>(value), &action);
  } else if (is(kQueueSelect, 2)) {
    queue_select_ = static_cast<uint16_t>(value);
  } else if (is(kQueueSize, 2)) {
    // The driver may only lower the size (virtio 1.2 §4.1.4.3: "can be modified by the driver
    // to reduce memory requirements"); more than the device's maximum is clamped to it, so a
    // driver cannot make a queue, and the work one kick asks for, larger than the device's.
    if (queue_writable) q->size = std::min(static_cast<uint16_t>(value), q->max_size);
  } else if (is(kQueueMsixVector, 2)) {
    if (q != nullptr) q->msix_vector = CheckVector(static_cast<uint16_t>(value));
  } else if (is(kQueueEnable, 2)) {
    // Writing 0 is not allowed (§4.1.4.3.2); queues are disabled only by a device reset.
    if (queue_writable && value == 1) q->enabled = true;
  } else if (is(kQueueDescLo, 4) || is(kQueueDescHi, 4) || is(kQueueDescLo, 8)) {
    if (queue_writable) {
      size == 8 ? void(q->desc = value)
                : SetHalf(&q->desc, offset == kQueueDescHi, static_cast<uint32_t>(value));
    }
  } else if (is(kQueueDriverLo, 4) || is(kQueueDriverHi, 4) || is(kQueueDriverLo, 8)) {
    if (queue_writable) {
      size == 8 ? void(q->driver = value)
                : SetHalf(&q->driver, offset == kQueueDriverHi, static_cast<uint32_t>(value));
    }
  } else if (is(kQueueDeviceLo, 4) || is(kQueueDeviceHi, 4) || is(kQueueDeviceLo, 8)) {
    if (queue_writable) {
      size == 8 ? void(q->device = value)
                : SetHalf(&q->device, offset == kQueueDeviceHi, static_cast<uint32_t>(value));
    }
  } else if (offset == kDeviceFeature || offset == kNumQueues || offset == kConfigGeneration ||
             offset == kQueueNotifyOff) {
    MINIVMM_LOG_GUEST_ERROR("virtio-pci: write to read-only common config register %#x", offset);
  } else {
    MINIVMM_LOG_GUEST_ERROR("virtio-pci: %d-byte write to common config offset %#x ignored", size,
                            offset);
  }
  return action;
}

void VirtioPciCommonConfig::WriteStatus(uint8_t value, Action* action) {
  if (value == 0) {
    Reset();
    *action = Action::kReset;
    return;
  }
  const uint8_t kept = status_ & ~VIRTIO_CONFIG_S_NEEDS_RESET;
  if ((value & kept) != kept) {
    // Only a reset may clear status bits (§2.1.2). Honouring it would make the queue
    // registers writable under a running device and let DRIVER_OK start it twice.
    MINIVMM_LOG_GUEST_ERROR("virtio-pci: status write %#x clears bits of %#x without a reset",
                            value, status_);
    status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
    return;
  }
  uint8_t next = value;
  const bool features_ok_now =
      (value & VIRTIO_CONFIG_S_FEATURES_OK) != 0 && (status_ & VIRTIO_CONFIG_S_FEATURES_OK) == 0;
  if (features_ok_now) {
    // §3.1.1 step 5-6: the device refuses FEATURES_OK (it does not read back) for features it
    // did not offer, and this transport is modern-only, so VERSION_1 is mandatory (§6.1).
    const bool subset = (driver_features_ & ~offered_) == 0;
    const bool modern = (driver_features_ >> VIRTIO_F_VERSION_1) & 1;
    if (!subset || !modern) next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
  }
  const bool driver_ok_now =
      (next & VIRTIO_CONFIG_S_DRIVER_OK) != 0 && (status_ & VIRTIO_CONFIG_S_DRIVER_OK) == 0;
  if (driver_ok_now && (next & VIRTIO_CONFIG_S_FEATURES_OK) == 0) {
    // DRIVER_OK without accepted features is a driver bug: do not run.
    MINIVMM_LOG_GUEST_ERROR("virtio-pci: DRIVER_OK set without FEATURES_OK");
    status_ = next | VIRTIO_CONFIG_S_NEEDS_RESET;
    return;
  }
  status_ = next | (status_ & VIRTIO_CONFIG_S_NEEDS_RESET);
  if (driver_ok_now) *action = Action::kActivate;
}

}  // namespace minivmm::virtio
