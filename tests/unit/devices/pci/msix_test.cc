#include "devices/pci/msix.h"

#include <linux/pci_regs.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "devices/pci/pci_config_space.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/fake_msi.h"

namespace minivmm {
namespace {

constexpr MsiMessage kMessageA = {.address = 0xfee01000, .data = 0x4021};
constexpr MsiMessage kMessageB = {.address = 0x1fee02000, .data = 0x4031};

TEST(MsixCapabilityBodyTest, EncodesSizeBarsAndOffsets) {
  absl::StatusOr<MsixCapabilityBytes> cap = MsixCapabilityBody(3, 1, 0x2000, 2, 0x3000);
  ASSERT_TRUE(cap.ok()) << cap.status();
  // Message Control (Table Size = N - 1), Table Offset/BIR, PBA Offset/BIR (§6.8.2).
  const std::array<uint8_t, 10> kBody = {0x02, 0x00, 0x01, 0x20, 0x00,
                                         0x00, 0x02, 0x30, 0x00, 0x00};
  const std::array<uint8_t, 10> kMask = {0x00, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(cap->body, kBody);
  EXPECT_EQ(cap->writable_mask, kMask);

  absl::StatusOr<MsixCapabilityBytes> full = MsixCapabilityBody(2048, 0, 0, 0, 0x8000);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->body[0] | full->body[1] << 8, PCI_MSIX_FLAGS_QSIZE);
}

TEST(MsixCapabilityBodyTest, RejectsOutOfRangeArguments) {
  EXPECT_FALSE(MsixCapabilityBody(0, 0, 0, 0, 0x1000).ok());
  EXPECT_FALSE(MsixCapabilityBody(2049, 0, 0, 0, 0x1000).ok());
  EXPECT_FALSE(MsixCapabilityBody(1, 6, 0, 0, 0x1000).ok());
  EXPECT_FALSE(MsixCapabilityBody(1, 0, 0, 7, 0x1000).ok());
  EXPECT_FALSE(MsixCapabilityBody(1, 0, 0x4, 0, 0x1000).ok());
  EXPECT_FALSE(MsixCapabilityBody(1, 0, 0, 0, 0x1001).ok());
}

TEST(MsixCapabilityBodyTest, OnlyEnableAndFunctionMaskAreGuestWritable) {
  PciConfigSpace config(PciIds{.vendor_id = 0x1af4, .device_id = 0x1041});
  absl::StatusOr<MsixCapabilityBytes> cap = MsixCapabilityBody(4, 1, 0, 1, 0x800);
  ASSERT_TRUE(cap.ok());
  absl::StatusOr<uint8_t> offset =
      config.AddCapability(PCI_CAP_ID_MSIX, cap->body, cap->writable_mask);
  ASSERT_TRUE(offset.ok());
  const std::array<uint8_t, 4> ones = {0xff, 0xff, 0xff, 0xff};
  config.Write(*offset, ones);
  config.Write(*offset + PCI_MSIX_TABLE, ones);
  EXPECT_EQ(config.ReadU16(*offset + PCI_MSIX_FLAGS),
            PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 3);
  EXPECT_EQ(config.ReadU32(*offset + PCI_MSIX_TABLE), 1u);
  EXPECT_EQ(config.ReadU32(*offset + PCI_MSIX_PBA), 0x801u);
  EXPECT_EQ(config.raw()[*offset], PCI_CAP_ID_MSIX);
}

class MsixTableTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kVectors = 4;

  MsixTableTest() {
    absl::StatusOr<std::unique_ptr<MsixTable>> table = MsixTable::Create(allocator_, kVectors);
    EXPECT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);
  }

  FakeMsiInterrupt& vector(size_t i) { return *allocator_.allocated()[i]; }

