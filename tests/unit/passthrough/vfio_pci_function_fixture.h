// The fixture of the VfioPciFunction tests: a VfioPciFunction over a fake e1000e, driven the
// way firmware and the Linux PCI core drive one. Config space goes through ReadConfig/WriteConfig
// (BAR sizing, decode enables, capability walks, MSI/MSI-X programming); trapped BAR parts go
// through the MMIO and port-I/O buses. No VFIO, no KVM: the device, the guest-memory mapper and
// the interrupt sink are fakes that record what they see.
#ifndef MINIVMM_TESTS_UNIT_PASSTHROUGH_VFIO_PCI_FUNCTION_FIXTURE_H_
#define MINIVMM_TESTS_UNIT_PASSTHROUGH_VFIO_PCI_FUNCTION_FIXTURE_H_

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "passthrough/vfio_pci_function.h"
#include "tests/unit/passthrough/fake_vfio_device.h"
#include "vmm/core/bus.h"

namespace minivmm::vfio_pci_function_testing {

using E = FakeE1000e;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Firmware's assignment: each BAR aligned to its size, the I/O BAR in the PCI port window.
inline constexpr uint64_t kBar0Address = 0xc000'0000;
inline constexpr uint64_t kBar2Address = 0xc000;
inline constexpr uint64_t kBar3Address = 0xc004'0000;
inline constexpr uint64_t kRomAddress = 0xc010'0000;
inline constexpr uint64_t kMovedBar0Address = 0xd000'0000;
inline constexpr uint32_t kIntxGsi = 10;

inline constexpr uint32_t kBar0Region = VFIO_PCI_BAR0_REGION_INDEX;
inline constexpr uint32_t kBar2Region = VFIO_PCI_BAR2_REGION_INDEX;
inline constexpr uint32_t kBar3Region = VFIO_PCI_BAR3_REGION_INDEX;

// x86 MSI messages (Intel SDM vol. 3 §11.11): the LAPIC window, vector in the data.
inline constexpr MsiMessage kMessage0 = {.address = 0xfee00000, .data = 0x4041};
inline constexpr MsiMessage kMessage1 = {.address = 0xfee01000, .data = 0x4051};

class VfioPciFunctionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = MakeE1000eState();
    mapper_.set_events(&state_->events);
  }

  absl::StatusOr<std::shared_ptr<VfioPciFunction>> Build() {
    VfioPciResources resources;
    resources.mmio_bus = &mmio_;
    resources.pio_bus = &pio_;
    resources.memory_mapper = &mapper_;
    resources.interrupts = &sink_;
    resources.intx_gsi_by_pin = {kIntxGsi, kIntxGsi + 1, kIntxGsi + 2, kIntxGsi + 3};
    resources.bar_addresses = {kBar0Address, 0, kBar2Address, kBar3Address};
    resources.rom_address = kRomAddress;
    return VfioPciFunction::Create(std::make_unique<FakeVfioDevice>(state_), resources);
  }

  void Create() {
    absl::StatusOr<std::shared_ptr<VfioPciFunction>> function = Build();
    ASSERT_TRUE(function.ok()) << function.status();
    function_ = *std::move(function);
  }

  uint32_t ReadConfig(uint32_t offset, size_t size = 4) {
    std::array<uint8_t, 4> bytes{};
    function_->ReadConfig(offset, std::span(bytes.data(), size));
    return uint32_t{bytes[0]} | uint32_t{bytes[1]} << 8 | uint32_t{bytes[2]} << 16 |
           uint32_t{bytes[3]} << 24;
  }
  void WriteConfig(uint32_t offset, uint32_t value, size_t size = 4) {
    const std::array<uint8_t, 4> bytes = {
        static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
        static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
    function_->WriteConfig(offset, std::span(bytes.data(), size));
  }

  static std::optional<uint32_t> BusRead(Bus& bus, uint64_t address, size_t size = 4) {
    std::array<uint8_t, 4> bytes{};
    if (!bus.Read(address, std::span(bytes.data(), size))) return std::nullopt;
    return uint32_t{bytes[0]} | uint32_t{bytes[1]} << 8 | uint32_t{bytes[2]} << 16 |
           uint32_t{bytes[3]} << 24;
  }
  static bool BusWrite(Bus& bus, uint64_t address, uint32_t value) {
    const std::array<uint8_t, 4> bytes = {
        static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
        static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
    return bus.Write(address, bytes);
  }

  // What the region's fake contents hold at offset, as a little-endian dword.
  uint32_t RegionDword(uint32_t index, uint64_t offset) {
    const std::vector<uint8_t>& data = state_->region_data[index];
    return uint32_t{data[offset]} | uint32_t{data[offset + 1]} << 8 |
           uint32_t{data[offset + 2]} << 16 | uint32_t{data[offset + 3]} << 24;
  }

  // Guest-physical address of MSI-X table entry `index` (§6.8.2.6), in BAR3.
  static uint64_t MsixEntryAddress(uint16_t index) {
    return kBar3Address + E::kMsixTableOffset + 16 * index;
  }

  // Programs and unmasks MSI-X table entry `index` through the trapped table (§6.8.2.6).
  void ProgramMsixEntry(uint16_t index, const MsiMessage& message) {
    const uint64_t entry = MsixEntryAddress(index);
    ASSERT_TRUE(
        BusWrite(mmio_, entry + PCI_MSIX_ENTRY_LOWER_ADDR, static_cast<uint32_t>(message.address)));
    ASSERT_TRUE(BusWrite(mmio_, entry + PCI_MSIX_ENTRY_UPPER_ADDR,
                         static_cast<uint32_t>(message.address >> 32)));
    ASSERT_TRUE(BusWrite(mmio_, entry + PCI_MSIX_ENTRY_DATA, message.data));
    ASSERT_TRUE(BusWrite(mmio_, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 0));
  }

  void SetMsixControl(uint16_t control) { WriteConfig(E::kMsix + PCI_MSIX_FLAGS, control, 2); }

  // Creates the function, enables memory decode and MSI-X, and programs entry `index`: the
  // sink then holds exactly one vector, the entry's.
  void CreateWithOneMsixEntry(uint16_t index) {
    Create();
    WriteConfig(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    SetMsixControl(PCI_MSIX_FLAGS_ENABLE);
    ProgramMsixEntry(index, kMessage0);
    ASSERT_EQ(sink_.vectors().size(), 1u);
  }

  std::vector<int> VectorFds() const {
    std::vector<int> fds;
    for (const FakeVfioVector* vector : sink_.vectors()) fds.push_back(vector->event_fd());
    return fds;
  }

  Bus mmio_{"mmio"};
  Bus pio_{"pio"};
  std::shared_ptr<FakeVfioState> state_;
  FakeBarMemoryMapper mapper_;
  FakeVfioInterruptSink sink_;
  // Declared last: destroyed before the buses, mapper and sink it uses.
  std::shared_ptr<VfioPciFunction> function_;
};

}  // namespace minivmm::vfio_pci_function_testing

#endif  // MINIVMM_TESTS_UNIT_PASSTHROUGH_VFIO_PCI_FUNCTION_FIXTURE_H_
