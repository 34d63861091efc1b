// libFuzzer target for an emulated PCI function as a guest drives it: config-space reads and
// writes (header, BARs, capability list, MSI-X Message Control) and BAR 0 accesses (virtio
// common config, ISR, device config, notify, MSI-X table and PBA) of a VirtioPciFunction, in
// any order, width and offset. The device behind it does no I/O (no worker threads), so every
// input runs the same way. Checks that the capability list stays walkable, and that BAR 0 is
// decoded exactly where the BAR register and the command register say.
#include <linux/pci_regs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "devices/virtio/virtio_pci_function.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/unit/testing/fake_irq_line.h"
#include "tests/unit/testing/fake_msi.h"
#include "vmm/core/bus.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {
namespace {

using fuzzing::Access;
using fuzzing::FuzzInput;
using fuzzing::Trap;

constexpr int kMaxOps = 256;
constexpr uint64_t kBarAddress = 0xc000'0000;
using Layout = virtio::VirtioPciBarLayout;

// Two queues, a small config space, and no work on activation.
class InertDevice : public virtio::VirtioDevice {
 public:
  std::string_view Name() const override { return "inert"; }
  uint16_t device_type() const override { return 4; }
  uint32_t pci_class_code() const override { return 0xff0000; }
  uint64_t features() const override { return 0x3; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 64}; }
  size_t config_size() const override { return 8; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override {
    Trap(offset + data.size() <= config_size());
  }
  void WriteConfig(uint64_t offset, std::span<const uint8_t> data) override {
    Trap(offset + data.size() <= config_size());
  }
  absl::Status Activate(virtio::Activation activation) override {
    for (const virtio::ActiveQueue& queue : activation.queues) {
      Trap(queue.index < 2 && queue.layout.size <= queue_max_sizes()[queue.index]);
    }
    return absl::OkStatus();
  }
  void Reset() override {}
};

GuestMemory& Memory() {
  static GuestMemory* memory = [] {
    const GuestRegionSpec spec = {0, 1 << 20};
    absl::StatusOr<GuestMemory> created = GuestMemory::Create(std::span(&spec, 1));
    Trap(created.ok());
    return new GuestMemory(std::move(*created));
  }();
  return *memory;
}

uint32_t ConfigRead(PciFunction& function, uint32_t offset, size_t size) {
  std::array<uint8_t, 4> bytes{};
  function.ReadConfig(offset, std::span(bytes.data(), size));
  uint32_t value = 0;
  for (size_t i = 0; i < size; ++i) value |= uint32_t{bytes[i]} << (8 * i);
  return value;
}

// The capability list ends within 48 steps (the most 4-byte-aligned entries 192 bytes hold).
void CheckCapabilityList(PciFunction& function) {
  uint32_t at = ConfigRead(function, PCI_CAPABILITY_LIST, 1);
  for (int steps = 0; at != 0; ++steps) {
    Trap(steps < 48 && at >= PCI_STD_HEADER_SIZEOF && at < 256);
    at = ConfigRead(function, at + PCI_CAP_LIST_NEXT, 1);
  }
}

void Run(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  Bus bus("mmio");
  FakeMsiAllocator msi;
  FakeIrqLine intx;
  const virtio::VirtioPciResources resources = {.memory = &Memory(),
                                                .mmio_bus = &bus,
                                                .write_events = nullptr,
                                                .msi = &msi,
                                                .intx = &intx,
                                                .intx_line = 16,
                                                .bar_address = kBarAddress};
  absl::StatusOr<std::shared_ptr<virtio::VirtioPciFunction>> created =
      virtio::VirtioPciFunction::Create(std::make_unique<InertDevice>(), resources);
  Trap(created.ok());
  PciFunction& function = **created;
  for (int i = 0; i < kMaxOps; ++i) {
    std::optional<Access> access = fuzzing::TakeAccess(input);
    if (!access) break;
    std::array<uint8_t, 8> bytes{};
    for (size_t b = 0; b < access->size; ++b) bytes[b] = access->value >> (8 * b);
    switch (access->op % 4) {
      case 0:
      case 1: {
        // The host bridge hands functions aligned 1-, 2- and 4-byte accesses inside 4 KiB.
        const size_t width = std::min<size_t>(access->size, 4);
        const uint32_t offset = (access->offset % 4096) & ~static_cast<uint32_t>(width - 1);
        if (access->op % 4 == 0) {
          function.ReadConfig(offset, std::span(bytes.data(), width));
        } else {
          function.WriteConfig(offset, std::span(bytes.data(), width));
        }
        break;
      }
      case 2:
        (void)bus.Read(kBarAddress + access->offset % Layout::kBarSize,
                       std::span(bytes.data(), access->size));
        break;
      default:
        (void)bus.Write(kBarAddress + access->offset % Layout::kBarSize,
                        std::span(bytes.data(), access->size));
        break;
    }
    CheckCapabilityList(function);
    // BAR 0 decodes at its register's address exactly while Memory Space is on.
    // (A dword with all its address bits set is the sizing pattern, which never decodes.)
    const bool memory_on = (ConfigRead(function, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY) != 0;
    const uint32_t low = ConfigRead(function, PCI_BASE_ADDRESS_0, 4) & ~0xfu;
    const uint32_t high = ConfigRead(function, PCI_BASE_ADDRESS_1, 4);
    const uint32_t low_address_bits = ~static_cast<uint32_t>(Layout::kBarSize - 1);
    const bool sizing = low == low_address_bits || high == ~0u;
    std::array<uint8_t, 2> probe{};
    const bool decoded = bus.Read((uint64_t{high} << 32 | low) + Layout::kCommonConfig, probe);
    Trap(decoded == (memory_on && !sizing));
  }
}

}  // namespace
}  // namespace minivmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  minivmm::Run(data, size);
  return 0;
}
