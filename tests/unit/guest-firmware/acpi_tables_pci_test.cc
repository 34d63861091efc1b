// The PCI host bridge in ACPI: the MCFG, and the DSDT's \_SB.PCI0 and \_SB.MRES, read back with a
// small AML decoder.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "guest-firmware/acpi_tables.h"
#include "tests/unit/guest-firmware/acpi_view.h"
#include "vmm/core/memory_layout.h"

namespace minivmm::acpi_testing {
namespace {

// ---- The PCI host bridge: MCFG and the DSDT's \_SB.PCI0 and \_SB.MRES.

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMmio64Start = 8 * kGiB;
constexpr uint16_t kIoWindowStart = 0x1000;
constexpr uint16_t kIoWindowSize = 0xf000;

AcpiPciHostBridge HostBridge() {
  AcpiPciHostBridge pci;
  pci.ecam_address = layout::kPciEcamAddress;
  pci.end_bus = 0;
  pci.io = {kIoWindowStart, kIoWindowSize};
  pci.mmio32 = {layout::kPciMmio32Start, layout::kPciMmio32Size};
  pci.mmio64 = {kMmio64Start, layout::kPciMmio64Size};
  return pci;
}

AcpiMachine MachineWithPci(const AcpiPciHostBridge& pci = HostBridge()) {
  AcpiMachine m = Machine(2);
  m.legacy_devices = {{"COM1", "PNP0501", 0, 0x3f8, 8, 4}};
  m.pci = pci;
  return m;
}

// Decodes the few AML encodings the DSDT uses (ACPI 6.4 §20.2).
class AmlReader {
 public:
  explicit AmlReader(std::vector<uint8_t> bytes) : b_(std::move(bytes)) {}

  // PkgLength at `p`: sets `length` (which counts the PkgLength bytes) and returns its size.
  size_t PkgLength(size_t p, size_t& length) const {
    const uint8_t lead = b_.at(p);
    const size_t extra = lead >> 6;
    if (extra == 0) {
      length = lead & 0x3f;
      return 1;
    }
    length = lead & 0x0f;
    for (size_t i = 0; i < extra; ++i) length |= size_t{b_.at(p + 1 + i)} << (4 + 8 * i);
    return 1 + extra;
  }

  // An integer term at `p`; advances `p` past it.
  uint64_t Integer(size_t& p) const {
    const uint8_t op = b_.at(p++);
    int width = 0;
    switch (op) {
      case 0x00:
        return 0;
      case 0x01:
        return 1;
      case 0x0a:
        width = 1;
        break;
      case 0x0b:
        width = 2;
        break;
      case 0x0c:
        width = 4;
        break;
      case 0x0e:
        width = 8;
        break;
      default:
        ADD_FAILURE() << "no integer at " << p - 1 << ": opcode " << int{op};
        return 0;
    }
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = v << 8 | b_.at(p + i);
    p += width;
    return v;
  }

  // The body (after the NameSeg) of Device (name), or nothing.
  std::optional<AmlReader> Device(const std::string& name) const {
    for (size_t p = 0; p + 2 < b_.size(); ++p) {
      if (b_[p] != 0x5b || b_[p + 1] != 0x82) continue;
      size_t length = 0;
      const size_t n = PkgLength(p + 2, length);
      const size_t name_at = p + 2 + n;
      if (name_at + 4 > b_.size() ||
          std::string(b_.begin() + name_at, b_.begin() + name_at + 4) != name) {
        continue;
      }
      const size_t end = p + 2 + length;
      EXPECT_LE(end, b_.size()) << "Device (" << name << ") runs past its scope";
      return AmlReader(
          std::vector<uint8_t>(b_.begin() + name_at + 4, b_.begin() + std::min(end, b_.size())));
    }
    return std::nullopt;
  }

  // Offset of the value of Name (name, ...), or nothing.
  std::optional<size_t> NameValue(const std::string& name) const {
    const std::vector<uint8_t> op = {0x08, uint8_t(name[0]), uint8_t(name[1]), uint8_t(name[2]),
                                     uint8_t(name[3])};
    const auto it = std::search(b_.begin(), b_.end(), op.begin(), op.end());
    if (it == b_.end()) return std::nullopt;
    return static_cast<size_t>(it - b_.begin()) + op.size();
  }

  std::optional<uint64_t> NamedInteger(const std::string& name) const {
    std::optional<size_t> p = NameValue(name);
    if (!p) return std::nullopt;
    return Integer(*p);
  }

