// The ACPI tables minivmm builds: RSDP, XSDT, FADT, DSDT (sleep states) and MADT. The PCI host
// bridge's tables are in acpi_pci_test.cc.
#include "guest-firmware/acpi_tables.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/guest-firmware/acpi_view.h"
#include "vmm/core/memory_layout.h"

namespace minivmm::acpi_testing {
namespace {

TEST_F(AcpiTablesTest, RsdpIsAtTheBaseAddress) {
  EXPECT_EQ(tables_.rsdp_address, kBase);
  EXPECT_EQ(view_.Text(0, 8), "RSD PTR ");
  EXPECT_EQ(view_.U8(15), 2) << "revision 2: the guest must follow the XSDT";
  EXPECT_EQ(view_.U32(20), 36u) << "RSDP length";
}

TEST_F(AcpiTablesTest, RsdpChecksumsCoverTwentyAndThirtySixBytes) {
  EXPECT_EQ(view_.Checksum(0, 20), 0);
  EXPECT_EQ(view_.Checksum(0, 36), 0);
}

TEST_F(AcpiTablesTest, RsdpPointsAtTheXsdt) {
  const size_t xsdt = view_.Xsdt();
  EXPECT_EQ(view_.Length(xsdt), 36u + 2 * 8) << "XSDT holds two 64-bit entries";
}

TEST_F(AcpiTablesTest, XsdtListsTheFadtAndTheMadt) {
  const size_t xsdt = view_.Xsdt();
  EXPECT_EQ(view_.Text(view_.Offset(view_.U64(xsdt + 36), 4), 4), "FACP");
  EXPECT_EQ(view_.Text(view_.Offset(view_.U64(xsdt + 44), 4), 4), "APIC");
}

TEST_F(AcpiTablesTest, EveryTableChecksumsToZero) {
  for (size_t table : {view_.Xsdt(), view_.Fadt(), view_.Madt(), view_.Dsdt()}) {
    EXPECT_EQ(view_.Checksum(table, view_.Length(table)), 0) << view_.Text(table, 4);
  }
}

TEST_F(AcpiTablesTest, FadtIsRevisionSixWithTheFullLength) {
  const size_t fadt = view_.Fadt();
  EXPECT_EQ(view_.Length(fadt), 276u);
  EXPECT_EQ(view_.U8(fadt + 8), 6);
}

TEST_F(AcpiTablesTest, FadtDeclaresHardwareReducedAcpi) {
  EXPECT_TRUE(view_.U32(view_.Fadt() + 112) & (1u << 20));
}

TEST_F(AcpiTablesTest, FadtSleepRegistersAreTheGivenIoPort) {
  const size_t fadt = view_.Fadt();
  for (size_t gas : {fadt + 244, fadt + 256}) {  // SLEEP_CONTROL_REG, SLEEP_STATUS_REG
    EXPECT_EQ(view_.U8(gas), 1) << "GAS space: system I/O";
    EXPECT_EQ(view_.U8(gas + 1), 8) << "register width in bits";
    EXPECT_EQ(view_.U8(gas + 3), 1) << "byte access";
    EXPECT_EQ(view_.U64(gas + 4), kSleepPort);
  }
}

TEST_F(AcpiTablesTest, FadtPointsAtTheDsdtThroughBothFields) {
  const size_t fadt = view_.Fadt();
  const uint64_t x_dsdt = view_.U64(fadt + 140);
  EXPECT_EQ(view_.U32(fadt + 40), x_dsdt) << "32-bit DSDT field disagrees with X_DSDT";
  view_.Table(x_dsdt, "DSDT");
}

TEST_F(AcpiTablesTest, DsdtDefinesTheS5SleepState) {
  // Name (_S5_, Package (4) { 5, 0, 0, 0 }): NameOp, NameString, PackageOp, PkgLength,
  // NumElements, BytePrefix 5, ZeroOp x3 (ACPI 6.4 §20.2.5).
  const std::vector<uint8_t> s5 = {0x08, '_',  'S',  '5',  '_',  0x12, 0x07,
                                   0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};
  const size_t dsdt = view_.Dsdt();
  const std::vector<uint8_t> body = view_.Bytes(dsdt + 36, view_.Length(dsdt) - 36);
  EXPECT_NE(std::search(body.begin(), body.end(), s5.begin(), s5.end()), body.end())
      << "no Name(_S5_, Package(4){5, 0, 0, 0}) in the DSDT";
}

TEST_F(AcpiTablesTest, MadtCarriesTheLocalApicAddress) {
  EXPECT_EQ(view_.U32(view_.Madt() + 36), kLapic);
}

TEST(AcpiTablesBaseTest, PointersFollowTheBaseAddress) {
  constexpr uint64_t kOtherBase = 0x7f000000;
  const AcpiTables tables = BuildAcpiTables(Machine(2, kOtherBase));
  const AcpiView view(tables, kOtherBase);
  EXPECT_EQ(tables.rsdp_address, kOtherBase);
  EXPECT_EQ(view.Checksum(0, 36), 0);
  EXPECT_EQ(view.Text(view.Dsdt(), 4), "DSDT");
  EXPECT_EQ(view.Text(view.Madt(), 4), "APIC");
  EXPECT_NE(tables.blob, BuildAcpiTables(Machine(2, kBase)).blob);
}

TEST(AcpiTablesBaseTest, TablesForTheLargestGuestFitTheBiosArea) {
  const AcpiTables tables = BuildAcpiTables(Machine(layout::kMaxVcpus, layout::kAcpiTablesAddress));
  EXPECT_LE(tables.blob.size(), layout::kAcpiTablesMaxSize);
}

struct MadtEntries {
  std::vector<std::vector<uint8_t>> of_type[5];
};

MadtEntries ParseMadt(const AcpiView& view) {
  MadtEntries entries;
  const size_t madt = view.Madt();
  const size_t end = madt + view.Length(madt);
  for (size_t p = madt + 44; p < end;) {
    const uint8_t type = view.U8(p);
    const uint8_t length = view.U8(p + 1);
    EXPECT_GE(length, 2) << "MADT entry at " << p;
    EXPECT_LE(p + length, end) << "MADT entry at " << p << " runs past the table";
    if (length < 2 || p + length > end) break;
    if (type < 5) entries.of_type[type].push_back(view.Bytes(p, length));
    p += length;
  }
  return entries;
}

uint32_t Le32(const std::vector<uint8_t>& b, size_t offset) {
  return b[offset] | b[offset + 1] << 8 | b[offset + 2] << 16 | uint32_t{b[offset + 3]} << 24;
}

class MadtTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  AcpiTables tables_ = BuildAcpiTables(Machine(GetParam()));
  AcpiView view_{tables_, kBase};
};

TEST_P(MadtTest, HasOneEnabledLocalApicPerCpuWithApicIdsFromZero) {
  const MadtEntries entries = ParseMadt(view_);
  const auto& lapics = entries.of_type[0];
  ASSERT_EQ(lapics.size(), GetParam());
  for (uint32_t cpu = 0; cpu < GetParam(); ++cpu) {
    ASSERT_EQ(lapics[cpu].size(), 8u);
    EXPECT_EQ(lapics[cpu][2], cpu) << "ACPI processor UID";
    EXPECT_EQ(lapics[cpu][3], cpu) << "APIC ID";
    EXPECT_EQ(Le32(lapics[cpu], 4) & 1, 1u) << "CPU " << cpu << " not enabled";
  }
}

TEST_P(MadtTest, HasOneIoapicAtTheGivenAddress) {
  const auto& ioapics = ParseMadt(view_).of_type[1];
  ASSERT_EQ(ioapics.size(), 1u);
  ASSERT_EQ(ioapics[0].size(), 12u);
  EXPECT_EQ(Le32(ioapics[0], 4), kIoapic);
  EXPECT_EQ(Le32(ioapics[0], 8), 0u) << "GSI base";
}

TEST_P(MadtTest, OverridesIsaIrq0ToGsi2) {
  const auto& overrides = ParseMadt(view_).of_type[2];
  ASSERT_EQ(overrides.size(), 1u);
  ASSERT_EQ(overrides[0].size(), 10u);
  EXPECT_EQ(overrides[0][2], 0) << "bus: ISA";
  EXPECT_EQ(overrides[0][3], 0) << "source IRQ";
  EXPECT_EQ(Le32(overrides[0], 4), 2u) << "GSI";
}

TEST_P(MadtTest, ChecksumsToZero) {
  const size_t madt = view_.Madt();
  EXPECT_EQ(view_.Checksum(madt, view_.Length(madt)), 0);
}

INSTANTIATE_TEST_SUITE_P(CpuCounts, MadtTest, ::testing::Values(1u, 4u));

}  // namespace
}  // namespace minivmm::acpi_testing
