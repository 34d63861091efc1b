// MsixTable::SaveState/RestoreState: a restored table routes and masks its vectors as the
// guest's own writes would have, and delivers a pending vector only when nothing masks it.
#include <linux/pci_regs.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_state.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/fake_msi.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

constexpr uint16_t kVectors = 4;
constexpr MsiMessage kMessageA = {.address = 0xfee01000, .data = 0x4021};
constexpr MsiMessage kMessageB = {.address = 0x1fee02000, .data = 0x4031};

// A table with its own fake vectors, driven through its guest-facing MMIO interface.
struct Function {
  Function() {
    absl::StatusOr<std::unique_ptr<MsixTable>> created = MsixTable::Create(allocator, kVectors);
    EXPECT_TRUE(created.ok()) << created.status();
    table = *std::move(created);
  }

  FakeMsiInterrupt& vector(size_t i) { return *allocator.allocated()[i]; }

  void Write(size_t index, uint64_t field, uint32_t value) {
    std::array<uint8_t, 4> bytes;
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    table->WriteTable(index * MsixTable::kEntrySize + field, bytes);
  }
  uint32_t Read(size_t index, uint64_t field) {
    std::array<uint8_t, 4> bytes{};
    table->ReadTable(index * MsixTable::kEntrySize + field, bytes);
    return bytes[0] | bytes[1] << 8 | bytes[2] << 16 | uint32_t{bytes[3]} << 24;
  }
  void Program(size_t index, const MsiMessage& message) {
    Write(index, PCI_MSIX_ENTRY_LOWER_ADDR, static_cast<uint32_t>(message.address));
    Write(index, PCI_MSIX_ENTRY_UPPER_ADDR, static_cast<uint32_t>(message.address >> 32));
    Write(index, PCI_MSIX_ENTRY_DATA, message.data);
  }
  void SetMasked(size_t index, bool masked) {
    Write(index, PCI_MSIX_ENTRY_VECTOR_CTRL, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
  }
  uint64_t Pba() {
    std::array<uint8_t, 8> bytes{};
    table->ReadPba(0, bytes);
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) value |= uint64_t{bytes[i]} << (8 * i);
    return value;
  }

  FakeMsiAllocator allocator;
  std::unique_ptr<MsixTable> table;
};

TEST(MsixTableStateTest, RestoredTableRoutesUnmaskedEntriesAndKeepsPendingBits) {
  Function saved_function;
  saved_function.table->SetControl(/*enabled=*/true, /*function_masked=*/false);
  saved_function.Program(0, kMessageA);
  saved_function.SetMasked(0, false);
  saved_function.Program(1, kMessageB);
  saved_function.table->Notify(1);  // entry 1 is masked: latched in the PBA
  ASSERT_EQ(saved_function.Pba(), 0b10u);
  const state::MsixTableState saved = saved_function.table->SaveState();

  Function restored;
  ASSERT_TRUE(restored.table->RestoreState(saved).ok());
  EXPECT_EQ(restored.table->SaveState().SerializeAsString(), saved.SerializeAsString());
  EXPECT_TRUE(restored.table->enabled());
  // Vector 0 ends as the guest's writes left the saved one: routed to A, then unmasked.
  EXPECT_EQ(restored.vector(0).messages(), std::vector<MsiMessage>{kMessageA});
  EXPECT_EQ(restored.vector(0).masks(), std::vector<bool>{false});
  // Vector 1 stays masked and unrouted; its pending bit is latched, not delivered.
  EXPECT_TRUE(restored.vector(1).messages().empty());
  EXPECT_TRUE(restored.vector(1).masks().empty());
  for (size_t i = 0; i < kVectors; ++i) EXPECT_EQ(restored.vector(i).triggers(), 0) << i;
  EXPECT_EQ(restored.Pba(), 0b10u);
  EXPECT_EQ(restored.Read(1, PCI_MSIX_ENTRY_DATA), kMessageB.data);
  EXPECT_EQ(restored.Read(1, PCI_MSIX_ENTRY_UPPER_ADDR), 1u);
  EXPECT_EQ(restored.Read(1, PCI_MSIX_ENTRY_VECTOR_CTRL), unsigned{PCI_MSIX_ENTRY_CTRL_MASKBIT});

  // The device's next interrupt on vector 0 is delivered; the guest's unmask of entry 1
  // routes it and delivers what was pending.
  restored.table->Notify(0);
  EXPECT_EQ(restored.vector(0).triggers(), 1);
  restored.SetMasked(1, false);
  EXPECT_EQ(restored.vector(1).last_message(), kMessageB);
  EXPECT_EQ(restored.vector(1).triggers(), 1);
  EXPECT_EQ(restored.Pba(), 0u);
}