  // The data of Name (name, Buffer () {...}).
  std::vector<uint8_t> NamedBuffer(const std::string& name) const {
    const std::optional<size_t> at = NameValue(name);
    EXPECT_TRUE(at.has_value()) << "no Name (" << name << ")";
    if (!at) return {};
    EXPECT_EQ(b_.at(*at), 0x11) << name << " is not a Buffer";
    size_t length = 0;
    size_t p = *at + 1 + PkgLength(*at + 1, length);
    const uint64_t size = Integer(p);
    EXPECT_EQ(p + size, *at + 1 + length) << "BufferSize disagrees with PkgLength";
    return std::vector<uint8_t>(b_.begin() + p, b_.begin() + p + size);
  }

  // The elements of Name (name, Package () { Package () { integers }, ... }).
  std::vector<std::vector<uint64_t>> NamedPackageOfPackages(const std::string& name) const {
    std::vector<std::vector<uint64_t>> out;
    const std::optional<size_t> at = NameValue(name);
    EXPECT_TRUE(at.has_value()) << "no Name (" << name << ")";
    if (!at) return out;
    size_t length = 0;
    EXPECT_EQ(b_.at(*at), 0x12) << name << " is not a Package";
    size_t p = *at + 1 + PkgLength(*at + 1, length);
    const size_t end = *at + 1 + length;
    const size_t count = b_.at(p++);
    for (size_t i = 0; i < count && p < end; ++i) {
      EXPECT_EQ(b_.at(p), 0x12) << name << " element " << i << " is not a Package";
      size_t inner_length = 0;
      const size_t length_at = p + 1;
      p = length_at + PkgLength(length_at, inner_length);
      const size_t inner_end = length_at + inner_length;
      const size_t inner_count = b_.at(p++);
      std::vector<uint64_t> values;
      for (size_t j = 0; j < inner_count; ++j) values.push_back(Integer(p));
      EXPECT_EQ(p, inner_end) << name << " element " << i << ": PkgLength disagrees";
      out.push_back(values);
    }
    EXPECT_EQ(p, end) << name << " has bytes after its last element";
    return out;
  }

  bool Contains(const std::vector<uint8_t>& bytes) const {
    return std::search(b_.begin(), b_.end(), bytes.begin(), bytes.end()) != b_.end();
  }

 private:
  std::vector<uint8_t> b_;
};

// One resource descriptor (ACPI 6.4 §6.4): its tag byte and the bytes after the header.
struct Descriptor {
  uint8_t tag = 0;
  std::vector<uint8_t> data;

  uint64_t Le(size_t offset, int width) const {
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = v << 8 | data.at(offset + i);
    return v;
  }
};

// Splits a ResourceTemplate buffer into descriptors, checking that it ends with the End Tag.
std::vector<Descriptor> Descriptors(const std::vector<uint8_t>& b) {
  std::vector<Descriptor> out;
  for (size_t p = 0; p < b.size();) {
    const uint8_t tag = b[p];
    size_t header = 1, length = tag & 0x07;  // small item: length in bits 2:0
    if (tag & 0x80) {                        // large item: 16-bit length follows
      header = 3;
      length = b.at(p + 1) | b.at(p + 2) << 8;
    }
    EXPECT_LE(p + header + length, b.size()) << "descriptor at " << p << " runs past the buffer";
    if (p + header + length > b.size()) break;
    if (tag == 0x79) {
      EXPECT_EQ(p + 2, b.size()) << "bytes after the End Tag";
      return out;
    }
    out.push_back(
        {tag, std::vector<uint8_t>(b.begin() + p + header, b.begin() + p + header + length)});
    p += header + length;
  }
  ADD_FAILURE() << "no End Tag";
  return out;
}

// An address space descriptor's fields (§6.4.3.5): width-byte _GRA, _MIN, _MAX, _TRA, _LEN
// after the type, general and type-specific flag bytes.
struct AddressSpace {
  uint8_t type, general_flags, type_flags;
  uint64_t granularity, min, max, translation, length;
};

AddressSpace DecodeAddressSpace(const Descriptor& d, int width) {
  EXPECT_EQ(d.data.size(), 3u + 5 * width) << "tag " << int{d.tag};
  return {d.data.at(0),
          d.data.at(1),
          d.data.at(2),
          d.Le(3, width),
          d.Le(3 + width, width),
          d.Le(3 + 2 * width, width),
          d.Le(3 + 3 * width, width),
          d.Le(3 + 4 * width, width)};
}

constexpr uint8_t kWordAddressSpace = 0x88, kDWordAddressSpace = 0x87, kQWordAddressSpace = 0x8a;
constexpr uint8_t kMemory32Fixed = 0x86, kIoPort = 0x47;
constexpr uint8_t kMemoryRange = 0, kIoRange = 1, kBusNumberRange = 2;
// General flags: _MAF | _MIF, positive decode, producer (bit 0 clear).
constexpr uint8_t kFixedProducer = 0x0c, kFixedConsumer = 0x0d;

// EISAID("PNP0A08") etc. as the DWordConst iasl emits (§19.3.4).
std::vector<uint8_t> NamedEisaId(const std::string& name, uint8_t hi, uint8_t lo) {
  return {0x08,
          uint8_t(name[0]),
          uint8_t(name[1]),
          uint8_t(name[2]),
          uint8_t(name[3]),
          0x0c,
          0x41,
          0xd0,
          hi,
          lo};
}

// The DSDT's AML: its bytes after the 36-byte table header (ACPI 6.4 §5.2.6).
AmlReader DsdtAml(const AcpiView& view) {
  const size_t dsdt = view.Dsdt();
  return AmlReader(view.Bytes(dsdt + 36, view.Length(dsdt) - 36));
}

class AcpiPciTest : public ::testing::Test {
 protected:
  AmlReader Dsdt() const { return DsdtAml(view_); }
  AmlReader Pci0() const {
    std::optional<AmlReader> device = Dsdt().Device("PCI0");
    EXPECT_TRUE(device.has_value()) << "no Device (PCI0) in the DSDT";
    return device.value_or(AmlReader({}));
  }
  size_t Mcfg() const { return view_.Table(view_.U64(view_.Xsdt() + 52), "MCFG"); }

