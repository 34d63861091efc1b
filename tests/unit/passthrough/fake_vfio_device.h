// Fakes for passthrough tests: a VfioDevice with an in-memory config space and regions that
// records what is done to it, a BarMemoryMapper that records guest mappings, and a
// VfioInterruptSink whose vectors have real eventfds (so fds handed to VFIO can be compared).
// Single-threaded use only.
#ifndef MINIVMM_TESTS_UNIT_PASSTHROUGH_FAKE_VFIO_DEVICE_H_
#define MINIVMM_TESTS_UNIT_PASSTHROUGH_FAKE_VFIO_DEVICE_H_

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "passthrough/vfio_device.h"
#include "passthrough/vfio_interrupts.h"
#include "passthrough/vfio_pci_function.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

// Everything the fake device holds and records. Tests keep a shared_ptr to it so that they can
// inspect it after the function that owns the device is gone.
struct FakeVfioState {
  struct RegionAccess {
    uint32_t index = 0;
    uint64_t offset = 0;
    std::vector<uint8_t> data;
  };
  struct IrqCall {
    uint32_t index = 0;
    uint32_t start = 0;
    std::vector<int> fds;  // empty: DATA_NONE (disable)
  };

  std::array<uint8_t, 4096> config{};
  std::map<uint32_t, VfioRegionInfo> regions;
  std::map<uint32_t, std::vector<uint8_t>> region_data;  // contents of BARs and the ROM
  std::map<uint32_t, VfioIrqInfo> irqs;
  bool supports_reset = true;

  // Records, oldest first.
  std::vector<RegionAccess> region_reads;  // not config
  std::vector<RegionAccess> region_writes;
  std::vector<RegionAccess> config_writes;
  std::vector<IrqCall> irq_calls;
  struct MmapCall {
    uint32_t index = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
  };

  std::vector<std::pair<uint32_t, int>> unmask_calls;  // (index, fd)
  std::vector<MmapCall> mmaps;
  int resets = 0;
  // One line per SetIrqEventFds / SetIrqUnmaskEventFd / Reset / config write (and per guest
  // map/unmap when the FakeBarMemoryMapper shares it), to check order.
  std::vector<std::string> events;

  uint16_t ConfigU16(uint32_t at) const {
    return static_cast<uint16_t>(config[at] | config[at + 1] << 8);
  }
  uint32_t ConfigU32(uint32_t at) const {
    return uint32_t{ConfigU16(at)} | uint32_t{ConfigU16(at + 2)} << 16;
  }
  void SetU16(uint32_t at, uint16_t value) {
    config[at] = static_cast<uint8_t>(value);
    config[at + 1] = static_cast<uint8_t>(value >> 8);
  }
  void SetU32(uint32_t at, uint32_t value) {
    SetU16(at, static_cast<uint16_t>(value));
    SetU16(at + 2, static_cast<uint16_t>(value >> 16));
  }
  // The last SetIrqEventFds call for `index`, if any.
  std::optional<IrqCall> LastIrqCall(uint32_t index) const {
    for (auto it = irq_calls.rbegin(); it != irq_calls.rend(); ++it) {
      if (it->index == index) return *it;
    }
    return std::nullopt;
  }
};

// Layout of the fake e1000e (Intel 82574L, 8086:10d3), as lspci -vv shows a real one.
struct FakeE1000e {
  static constexpr uint64_t kBar0Size = 128 * 1024;  // registers, 32-bit memory
  static constexpr uint64_t kBar2Size = 32;          // I/O window
  static constexpr uint64_t kBar3Size = 16 * 1024;   // MSI-X, 32-bit memory
  static constexpr uint64_t kRomSize = 64 * 1024;
  static constexpr uint16_t kMsixVectors = 5;
  static constexpr uint64_t kMsixTableOffset = 0;
  static constexpr uint64_t kMsixPbaOffset = 0x2000;
  // Capabilities: PM -> MSI -> PCIe -> vendor-specific (hidden) -> MSI-X, plus AER at 0x100.
  static constexpr uint8_t kPm = 0xc8;
  static constexpr uint8_t kMsi = 0xd0;
  static constexpr uint8_t kPcie = 0xe0;
  static constexpr uint8_t kVendor = 0xf8;
  static constexpr uint8_t kMsix = 0xa0;
  // Sparse mmap areas of BAR0 (a hole at [0x8000, 0x10000) stays trapped) and of BAR3 (vfio-pci
  // leaves out the page holding the MSI-X table).
  static constexpr VfioMmapArea kBar0Areas[] = {{0, 0x8000}, {0x10000, 0x10000}};
  static constexpr VfioMmapArea kBar3Areas[] = {{0x1000, 0x3000}};
};

