#include "devices/virtio/virtio_pci_function.h"

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "devices/virtio/ring_features.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm::virtio {
namespace {

using Layout = VirtioPciBarLayout;

// PCI IDs of virtio devices (virtio 1.2 §4.1.2): Red Hat's vendor ID, device ID 0x1040 plus
// the virtio device ID for modern-only devices, revision 1 to say "not transitional".
constexpr uint16_t kVirtioVendorId = 0x1af4;
constexpr uint16_t kModernDeviceIdBase = 0x1040;
constexpr uint8_t kModernRevision = 1;
// Subsystem device ID >= 0x40 (§4.1.2.1 recommends it for modern devices).
constexpr uint16_t kSubsystemId = 0x1100;

// The ISR status bits (§4.1.4.5).
constexpr uint8_t kIsrQueue = 0x1;                     // bit 0: a queue was used
constexpr uint8_t kIsrConfig = VIRTIO_PCI_ISR_CONFIG;  // bit 1: configuration changed

// Body of a struct virtio_pci_cap after the generic ID and next bytes (§4.1.4).
std::vector<uint8_t> VirtioCapBody(uint8_t cfg_type, uint64_t offset, uint64_t length,
                                   std::optional<uint32_t> notify_multiplier = std::nullopt) {
  virtio_pci_notify_cap cap{};
  cap.cap.cap_len = notify_multiplier ? sizeof(virtio_pci_notify_cap) : sizeof(virtio_pci_cap);
  cap.cap.cfg_type = cfg_type;
  cap.cap.bar = 0;
  cap.cap.offset = static_cast<uint32_t>(offset);
  cap.cap.length = static_cast<uint32_t>(length);
  if (notify_multiplier) cap.notify_off_multiplier = *notify_multiplier;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&cap);
  // Skip cap_vndr and cap_next, which PciConfigSpace::AddCapability writes.
  return std::vector<uint8_t>(bytes + 2, bytes + cap.cap.cap_len);
}

bool InArea(uint64_t offset, size_t size, uint64_t area) {
  return offset >= area && offset + size <= area + Layout::kAreaSize;
}

}  // namespace

// BAR 0 as a bus device. Holds the function weakly: the function owns the registration and
// drops it before it goes away.
class VirtioPciFunction::BarDevice : public BusDevice {
 public:
  explicit BarDevice(VirtioPciFunction* function) : function_(function) {}
  std::string_view Name() const override { return function_->Name(); }
  void Read(uint64_t offset, std::span<uint8_t> data) override { function_->ReadBar(offset, data); }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    function_->WriteBar(offset, data);
  }

 private:
  VirtioPciFunction* function_;
};