  AcpiTables tables_ = BuildAcpiTables(MachineWithPci());
  AcpiView view_{tables_, kBase};
};

TEST_F(AcpiPciTest, XsdtListsTheMcfgAfterTheFadtAndTheMadt) {
  const size_t xsdt = view_.Xsdt();
  EXPECT_EQ(view_.Length(xsdt), 36u + 3 * 8);
  EXPECT_EQ(view_.Text(view_.Fadt(), 4), "FACP");
  EXPECT_EQ(view_.Text(view_.Madt(), 4), "APIC");
  Mcfg();
}

TEST_F(AcpiPciTest, EveryTableChecksumsToZero) {
  for (size_t table : {view_.Xsdt(), view_.Fadt(), view_.Madt(), view_.Dsdt(), Mcfg()}) {
    EXPECT_EQ(view_.Checksum(table, view_.Length(table)), 0) << view_.Text(table, 4);
  }
}

TEST_F(AcpiPciTest, McfgHasOneAllocationForTheEcamOfSegmentZeroBusZero) {
  const size_t mcfg = Mcfg();
  ASSERT_EQ(view_.Length(mcfg), 36u + 8 + 16) << "header, 8 reserved bytes, one allocation";
  EXPECT_EQ(view_.U8(mcfg + 8), 1) << "revision";
  EXPECT_EQ(view_.U64(mcfg + 36), 0u) << "reserved";
  EXPECT_EQ(view_.U64(mcfg + 44), layout::kPciEcamAddress) << "base address";
  EXPECT_EQ(view_.U16(mcfg + 52), 0) << "PCI segment group";
  EXPECT_EQ(view_.U8(mcfg + 54), 0) << "start bus";
  EXPECT_EQ(view_.U8(mcfg + 55), 0) << "end bus";
  EXPECT_EQ(view_.U32(mcfg + 56), 0u) << "reserved";
}

TEST_F(AcpiPciTest, McfgEndBusFollowsTheHostBridge) {
  AcpiPciHostBridge pci = HostBridge();
  pci.end_bus = 7;
  const AcpiTables tables = BuildAcpiTables(MachineWithPci(pci));
  const AcpiView view(tables, kBase);
  const size_t mcfg = view.Table(view.U64(view.Xsdt() + 52), "MCFG");
  EXPECT_EQ(view.U8(mcfg + 55), 7);
  EXPECT_EQ(pci.EcamSize(), 8u << 20);
}

TEST_F(AcpiPciTest, HostBridgeIsAPciExpressRootBridgeOnSegmentZeroBusZero) {
  const AmlReader pci0 = Pci0();
  EXPECT_TRUE(pci0.Contains(NamedEisaId("_HID", 0x0a, 0x08))) << "_HID PNP0A08";
  EXPECT_TRUE(pci0.Contains(NamedEisaId("_CID", 0x0a, 0x03))) << "_CID PNP0A03";
  EXPECT_EQ(pci0.NamedInteger("_SEG"), 0u);
  EXPECT_EQ(pci0.NamedInteger("_BBN"), 0u);
  EXPECT_EQ(pci0.NamedInteger("_UID"), 0u);
  EXPECT_FALSE(pci0.NameValue("_ADR").has_value()) << "_HID and _ADR together (ACPI 6.4 §6.1)";
}

TEST_F(AcpiPciTest, HostBridgeCrsHasBusesConfigPortsAndTheThreeWindows) {
  const std::vector<Descriptor> d = Descriptors(Pci0().NamedBuffer("_CRS"));
  ASSERT_EQ(d.size(), 5u);

  ASSERT_EQ(d[0].tag, kWordAddressSpace);
  const AddressSpace bus = DecodeAddressSpace(d[0], 2);
  EXPECT_EQ(bus.type, kBusNumberRange);
  EXPECT_EQ(bus.general_flags, kFixedProducer);
  EXPECT_EQ(bus.min, 0u);
  EXPECT_EQ(bus.max, 0u);
  EXPECT_EQ(bus.length, 1u);

  // IO (Decode16, 0xCF8, 0xCF8, 1, 8): the configuration mechanism #1 ports.
  EXPECT_EQ(d[1].tag, kIoPort);
  EXPECT_EQ(d[1].data, (std::vector<uint8_t>{0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08}));

  ASSERT_EQ(d[2].tag, kWordAddressSpace);
  const AddressSpace io = DecodeAddressSpace(d[2], 2);
  EXPECT_EQ(io.type, kIoRange);
  EXPECT_EQ(io.general_flags, kFixedProducer);
  EXPECT_EQ(io.type_flags, 3) << "EntireRange";
  EXPECT_EQ(io.min, kIoWindowStart);
  EXPECT_EQ(io.max, 0xffffu);
  EXPECT_EQ(io.length, kIoWindowSize);

  ASSERT_EQ(d[3].tag, kDWordAddressSpace);
  const AddressSpace mmio32 = DecodeAddressSpace(d[3], 4);
  EXPECT_EQ(mmio32.type, kMemoryRange);
  EXPECT_EQ(mmio32.general_flags, kFixedProducer);
  EXPECT_EQ(mmio32.type_flags, 1) << "NonCacheable, ReadWrite";
  EXPECT_EQ(mmio32.min, layout::kPciMmio32Start);
  EXPECT_EQ(mmio32.max, layout::kPciMmio32Start + layout::kPciMmio32Size - 1);
  EXPECT_EQ(mmio32.length, layout::kPciMmio32Size);

  ASSERT_EQ(d[4].tag, kQWordAddressSpace);
  const AddressSpace mmio64 = DecodeAddressSpace(d[4], 8);
  EXPECT_EQ(mmio64.type, kMemoryRange);
  EXPECT_EQ(mmio64.general_flags, kFixedProducer);
  EXPECT_EQ(mmio64.type_flags, 1) << "NonCacheable, ReadWrite";
  EXPECT_EQ(mmio64.min, kMmio64Start);
  EXPECT_EQ(mmio64.max, kMmio64Start + layout::kPciMmio64Size - 1);
  EXPECT_EQ(mmio64.length, layout::kPciMmio64Size);

  for (const AddressSpace& window : {bus, io, mmio32, mmio64}) {
    EXPECT_EQ(window.granularity, 0u);
    EXPECT_EQ(window.translation, 0u);
  }
}

TEST_F(AcpiPciTest, EmptyWindowsAreLeftOutOfTheCrs) {
  AcpiPciHostBridge pci = HostBridge();
  pci.io = {};
  pci.mmio64 = {};
  const AcpiTables tables = BuildAcpiTables(MachineWithPci(pci));
  const AcpiView view(tables, kBase);
  const AmlReader pci0 = DsdtAml(view).Device("PCI0").value();
  const std::vector<Descriptor> d = Descriptors(pci0.NamedBuffer("_CRS"));
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].tag, kWordAddressSpace);
  EXPECT_EQ(d[1].tag, kIoPort);
  EXPECT_EQ(d[2].tag, kDWordAddressSpace);
}