  static uint64_t EntryOffset(size_t index, uint64_t field) {
    return index * MsixTable::kEntrySize + field;
  }
  void WriteTable32(uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> bytes;
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    table_->WriteTable(offset, bytes);
  }
  void WriteTable64(uint64_t offset, uint64_t value) {
    std::array<uint8_t, 8> bytes;
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    table_->WriteTable(offset, bytes);
  }
  static uint64_t Decode(std::span<const uint8_t> bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) value |= uint64_t{bytes[i]} << (8 * i);
    return value;
  }
  uint32_t ReadTable32(uint64_t offset) {
    std::array<uint8_t, 4> bytes{};
    table_->ReadTable(offset, bytes);
    return static_cast<uint32_t>(Decode(bytes));
  }
  uint64_t ReadTable64(uint64_t offset) {
    std::array<uint8_t, 8> bytes{};
    table_->ReadTable(offset, bytes);
    return Decode(bytes);
  }
  uint64_t ReadPba64(uint64_t offset) {
    std::array<uint8_t, 8> bytes{};
    table_->ReadPba(offset, bytes);
    return Decode(bytes);
  }
  uint32_t ReadPba32(uint64_t offset) {
    std::array<uint8_t, 4> bytes{};
    table_->ReadPba(offset, bytes);
    return static_cast<uint32_t>(Decode(bytes));
  }

  void Program(size_t index, const MsiMessage& message) {
    WriteTable64(EntryOffset(index, PCI_MSIX_ENTRY_LOWER_ADDR), message.address);
    WriteTable32(EntryOffset(index, PCI_MSIX_ENTRY_DATA), message.data);
  }
  void SetMasked(size_t index, bool masked) {
    WriteTable32(EntryOffset(index, PCI_MSIX_ENTRY_VECTOR_CTRL),
                 masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
  }

  FakeMsiAllocator allocator_;
  std::unique_ptr<MsixTable> table_;
};

TEST_F(MsixTableTest, SizesFollowTheVectorCount) {
  EXPECT_EQ(table_->table_size(), kVectors);
  EXPECT_EQ(table_->table_bytes(), kVectors * 16u);
  EXPECT_EQ(table_->pba_bytes(), 8u);
  EXPECT_EQ(allocator_.allocated().size(), kVectors);

  FakeMsiAllocator big_allocator;
  absl::StatusOr<std::unique_ptr<MsixTable>> big = MsixTable::Create(big_allocator, 65);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ((*big)->pba_bytes(), 16u);
}