absl::StatusOr<std::shared_ptr<VirtioPciFunction>> VirtioPciFunction::Create(
    std::unique_ptr<VirtioDevice> device, const VirtioPciResources& resources) {
  const size_t queues = device->queue_max_sizes().size();
  const uint16_t vectors = static_cast<uint16_t>(queues + 1);  // one per queue + config changes
  if (queues == 0 || vectors * MsixTable::kEntrySize > Layout::kMsixPba - Layout::kMsixTable) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: unsupported number of queues %d", device->Name(), queues));
  }
  std::vector<std::unique_ptr<MsiInterrupt>> msi;
  for (uint16_t i = 0; i < vectors; ++i) {
    MINIVMM_ASSIGN_OR_RETURN(std::unique_ptr<MsiInterrupt> vector, resources.msi->AllocateMsi());
    msi.push_back(std::move(vector));
  }
  auto msix = std::make_unique<MsixTable>(std::move(msi));

  PciIds ids{};
  ids.vendor_id = kVirtioVendorId;
  ids.device_id = static_cast<uint16_t>(kModernDeviceIdBase + device->device_type());
  ids.subsystem_vendor_id = kVirtioVendorId;
  ids.subsystem_id = kSubsystemId;
  ids.revision = kModernRevision;
  ids.class_code = device->pci_class_code();
  PciConfigSpace config(ids);
  MINIVMM_RETURN_IF_ERROR(config.AddBar(0, PciBarKind::kMemory64, Layout::kBarSize));
  MINIVMM_RETURN_IF_ERROR(config.SetBarAddress(0, resources.bar_address));
  config.SetInterruptPin(1);  // INTA#
  config.raw()[PCI_INTERRUPT_LINE] = resources.intx_line;

  // The driver finds each area through a vendor-specific capability (§4.1.4); none of their
  // fields is guest-writable.
  const std::vector<std::vector<uint8_t>> caps = {
      VirtioCapBody(VIRTIO_PCI_CAP_COMMON_CFG, Layout::kCommonConfig,
                    sizeof(virtio_pci_common_cfg)),
      VirtioCapBody(VIRTIO_PCI_CAP_NOTIFY_CFG, Layout::kNotify,
                    Layout::kNotifyOffMultiplier * queues, Layout::kNotifyOffMultiplier),
      VirtioCapBody(VIRTIO_PCI_CAP_ISR_CFG, Layout::kIsr, 1),
      VirtioCapBody(VIRTIO_PCI_CAP_DEVICE_CFG, Layout::kDeviceConfig,
                    std::max<size_t>(device->config_size(), 4)),
  };
  for (const std::vector<uint8_t>& body : caps) {
    MINIVMM_RETURN_IF_ERROR(config.AddCapability(PCI_CAP_ID_VNDR, body, {}).status());
  }
  MINIVMM_ASSIGN_OR_RETURN(MsixCapabilityBytes msix_body,
                           MsixCapabilityBody(vectors, 0, Layout::kMsixTable, 0, Layout::kMsixPba));
  MINIVMM_ASSIGN_OR_RETURN(uint8_t msix_cap, config.AddCapability(PCI_CAP_ID_MSIX, msix_body.body,
                                                                  msix_body.writable_mask));

  uint64_t offered = device->features() | (1ull << VIRTIO_F_VERSION_1) |
                     (1ull << kRingIndirectDescFeature) | (1ull << kRingEventIdxFeature);
  std::shared_ptr<VirtioPciFunction> function(new VirtioPciFunction(
      std::move(device), resources, std::move(config), std::move(msix), msix_cap, offered));
  MINIVMM_RETURN_IF_ERROR(function->Init());
  return function;
}

VirtioPciFunction::VirtioPciFunction(std::unique_ptr<VirtioDevice> device,
                                     const VirtioPciResources& resources, PciConfigSpace config,
                                     std::unique_ptr<MsixTable> msix, uint8_t msix_cap,
                                     uint64_t offered)
    : name_(std::string(device->Name())),
      device_(std::move(device)),
      resources_(resources),
      config_(std::move(config)),
      common_(offered, device_->queue_max_sizes(), static_cast<uint16_t>(msix->table_size())),
      msix_cap_(msix_cap),
      msix_(std::move(msix)) {
  const size_t queues = device_->queue_max_sizes().size();
  queue_vectors_ = std::make_unique<std::atomic<uint16_t>[]>(queues);
  for (size_t i = 0; i < queues; ++i) queue_vectors_[i] = kNoMsixVector;
}

absl::Status VirtioPciFunction::Init() {
  bar_device_ = std::make_shared<BarDevice>(this);
  for (size_t i = 0; i < device_->queue_max_sizes().size(); ++i) {
    absl::StatusOr<EventFd> kick = EventFd::Create(absl::StrFormat("%s queue %d", name_, i));
    if (!kick.ok()) return kick.status();
    kick_fds_.push_back(std::move(*kick));
  }
  return absl::OkStatus();
}

VirtioPciFunction::~VirtioPciFunction() {
  absl::MutexLock lock(&mutex_);
  ResetDevice();
  bar_registration_ = BusRegistration();
}

void VirtioPciFunction::ReadConfig(uint32_t offset, std::span<uint8_t> data) {
  absl::MutexLock lock(&mutex_);
  config_.Read(offset, data);
}