TEST_F(AcpiPciTest, PrtRoutesEveryPinOfSlotsOneToThirtyOneToItsGsi) {
  const std::vector<std::vector<uint64_t>> prt = Pci0().NamedPackageOfPackages("_PRT");
  ASSERT_EQ(prt.size(), 31u * 4);
  size_t i = 0;
  for (uint32_t slot = 1; slot < 32; ++slot) {
    for (uint32_t pin = 0; pin < 4; ++pin, ++i) {
      EXPECT_EQ(prt[i], (std::vector<uint64_t>{slot << 16 | 0xffff, pin, 0, 16 + (slot + pin) % 8}))
          << "slot " << slot << " pin " << pin;
    }
  }
}

TEST(PciIntxGsiTest, RotatesThePinsOfEachSlotOverGsis16To23) {
  static_assert(PciIntxGsi(0, 0) == 16);
  static_assert(PciIntxGsi(1, 0) == 17);
  static_assert(PciIntxGsi(1, 3) == 20);
  static_assert(PciIntxGsi(7, 1) == 16);
  static_assert(PciIntxGsi(31, 3) == 18);
  for (uint8_t slot = 0; slot < 32; ++slot) {
    for (uint8_t pin = 0; pin < 4; ++pin) {
      EXPECT_GE(PciIntxGsi(slot, pin), 16u);
      EXPECT_LE(PciIntxGsi(slot, pin), 23u) << "KVM's IOAPIC has 24 inputs";
    }
  }
}