inline std::shared_ptr<FakeVfioState> MakeE1000eState() {
  using E = FakeE1000e;
  auto state = std::make_shared<FakeVfioState>();
  FakeVfioState& s = *state;
  s.SetU16(PCI_VENDOR_ID, 0x8086);
  s.SetU16(PCI_DEVICE_ID, 0x10d3);
  s.SetU16(PCI_STATUS, PCI_STATUS_CAP_LIST);
  s.SetU32(PCI_CLASS_REVISION, 0x02000000);  // Ethernet controller, revision 0
  s.config[PCI_CACHE_LINE_SIZE] = 0x10;
  // BARs as the host firmware placed them; only the type bits matter to the function.
  s.SetU32(PCI_BASE_ADDRESS_0, 0xfebc0000);
  s.SetU32(PCI_BASE_ADDRESS_2, 0xe001);  // I/O
  s.SetU32(PCI_BASE_ADDRESS_3, 0xfebe0000);
  s.SetU16(PCI_SUBSYSTEM_VENDOR_ID, 0x8086);
  s.SetU16(PCI_SUBSYSTEM_ID, 0xa01f);
  s.SetU32(PCI_ROM_ADDRESS, 0xfeb80000);
  s.config[PCI_CAPABILITY_LIST] = E::kPm;
  s.config[PCI_INTERRUPT_LINE] = 11;
  s.config[PCI_INTERRUPT_PIN] = 1;  // INTA#

  // Power management, version 2, D0-D3hot (PCI PM 1.2 §3.2).
  s.config[E::kPm] = PCI_CAP_ID_PM;
  s.config[E::kPm + 1] = E::kMsi;
  s.SetU16(E::kPm + PCI_PM_PMC, 0xc822);
  s.SetU16(E::kPm + PCI_PM_CTRL, 0x2000);
  // MSI: 64-bit, one vector.
  s.config[E::kMsi] = PCI_CAP_ID_MSI;
  s.config[E::kMsi + 1] = E::kPcie;
  s.SetU16(E::kMsi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT);
  // PCI Express v1 endpoint.
  s.config[E::kPcie] = PCI_CAP_ID_EXP;
  s.config[E::kPcie + 1] = E::kVendor;
  s.SetU16(E::kPcie + PCI_EXP_FLAGS, 0x0001);
  s.SetU32(E::kPcie + PCI_EXP_DEVCAP, 0x00008cc1);
  // A vendor-specific capability the guest must not see.
  s.config[E::kVendor] = PCI_CAP_ID_VNDR;
  s.config[E::kVendor + 1] = E::kMsix;
  s.config[E::kVendor + 2] = 8;  // length
  s.config[E::kVendor + 3] = 0x5a;
  // MSI-X: 5 vectors, table in BAR3 at 0, PBA in BAR3 at 0x2000.
  s.config[E::kMsix] = PCI_CAP_ID_MSIX;
  s.config[E::kMsix + 1] = 0;
  s.SetU16(E::kMsix + PCI_MSIX_FLAGS, E::kMsixVectors - 1);
  s.SetU32(E::kMsix + PCI_MSIX_TABLE, E::kMsixTableOffset | 3);
  s.SetU32(E::kMsix + PCI_MSIX_PBA, E::kMsixPbaOffset | 3);
  // AER as the first extended capability (PCIe Base 4.0 §7.8.4): ID 1, version 1, no next.
  s.SetU32(0x100, 0x00010001);

  auto region = [&s](uint32_t index, uint64_t size, std::vector<VfioMmapArea> areas) {
    s.regions[index] = VfioRegionInfo{.index = index,
                                      .size = size,
                                      .readable = true,
                                      .writable = index != VFIO_PCI_ROM_REGION_INDEX,
                                      .mmap_areas = std::move(areas)};
    std::vector<uint8_t> data(size);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + index);
    s.region_data[index] = std::move(data);
  };
  for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; ++i) {
    region(i, 0, {});
  }
  region(VFIO_PCI_BAR0_REGION_INDEX, E::kBar0Size,
         {std::begin(E::kBar0Areas), std::end(E::kBar0Areas)});
  region(VFIO_PCI_BAR2_REGION_INDEX, E::kBar2Size, {});
  region(VFIO_PCI_BAR3_REGION_INDEX, E::kBar3Size,
         {std::begin(E::kBar3Areas), std::end(E::kBar3Areas)});
  region(VFIO_PCI_ROM_REGION_INDEX, E::kRomSize, {});
  // An option ROM image starts with the 0x55 0xAA signature (PCI Firmware 3.0 §5.1.1).
  s.region_data[VFIO_PCI_ROM_REGION_INDEX][0] = 0x55;
  s.region_data[VFIO_PCI_ROM_REGION_INDEX][1] = 0xaa;
  s.regions[VFIO_PCI_CONFIG_REGION_INDEX] = VfioRegionInfo{.index = VFIO_PCI_CONFIG_REGION_INDEX,
                                                           .size = 4096,
                                                           .readable = true,
                                                           .writable = true,
                                                           .mmap_areas = {}};

  s.irqs[VFIO_PCI_INTX_IRQ_INDEX] = VfioIrqInfo{.index = VFIO_PCI_INTX_IRQ_INDEX,
                                                .count = 1,
                                                .eventfd = true,
                                                .maskable = true,
                                                .automasked = true};
  s.irqs[VFIO_PCI_MSI_IRQ_INDEX] =
      VfioIrqInfo{.index = VFIO_PCI_MSI_IRQ_INDEX, .count = 1, .eventfd = true};
  s.irqs[VFIO_PCI_MSIX_IRQ_INDEX] =
      VfioIrqInfo{.index = VFIO_PCI_MSIX_IRQ_INDEX, .count = E::kMsixVectors, .eventfd = true};
  return state;
}