void VirtioPciFunction::WriteConfig(uint32_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mutex_);
  const PciConfigSpace::WriteEffect effect = config_.Write(offset, data);
  if (effect.bars_changed.any() || effect.command_changed) UpdateBarMapping();
  // The command register's Interrupt Disable bit gates INTx (PCI 3.0 §6.2.2): a pending
  // interrupt shows on the line only while the bit is clear.
  // Bus Master Enable gates the device's access to guest memory (see Activation::bus_master).
  // Work that waited for it resumes through the queues' kick fds.
  const bool bus_master = (config_.command() & PCI_COMMAND_MASTER) != 0;
  if (bus_master_.exchange(bus_master, std::memory_order_acq_rel) != bus_master && bus_master &&
      active_) {
    for (size_t i = 0; i < common_.queues().size(); ++i) {
      if (common_.queues()[i].enabled) (void)kick_fds_[i].Signal();
    }
  }
  const bool intx_disabled = (config_.command() & PCI_COMMAND_INTX_DISABLE) != 0;
  if (intx_disabled_.exchange(intx_disabled) != intx_disabled && !msix_->enabled()) {
    resources_.intx->SetLevel(!intx_disabled && isr_.load() != 0);
  }
  const uint32_t control = msix_cap_ + PCI_MSIX_FLAGS;
  if (offset < control + 2 && offset + data.size() > control) {
    const uint16_t flags = config_.ReadU16(control);
    msix_->SetControl((flags & PCI_MSIX_FLAGS_ENABLE) != 0, (flags & PCI_MSIX_FLAGS_MASKALL) != 0);
    // With MSI-X on, INTx is not used (PCI 3.0 §6.8.2.3); drop a level raised before.
    if (msix_->enabled()) resources_.intx->SetLevel(false);
  }
}

void VirtioPciFunction::UpdateBarMapping() {
  std::optional<uint64_t> wanted;
  if (config_.BarDecoding(0)) wanted = config_.BarAddress(0);
  if (wanted == mapped_bar_) return;
  doorbells_.clear();
  bar_registration_ = BusRegistration();
  mapped_bar_.reset();
  if (wanted) {
    absl::StatusOr<BusRegistration> registration =
        resources_.mmio_bus->Register(*wanted, Layout::kBarSize, bar_device_);
    if (registration.ok()) {
      bar_registration_ = std::move(*registration);
      mapped_bar_ = wanted;
    } else {
      MINIVMM_LOG_GUEST_ERROR("%s: BAR 0 not mapped: %s", name_, registration.status().ToString());
    }
  }
  UpdateDoorbells();
}

void VirtioPciFunction::UpdateDoorbells() {
  doorbells_.clear();
  if (!active_ || !mapped_bar_ || resources_.write_events == nullptr) return;
  for (size_t i = 0; i < common_.queues().size(); ++i) {
    if (!common_.queues()[i].enabled) continue;
    // Linux writes the 16-bit queue index to the doorbell (§4.1.4.4); other widths still
    // reach WriteBar and kick the queue from there.
    absl::StatusOr<std::unique_ptr<MmioWriteEvents::Registration>> registration =
        resources_.write_events->Watch(
            *mapped_bar_ + Layout::kNotify + Layout::kNotifyOffMultiplier * i, 2,
            kick_fds_[i].fd());
    if (!registration.ok()) {
      Log(LogLevel::kWarning, "%s: queue %d notifications will trap: %s", name_, i,
          registration.status().ToString());
      continue;
    }
    doorbells_.push_back(std::move(*registration));
  }
}