TEST(MsixTableStateTest, PendingVectorUnderFunctionMaskWaitsForTheUnmask) {
  Function saved_function;
  saved_function.table->SetControl(/*enabled=*/true, /*function_masked=*/true);
  saved_function.Program(2, kMessageA);
  saved_function.SetMasked(2, false);
  saved_function.table->Notify(2);
  ASSERT_EQ(saved_function.Pba(), 0b100u);

  Function restored;
  ASSERT_TRUE(restored.table->RestoreState(saved_function.table->SaveState()).ok());
  // An unmasked entry is routed even under the function mask (as WriteTable does), but the
  // vector stays masked and nothing is delivered.
  EXPECT_EQ(restored.vector(2).messages(), std::vector<MsiMessage>{kMessageA});
  EXPECT_TRUE(restored.vector(2).masks().empty());
  EXPECT_EQ(restored.vector(2).triggers(), 0);
  EXPECT_EQ(restored.Pba(), 0b100u);

  restored.table->SetControl(/*enabled=*/true, /*function_masked=*/false);
  EXPECT_EQ(restored.vector(2).masks(), std::vector<bool>{false});
  EXPECT_EQ(restored.vector(2).triggers(), 1);
  EXPECT_EQ(restored.Pba(), 0u);
}

TEST(MsixTableStateTest, PendingVectorThatNothingMasksIsDeliveredOnce) {
  // Not a state the table itself saves (unmasking delivers at once), but one a restore must
  // settle as unmasking would: deliver and clear.
  Function source;
  state::MsixTableState saved = source.table->SaveState();
  saved.set_enabled(true);
  saved.mutable_entries(3)->set_vector_control(0);
  saved.set_pba(0, uint64_t{1} << 3);

  Function restored;
  ASSERT_TRUE(restored.table->RestoreState(saved).ok());
  EXPECT_EQ(restored.vector(3).triggers(), 1);
  EXPECT_EQ(restored.Pba(), 0u);
}

TEST(MsixTableStateTest, RefusesMismatchedSizesAndReservedBitsChangingNothing) {
  Function function;
  function.table->SetControl(/*enabled=*/true, /*function_masked=*/false);
  function.Program(0, kMessageA);
  function.SetMasked(0, false);
  const std::string before = function.table->SaveState().SerializeAsString();
  const state::MsixTableState good = function.table->SaveState();

  state::MsixTableState short_table = good;
  short_table.mutable_entries()->RemoveLast();
  short_table.set_enabled(false);  // would mask vector 0 if applied
  absl::Status status = function.table->RestoreState(short_table);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("entries"));

  state::MsixTableState long_pba = good;
  long_pba.add_pba(0);
  EXPECT_THAT(function.table->RestoreState(long_pba).message(), HasSubstr("pba"));

  state::MsixTableState reserved = good;
  reserved.mutable_entries(1)->set_vector_control(0x3);
  EXPECT_THAT(function.table->RestoreState(reserved).message(),
              HasSubstr("entries[1].vector_control"));

  state::MsixTableState phantom = good;
  phantom.set_pba(0, uint64_t{1} << kVectors);  // a vector the table does not have
  EXPECT_THAT(function.table->RestoreState(phantom).message(), HasSubstr("pba[0]"));

  EXPECT_EQ(function.table->SaveState().SerializeAsString(), before);
  EXPECT_EQ(function.vector(0).messages(), std::vector<MsiMessage>{kMessageA});
  EXPECT_EQ(function.vector(0).masks(), std::vector<bool>{false});
}

}  // namespace
}  // namespace minivmm