class FakeVfioDevice : public VfioDevice {
 public:
  explicit FakeVfioDevice(std::shared_ptr<FakeVfioState> state) : state_(std::move(state)) {}

  const std::string& name() const override { return name_; }

  absl::StatusOr<VfioRegionInfo> GetRegionInfo(uint32_t index) override {
    auto it = state_->regions.find(index);
    if (it == state_->regions.end()) return absl::InvalidArgumentError("fake: no such region");
    return it->second;
  }

  absl::StatusOr<VfioIrqInfo> GetIrqInfo(uint32_t index) override {
    auto it = state_->irqs.find(index);
    if (it == state_->irqs.end()) return VfioIrqInfo{.index = index};
    return it->second;
  }

  absl::Status ReadRegion(uint32_t index, uint64_t offset, std::span<uint8_t> data) override {
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
      if (offset + data.size() > state_->config.size()) return OutOfRange(index, offset);
      std::copy_n(state_->config.begin() + offset, data.size(), data.begin());
      return absl::OkStatus();
    }
    std::vector<uint8_t>& contents = state_->region_data[index];
    if (offset + data.size() > contents.size()) return OutOfRange(index, offset);
    std::copy_n(contents.begin() + offset, data.size(), data.begin());
    state_->region_reads.push_back({index, offset, {data.begin(), data.end()}});
    return absl::OkStatus();
  }

  absl::Status WriteRegion(uint32_t index, uint64_t offset,
                           std::span<const uint8_t> data) override {
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
      if (offset + data.size() > state_->config.size()) return OutOfRange(index, offset);
      std::copy(data.begin(), data.end(), state_->config.begin() + offset);
      state_->config_writes.push_back({index, offset, {data.begin(), data.end()}});
      state_->events.push_back(absl::StrFormat("config write %#x", offset));
      return absl::OkStatus();
    }
    std::vector<uint8_t>& contents = state_->region_data[index];
    if (offset + data.size() > contents.size()) return OutOfRange(index, offset);
    std::copy(data.begin(), data.end(), contents.begin() + offset);
    state_->region_writes.push_back({index, offset, {data.begin(), data.end()}});
    return absl::OkStatus();
  }

  // Anonymous memory stands in for the BAR; the caller munmaps it as it would the real one.
  absl::StatusOr<void*> MmapRegion(uint32_t index, uint64_t offset, uint64_t size) override {
    const VfioRegionInfo& info = state_->regions[index];
    const bool inside =
        std::any_of(info.mmap_areas.begin(), info.mmap_areas.end(), [&](const VfioMmapArea& area) {
          return offset >= area.offset && offset + size <= area.offset + area.size;
        });
    if (!inside || size == 0) return absl::InvalidArgumentError("fake: mmap outside an area");
    void* address =
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (address == MAP_FAILED) return absl::InternalError("fake: mmap failed");
    state_->mmaps.push_back({index, offset, size});
    return address;
  }

  absl::Status SetIrqEventFds(uint32_t index, uint32_t start, std::span<const int> fds) override {
    state_->irq_calls.push_back({index, start, {fds.begin(), fds.end()}});
    state_->events.push_back(
        absl::StrFormat("irqs %d start %d count %d", index, start, fds.size()));
    return absl::OkStatus();
  }

  absl::Status SetIrqUnmaskEventFd(uint32_t index, int fd) override {
    state_->unmask_calls.push_back({index, fd});
    state_->events.push_back(absl::StrFormat("unmask %d", index));
    return absl::OkStatus();
  }

  absl::Status Reset() override {
    ++state_->resets;
    state_->events.push_back("reset");
    return absl::OkStatus();
  }
  bool supports_reset() const override { return state_->supports_reset; }

 private:
  static absl::Status OutOfRange(uint32_t index, uint64_t offset) {
    return absl::OutOfRangeError(absl::StrFormat("fake: region %d offset %#x", index, offset));
  }

  std::shared_ptr<FakeVfioState> state_;
  const std::string name_ = "0000:01:00.0";
};