TEST_F(MsixTableTest, CreateFailsForBadSizeOrExhaustedAllocator) {
  FakeMsiAllocator allocator;
  EXPECT_EQ(MsixTable::Create(allocator, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MsixTable::Create(allocator, 2049).status().code(), absl::StatusCode::kInvalidArgument);
  FakeMsiAllocator small(/*limit=*/2);
  EXPECT_EQ(MsixTable::Create(small, 3).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(MsixTableTest, EntriesStartMaskedWithZeroMessage) {
  for (size_t i = 0; i < kVectors; ++i) {
    EXPECT_EQ(ReadTable64(EntryOffset(i, PCI_MSIX_ENTRY_LOWER_ADDR)), 0u);
    EXPECT_EQ(ReadTable32(EntryOffset(i, PCI_MSIX_ENTRY_DATA)), 0u);
    EXPECT_EQ(ReadTable32(EntryOffset(i, PCI_MSIX_ENTRY_VECTOR_CTRL)),
              unsigned{PCI_MSIX_ENTRY_CTRL_MASKBIT});
  }
  EXPECT_FALSE(table_->enabled());
}

TEST_F(MsixTableTest, TableRoundTripsDwordAndQwordAccesses) {
  WriteTable64(EntryOffset(1, PCI_MSIX_ENTRY_LOWER_ADDR), 0x00000001fee01000);
  WriteTable32(EntryOffset(1, PCI_MSIX_ENTRY_DATA), 0x4021);
  EXPECT_EQ(ReadTable32(EntryOffset(1, PCI_MSIX_ENTRY_LOWER_ADDR)), 0xfee01000u);
  EXPECT_EQ(ReadTable32(EntryOffset(1, PCI_MSIX_ENTRY_UPPER_ADDR)), 0x1u);
  EXPECT_EQ(ReadTable64(EntryOffset(1, PCI_MSIX_ENTRY_DATA)), 0x0000000100004021u);

  WriteTable32(EntryOffset(1, PCI_MSIX_ENTRY_UPPER_ADDR), 0);
  WriteTable64(EntryOffset(1, PCI_MSIX_ENTRY_DATA), 0xfffffffe00004022);
  EXPECT_EQ(ReadTable64(EntryOffset(1, PCI_MSIX_ENTRY_LOWER_ADDR)), 0xfee01000u);
  EXPECT_EQ(ReadTable32(EntryOffset(1, PCI_MSIX_ENTRY_DATA)), 0x4022u);
  EXPECT_EQ(ReadTable32(EntryOffset(1, PCI_MSIX_ENTRY_VECTOR_CTRL)), 0u)
      << "reserved vector-control bits read 0";
  // Other entries are untouched.
  EXPECT_EQ(ReadTable64(EntryOffset(0, PCI_MSIX_ENTRY_LOWER_ADDR)), 0u);
  EXPECT_EQ(ReadTable64(EntryOffset(2, PCI_MSIX_ENTRY_LOWER_ADDR)), 0u);
}

TEST_F(MsixTableTest, MessageIsRoutedOnUnmaskAndOnChangeWhileUnmasked) {
  Program(0, kMessageA);
  EXPECT_TRUE(vector(0).messages().empty()) << "a masked entry is not routed";

  SetMasked(0, false);
  EXPECT_EQ(vector(0).messages(), std::vector<MsiMessage>{kMessageA});

  // A qword address write is one change, not two.
  WriteTable64(EntryOffset(0, PCI_MSIX_ENTRY_LOWER_ADDR), kMessageB.address);
  WriteTable32(EntryOffset(0, PCI_MSIX_ENTRY_DATA), kMessageB.data);
  EXPECT_EQ(vector(0).messages(),
            (std::vector<MsiMessage>{kMessageA, {kMessageB.address, kMessageA.data}, kMessageB}));

  // Rewriting the same values, or masking and unmasking, routes nothing new.
  Program(0, kMessageB);
  SetMasked(0, true);
  SetMasked(0, false);
  EXPECT_EQ(vector(0).messages().size(), 3u);

  // A change while masked is routed at the next unmask.
  SetMasked(0, true);
  Program(0, kMessageA);
  EXPECT_EQ(vector(0).messages().size(), 3u);
  SetMasked(0, false);
  EXPECT_EQ(vector(0).last_message(), kMessageA);
  EXPECT_TRUE(vector(1).messages().empty());
}

TEST_F(MsixTableTest, FailedRouteIsRetriedAtTheNextUnmask) {
  Program(2, kMessageA);
  vector(2).set_set_message_error(absl::InternalError("KVM_SET_GSI_ROUTING: No space left"));
  SetMasked(2, false);
  EXPECT_TRUE(vector(2).messages().empty());
  vector(2).set_set_message_error(absl::OkStatus());
  SetMasked(2, true);
  SetMasked(2, false);
  EXPECT_EQ(vector(2).messages(), std::vector<MsiMessage>{kMessageA});
}

TEST_F(MsixTableTest, NotifyDeliversUnmaskedVectorAndLatchesMaskedOne) {
  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  Program(0, kMessageA);
  Program(3, kMessageB);
  SetMasked(0, false);

  table_->Notify(0);
  EXPECT_EQ(vector(0).triggers(), 1);
  EXPECT_EQ(ReadPba64(0), 0u);

  table_->Notify(3);
  table_->Notify(3);
  EXPECT_EQ(vector(3).triggers(), 0);
  EXPECT_EQ(ReadPba64(0), 0b1000u);
  EXPECT_EQ(ReadPba32(0), 0b1000u);

  // Unmasking delivers the pending vector once and clears its bit.
  SetMasked(3, false);
  EXPECT_EQ(vector(3).triggers(), 1);
  EXPECT_EQ(ReadPba64(0), 0u);
  EXPECT_EQ(vector(3).last_message(), kMessageB);
}

TEST_F(MsixTableTest, FunctionMaskHoldsVectorsPendingUntilCleared) {
  Program(1, kMessageA);
  SetMasked(1, false);
  table_->SetControl(/*enabled=*/true, /*function_masked=*/true);
  table_->Notify(1);
  table_->Notify(2);  // entry 2 is masked on its own as well
  EXPECT_EQ(vector(1).triggers(), 0);
  EXPECT_EQ(ReadPba64(0), 0b110u);

  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  EXPECT_EQ(vector(1).triggers(), 1);
  EXPECT_EQ(vector(2).triggers(), 0);
  EXPECT_EQ(ReadPba64(0), 0b100u) << "entry 2 stays pending until unmasked";

  // Unmasking an entry while the function is masked routes it but does not deliver.
  table_->SetControl(/*enabled=*/true, /*function_masked=*/true);
  SetMasked(2, false);
  EXPECT_EQ(vector(2).triggers(), 0);
  EXPECT_EQ(vector(2).messages().size(), 1u);
  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  EXPECT_EQ(vector(2).triggers(), 1);
  EXPECT_EQ(ReadPba64(0), 0u);
}

TEST_F(MsixTableTest, DisabledTableNeitherDeliversNorLatches) {
  Program(0, kMessageA);
  SetMasked(0, false);
  table_->Notify(0);
  SetMasked(1, true);
  table_->Notify(1);
  EXPECT_EQ(vector(0).triggers(), 0);
  EXPECT_EQ(ReadPba64(0), 0u);

  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  EXPECT_TRUE(table_->enabled());
  EXPECT_EQ(vector(0).triggers(), 0);
  table_->Notify(0);
  EXPECT_EQ(vector(0).triggers(), 1);
  table_->SetControl(/*enabled=*/false, /*function_masked=*/false);
  EXPECT_FALSE(table_->enabled());
  table_->Notify(0);
  EXPECT_EQ(vector(0).triggers(), 1);
}

TEST_F(MsixTableTest, PbaCoversVectorsBeyondTheFirstQword) {
  FakeMsiAllocator allocator;
  absl::StatusOr<std::unique_ptr<MsixTable>> table = MsixTable::Create(allocator, 100);
  ASSERT_TRUE(table.ok());
  (*table)->SetControl(/*enabled=*/true, /*function_masked=*/false);
  (*table)->Notify(70);
  (*table)->Notify(99);
  std::array<uint8_t, 4> dword{};
  (*table)->ReadPba(8, dword);
  EXPECT_EQ(dword, (std::array<uint8_t, 4>{0x40, 0, 0, 0}));
  (*table)->ReadPba(12, dword);
  EXPECT_EQ(dword, (std::array<uint8_t, 4>{0x08, 0, 0, 0})) << "vector 99 = qword 1, bit 35";
  const std::array<uint8_t, 4> unmask = {0, 0, 0, 0};
  (*table)->WriteTable(70 * MsixTable::kEntrySize + PCI_MSIX_ENTRY_VECTOR_CTRL, unmask);
  EXPECT_EQ(allocator.allocated()[70]->triggers(), 1);
  (*table)->ReadPba(8, dword);
  EXPECT_EQ(dword, (std::array<uint8_t, 4>{0, 0, 0, 0}));
}

TEST_F(MsixTableTest, OddAccessesAreIgnored) {
  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  // Past the end, misaligned, and wrong sizes.
  WriteTable32(table_->table_bytes(), 0);
  WriteTable32(EntryOffset(0, PCI_MSIX_ENTRY_VECTOR_CTRL) + 2, 0);
  WriteTable64(EntryOffset(0, PCI_MSIX_ENTRY_UPPER_ADDR), 0);
  const std::array<uint8_t, 2> word = {0, 0};
  table_->WriteTable(EntryOffset(0, PCI_MSIX_ENTRY_VECTOR_CTRL), word);
  const std::array<uint8_t, 1> byte = {0};
  table_->WriteTable(EntryOffset(0, PCI_MSIX_ENTRY_VECTOR_CTRL), byte);
  EXPECT_EQ(ReadTable32(EntryOffset(0, PCI_MSIX_ENTRY_VECTOR_CTRL)),
            unsigned{PCI_MSIX_ENTRY_CTRL_MASKBIT});

  table_->Notify(kVectors);
  table_->Notify(0xffff);
  EXPECT_EQ(ReadPba64(0), 0u);

  std::array<uint8_t, 4> data = {0xaa, 0xaa, 0xaa, 0xaa};
  table_->ReadTable(table_->table_bytes(), data);
  EXPECT_EQ(data, (std::array<uint8_t, 4>{}));
  data.fill(0xaa);
  table_->ReadTable(2, data);
  EXPECT_EQ(data, (std::array<uint8_t, 4>{}));
  data.fill(0xaa);
  table_->ReadPba(table_->pba_bytes(), data);
  EXPECT_EQ(data, (std::array<uint8_t, 4>{}));
  std::array<uint8_t, 8> qword{};
  table_->ReadPba(4, qword);  // misaligned qword
  EXPECT_EQ(qword, (std::array<uint8_t, 8>{}));
}

TEST_F(MsixTableTest, ConcurrentNotifyAndTableWritesAreSafe) {
  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  for (size_t i = 0; i < kVectors; ++i) Program(i, kMessageA);

  constexpr int kRounds = 20000;
  std::atomic<bool> done = false;
  std::thread device([&] {
    for (int round = 0; round < kRounds; ++round) table_->Notify(round % (kVectors + 1));
    done = true;
  });
  int round = 0;
  while (!done) {
    size_t index = round % kVectors;
    SetMasked(index, round % 2 == 0);
    WriteTable32(EntryOffset(index, PCI_MSIX_ENTRY_DATA), round);
    table_->SetControl(/*enabled=*/true, /*function_masked=*/round % 3 == 0);
    ++round;
  }
  device.join();

  // Afterwards, unmasking everything flushes whatever is still pending, exactly once.
  for (size_t i = 0; i < kVectors; ++i) SetMasked(i, false);
  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  EXPECT_EQ(ReadPba64(0), 0u);
  int delivered = 0;
  for (size_t i = 0; i < kVectors; ++i) delivered += vector(i).triggers();
  EXPECT_GT(delivered, 0);
  EXPECT_LE(delivered, kRounds);
}

// A passed-through device's vector holds what the device raised while masked; the PBA shows it
// for as long as the entry stays masked, next to the table's own pending bits.
TEST_F(MsixTableTest, PbaShowsInterruptsAMaskedVectorHolds) {
  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  Program(1, kMessageA);
  Program(3, kMessageB);
  SetMasked(3, false);
  vector(1).set_holds_interrupt(true);
  vector(3).set_holds_interrupt(true);  // unmasked: its irqfd delivers, nothing is held
  table_->Notify(2);                    // masked: latched by the table
  EXPECT_EQ(ReadPba64(0), 0b0110u);
  EXPECT_EQ(ReadPba32(0), 0b0110u);
  vector(1).set_holds_interrupt(false);
  EXPECT_EQ(ReadPba64(0), 0b0100u);
}

}  // namespace
}  // namespace minivmm

namespace minivmm {
namespace {

// A vector that the device signals without the table (passthrough) learns every change of its
// effective mask: entry mask, function mask and enable, each only when the result changes.
TEST_F(MsixTableTest, VectorsLearnTheirEffectiveMask) {
  EXPECT_TRUE(vector(0).masks().empty()) << "entries start masked; nothing to say yet";
  Program(0, kMessageA);
  SetMasked(0, false);
  EXPECT_TRUE(vector(0).masks().empty()) << "MSI-X still disabled";

  table_->SetControl(/*enabled=*/true, /*function_masked=*/false);
  EXPECT_EQ(vector(0).masks(), std::vector<bool>{false});
  EXPECT_EQ(vector(0).last_message(), kMessageA) << "routed before it is unmasked";
  EXPECT_TRUE(vector(1).masks().empty()) << "entry 1 is still masked";

  SetMasked(0, true);
  SetMasked(0, true);  // no change, no call
  EXPECT_EQ(vector(0).masks(), (std::vector<bool>{false, true}));
  SetMasked(0, false);
  table_->SetControl(true, /*function_masked=*/true);
  table_->SetControl(true, false);
  table_->SetControl(/*enabled=*/false, false);
  EXPECT_EQ(vector(0).masks(), (std::vector<bool>{false, true, false, true, false, true}));
}

}  // namespace
}  // namespace minivmm