void VirtioPciFunction::Activate(bool resume) {
  if (active_) return;  // the register file allows DRIVER_OK once per reset; stay defensive
  Activation activation;
  activation.memory = resources_.memory;
  activation.features = common_.driver_features();
  for (size_t i = 0; i < common_.queues().size(); ++i) {
    const QueueRegisters& q = common_.queues()[i];
    if (!q.enabled) continue;
    if (absl::Status valid = ValidateQueueLayout(*resources_.memory, q.layout()); !valid.ok()) {
      MINIVMM_LOG_GUEST_ERROR("%s: queue %d: %s", name_, i, valid.ToString());
      common_.SetNeedsReset();
      SignalConfigChange();
      return;
    }
    uint16_t start_index = 0;
    if (resume) {
      absl::StatusOr<uint16_t> used = UsedIndex(q.layout());
      if (!used.ok()) {
        MINIVMM_LOG_GUEST_ERROR("%s: queue %d: %s", name_, i, used.status().ToString());
        common_.SetNeedsReset();
        SignalConfigChange();
        return;
      }
      start_index = *used;
    }
    const uint16_t index = static_cast<uint16_t>(i);
    activation.queues.push_back({.index = index,
                                 .layout = q.layout(),
                                 .kick_fd = kick_fds_[i].fd(),
                                 .signal_used = [this, index] { SignalQueue(index); },
                                 .start_index = start_index});
  }
  activation.bus_master = &bus_master_;
  activation.signal_config_change = [this] { SignalConfigChange(); };
  activation.report_broken = [this] {
    needs_reset_.store(true);
    SignalConfigChange();
  };
  if (absl::Status status = device_->Activate(std::move(activation)); !status.ok()) {
    Log(LogLevel::kWarning, "%s: cannot start: %s", name_, status.ToString());
    common_.SetNeedsReset();
    SignalConfigChange();
    return;
  }
  active_ = true;
  UpdateDoorbells();
  Log(LogLevel::kDebug, "%s: driver ready: features %#x, %d queue doorbells%s", name_,
      common_.driver_features(), doorbells_.size(), msix_->enabled() ? ", MSI-X" : ", INTx");
}

absl::StatusOr<uint16_t> VirtioPciFunction::UsedIndex(const QueueLayout& layout) const {
  // struct vring_used starts with le16 flags, then le16 idx (virtio 1.2 §2.7.8).
  uint16_t idx = 0;
  MINIVMM_RETURN_IF_ERROR(resources_.memory->Read(
      layout.used_ring + 2, std::span(reinterpret_cast<uint8_t*>(&idx), sizeof(idx))));
  return idx;
}

void VirtioPciFunction::PublishVectors() {
  for (size_t i = 0; i < common_.queues().size(); ++i) {
    queue_vectors_[i].store(common_.queues()[i].msix_vector);
  }
  config_vector_.store(common_.config_msix_vector());
}

void VirtioPciFunction::Quiesce() {
  absl::MutexLock lock(&mutex_);
  if (!active_) return;
  // The device finishes the round in hand and stops; kicks that arrive meanwhile stay in
  // their eventfds and are served after Resume.
  device_->Reset();
  active_ = false;
  quiesced_ = true;
}

void VirtioPciFunction::Resume() {
  absl::MutexLock lock(&mutex_);
  if (!quiesced_) return;
  quiesced_ = false;
  Activate(/*resume=*/true);
}

state::VirtioPciState VirtioPciFunction::SaveState() {
  absl::MutexLock lock(&mutex_);
  state::VirtioPciState state;
  state.set_name(name_);
  *state.mutable_config() = config_.SaveState();
  *state.mutable_msix() = msix_->SaveState();
  *state.mutable_common() = common_.SaveState();
  state.set_isr(isr_.load());
  state.set_needs_reset(needs_reset_.load());
  return state;
}

absl::Status VirtioPciFunction::RestoreState(const state::VirtioPciState& state) {
  if (state.name() != name_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the snapshot has %s here, the VM description %s: restore with the description saved "
        "beside the snapshot",
        state.name(), name_));
  }
  if (state.isr() > 0xff) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: saved ISR %#x does not fit its 8 bits", name_, state.isr()));
  }
  absl::MutexLock lock(&mutex_);
  if (active_ || quiesced_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: state restored into a device that already runs", name_));
  }
  MINIVMM_RETURN_IF_ERROR(config_.RestoreState(state.config()));
  MINIVMM_RETURN_IF_ERROR(common_.RestoreState(state.common()));
  MINIVMM_RETURN_IF_ERROR(msix_->RestoreState(state.msix()));
  isr_.store(static_cast<uint8_t>(state.isr()));
  needs_reset_.store(state.needs_reset());
  bus_master_.store((config_.command() & PCI_COMMAND_MASTER) != 0);
  intx_disabled_.store((config_.command() & PCI_COMMAND_INTX_DISABLE) != 0);
  PublishVectors();
  UpdateBarMapping();
  // An INTx the driver had not acknowledged yet is still asserted.
  if (!msix_->enabled() && isr_.load() != 0 && !intx_disabled_.load()) {
    resources_.intx->SetLevel(true);
  }
  if ((common_.status() & VIRTIO_CONFIG_S_DRIVER_OK) != 0 &&
      (common_.status() & VIRTIO_CONFIG_S_NEEDS_RESET) == 0) {
    Activate(/*resume=*/true);
  }
  return absl::OkStatus();
}