// Records live guest mappings; a Mapping removes itself from the live set when destroyed.
class FakeBarMemoryMapper : public BarMemoryMapper {
 public:
  // Where "map <address>" / "unmap <address>" lines go (optional), e.g. FakeVfioState::events
  // so that they interleave with the device's.
  void set_events(std::vector<std::string>* events) { events_ = events; }

  struct Entry {
    uint64_t guest_address = 0;
    uint64_t size = 0;
    void* host = nullptr;
  };

  absl::StatusOr<std::unique_ptr<Mapping>> Map(uint64_t guest_address, uint64_t size,
                                               void* host) override {
    const int id = next_id_++;
    live_[id] = Entry{guest_address, size, host};
    ++maps_;
    if (events_ != nullptr) events_->push_back(absl::StrFormat("map %#x", guest_address));
    return std::unique_ptr<Mapping>(new FakeMapping(this, id));
  }

  // Live mappings, ordered by guest address.
  std::vector<Entry> live() const {
    std::vector<Entry> entries;
    for (const auto& [id, entry] : live_) entries.push_back(entry);
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.guest_address < b.guest_address; });
    return entries;
  }
  int maps() const { return maps_; }  // Map calls so far

 private:
  class FakeMapping : public Mapping {
   public:
    FakeMapping(FakeBarMemoryMapper* mapper, int id) : mapper_(mapper), id_(id) {}
    ~FakeMapping() override {
      if (mapper_->events_ != nullptr) {
        mapper_->events_->push_back(
            absl::StrFormat("unmap %#x", mapper_->live_.at(id_).guest_address));
      }
      mapper_->live_.erase(id_);
    }

   private:
    FakeBarMemoryMapper* mapper_;
    int id_;
  };

  std::vector<std::string>* events_ = nullptr;
  std::map<int, Entry> live_;
  int next_id_ = 0;
  int maps_ = 0;
};

class FakeVfioVector : public VfioVector {
 public:
  FakeVfioVector() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  int event_fd() const override { return fd_.get(); }
  absl::Status SetMessage(const MsiMessage& message) override {
    messages_.push_back(message);
    return absl::OkStatus();
  }
  absl::Status SetMasked(bool masked) override {
    masks_.push_back(masked);
    return absl::OkStatus();
  }
  const std::vector<MsiMessage>& messages() const { return messages_; }
  // Every SetMasked call, in order.
  const std::vector<bool>& masks() const { return masks_; }

 private:
  UniqueFd fd_;
  std::vector<MsiMessage> messages_;
  std::vector<bool> masks_;
};

class FakeVfioIntx : public VfioIntx {
 public:
  explicit FakeVfioIntx(uint32_t gsi)
      : gsi_(gsi),
        trigger_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        resample_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  int trigger_fd() const override { return trigger_.get(); }
  int resample_fd() const override { return resample_.get(); }
  uint32_t gsi() const { return gsi_; }

 private:
  uint32_t gsi_;
  UniqueFd trigger_;
  UniqueFd resample_;
};

// Hands out fakes and keeps pointers to them; they are owned by whoever received them.
class FakeVfioInterruptSink : public VfioInterruptSink {
 public:
  absl::StatusOr<std::unique_ptr<VfioVector>> AllocateVector() override {
    auto vector = std::make_unique<FakeVfioVector>();
    vectors_.push_back(vector.get());
    return vector;
  }
  absl::StatusOr<std::unique_ptr<VfioIntx>> AllocateIntx(uint32_t gsi) override {
    auto intx = std::make_unique<FakeVfioIntx>(gsi);
    intx_.push_back(intx.get());
    return intx;
  }
  const std::vector<FakeVfioVector*>& vectors() const { return vectors_; }
  const std::vector<FakeVfioIntx*>& intx() const { return intx_; }

 private:
  std::vector<FakeVfioVector*> vectors_;
  std::vector<FakeVfioIntx*> intx_;
};

}  // namespace minivmm

#endif  // MINIVMM_TESTS_UNIT_PASSTHROUGH_FAKE_VFIO_DEVICE_H_