TEST_F(AcpiPciTest, EcamIsReservedAsAMotherboardResource) {
  const std::optional<AmlReader> mres = Dsdt().Device("MRES");
  ASSERT_TRUE(mres.has_value()) << "no Device (MRES) in the DSDT";
  EXPECT_TRUE(mres->Contains(NamedEisaId("_HID", 0x0c, 0x02))) << "_HID PNP0C02";
  const std::vector<Descriptor> d = Descriptors(mres->NamedBuffer("_CRS"));
  ASSERT_EQ(d.size(), 1u);
  ASSERT_EQ(d[0].tag, kMemory32Fixed);
  ASSERT_EQ(d[0].data.size(), 9u);
  EXPECT_EQ(d[0].data[0], 1) << "ReadWrite";
  EXPECT_EQ(d[0].Le(1, 4), layout::kPciEcamAddress);
  EXPECT_EQ(d[0].Le(5, 4), layout::kPciEcamSize);
}

TEST_F(AcpiPciTest, EcamAboveFourGibIsReservedWithAQWordRange) {
  AcpiPciHostBridge pci = HostBridge();
  pci.ecam_address = 64 * kGiB;
  pci.end_bus = 3;
  const AcpiTables tables = BuildAcpiTables(MachineWithPci(pci));
  const AcpiView view(tables, kBase);
  const AmlReader mres = DsdtAml(view).Device("MRES").value();
  const std::vector<Descriptor> d = Descriptors(mres.NamedBuffer("_CRS"));
  ASSERT_EQ(d.size(), 1u);
  ASSERT_EQ(d[0].tag, kQWordAddressSpace);
  const AddressSpace ecam = DecodeAddressSpace(d[0], 8);
  EXPECT_EQ(ecam.type, kMemoryRange);
  EXPECT_EQ(ecam.general_flags, kFixedConsumer);
  EXPECT_EQ(ecam.min, 64 * kGiB);
  EXPECT_EQ(ecam.length, 4u << 20) << "1 MiB per bus";
}

TEST_F(AcpiPciTest, LegacyDevicesStayInTheDsdt) { EXPECT_TRUE(Dsdt().Device("COM1").has_value()); }

TEST_F(AcpiTablesTest, WithoutPciThereIsNoHostBridgeAndNoMcfg) {
  const AmlReader aml = DsdtAml(view_);
  EXPECT_FALSE(aml.Device("PCI0").has_value());
  EXPECT_FALSE(aml.Device("MRES").has_value());
  const std::string blob(view_.blob().begin(), view_.blob().end());
  EXPECT_EQ(blob.find("MCFG"), std::string::npos);
}

TEST(AcpiTablesBaseTest, TablesWithPciForTheLargestGuestFitTheBiosArea) {
  AcpiMachine m = MachineWithPci();
  m.num_cpus = layout::kMaxVcpus;
  m.base_address = layout::kAcpiTablesAddress;
  EXPECT_LE(BuildAcpiTables(m).blob.size(), layout::kAcpiTablesMaxSize);
}

}  // namespace
}  // namespace minivmm::acpi_testing