void VirtioPciFunction::ResetDevice() {
  device_->Reset();
  needs_reset_.store(false);
  active_ = false;
  quiesced_ = false;
  doorbells_.clear();
  isr_.store(0);
  resources_.intx->SetLevel(false);
  for (EventFd& kick : kick_fds_) kick.Drain();  // drop kicks meant for the old queues
}

void VirtioPciFunction::ReadBar(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (InArea(offset, data.size(), Layout::kCommonConfig)) {
    absl::MutexLock lock(&mutex_);
    // A worker reported a broken queue; it cannot take mutex_ itself (Reset holds it while
    // joining the worker), so the status bit is folded in here.
    if (needs_reset_.exchange(false)) common_.SetNeedsReset();
    common_.Read(offset - Layout::kCommonConfig, data);
  } else if (offset == Layout::kIsr) {
    // Reading the ISR acknowledges it and deasserts INTx (§4.1.4.5.1).
    data[0] = isr_.exchange(0);
    if (!msix_->enabled()) {
      resources_.intx->SetLevel(false);
      // A worker may have set a bit and raised the line between the exchange and the lowering
      // above; re-raise it, or that interrupt is lost.
      if (isr_.load() != 0 && !intx_disabled_.load()) resources_.intx->SetLevel(true);
    }
  } else if (InArea(offset, data.size(), Layout::kDeviceConfig)) {
    const uint64_t config_offset = offset - Layout::kDeviceConfig;
    if (config_offset + data.size() <= device_->config_size()) {
      device_->ReadConfig(config_offset, data);
    }
  } else if (offset >= Layout::kMsixTable && offset < Layout::kMsixPba) {
    msix_->ReadTable(offset - Layout::kMsixTable, data);
  } else if (offset >= Layout::kMsixPba && offset < Layout::kBarSize) {
    msix_->ReadPba(offset - Layout::kMsixPba, data);
  }
}

void VirtioPciFunction::WriteBar(uint64_t offset, std::span<const uint8_t> data) {
  if (InArea(offset, data.size(), Layout::kCommonConfig)) {
    absl::MutexLock lock(&mutex_);
    const VirtioPciCommonConfig::Action action =
        common_.Write(offset - Layout::kCommonConfig, data);
    if (action == VirtioPciCommonConfig::Action::kReset) ResetDevice();
    if (action == VirtioPciCommonConfig::Action::kActivate) Activate();
    PublishVectors();
  } else if (InArea(offset, data.size(), Layout::kDeviceConfig)) {
    const uint64_t config_offset = offset - Layout::kDeviceConfig;
    if (config_offset + data.size() <= device_->config_size()) {
      device_->WriteConfig(config_offset, data);
    }
  } else if (InArea(offset, data.size(), Layout::kNotify)) {
    // A doorbell write that KVM did not turn into an eventfd signal itself.
    const uint64_t queue = (offset - Layout::kNotify) / Layout::kNotifyOffMultiplier;
    if (queue < kick_fds_.size()) (void)kick_fds_[queue].Signal();
  } else if (offset >= Layout::kMsixTable && offset < Layout::kMsixPba) {
    msix_->WriteTable(offset - Layout::kMsixTable, data);
  } else {
    MINIVMM_LOG_GUEST_ERROR("%s: %d-byte write to BAR 0 offset %#x ignored", name_, data.size(),
                            offset);
  }
}

void VirtioPciFunction::SignalQueue(uint16_t queue) {
  Interrupt(kIsrQueue, queue_vectors_[queue].load());
}

void VirtioPciFunction::SignalConfigChange() { Interrupt(kIsrConfig, config_vector_.load()); }

void VirtioPciFunction::Interrupt(uint8_t isr_bit, uint16_t vector) {
  isr_.fetch_or(isr_bit);
  if (msix_->enabled()) {
    if (vector != kNoMsixVector) msix_->Notify(vector);
  } else if (!intx_disabled_.load()) {
    resources_.intx->SetLevel(true);
  }
}

}  // namespace minivmm::virtio
