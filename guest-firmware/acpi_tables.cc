#include "guest-firmware/acpi_tables.h"

#include <optional>
#include <string_view>
#include <vector>

#include "guest-firmware/aml.h"
#include "guest-firmware/byte_writer.h"

namespace minivmm {
namespace {

constexpr std::string_view kOemId = "MINVMM";
constexpr std::string_view kOemTableId = "MINIVMM ";
constexpr size_t kChecksumOffset = 9;
constexpr size_t kLengthOffset = 4;
constexpr uint32_t kFadtHwReducedAcpi = 1u << 20;     // FADT Flags, Table 5.10
constexpr uint16_t kBootArchVgaNotPresent = 1u << 2;  // IA-PC boot architecture flags, Table 5.11
constexpr uint8_t kGasSystemIo = 1;                   // Generic Address Structure, Table 5.1
constexpr uint8_t kGasByteAccess = 1;

// Starts a table with the standard header; length and checksum are patched by FinishTable.
size_t BeginTable(ByteWriter& w, std::string_view signature, uint8_t revision) {
  w.AlignTo(16);
  const size_t start = w.size();
  w.Text(signature, 4);
  w.U32(0);  // length
  w.U8(revision);
  w.U8(0);  // checksum
  w.Text(kOemId, 6);
  w.Text(kOemTableId, 8);
  w.U32(1);           // OEM revision
  w.Text("MVMM", 4);  // creator ID
  w.U32(1);           // creator revision
  return start;
}

void FinishTable(ByteWriter& w, size_t start) {
  w.PatchU32(start + kLengthOffset, static_cast<uint32_t>(w.size() - start));
  uint8_t* table = w.bytes().data() + start;
  table[kChecksumOffset] = static_cast<uint8_t>(-AcpiChecksum(table, w.size() - start));
}

void GenericAddress(ByteWriter& w, uint8_t space, uint8_t bit_width, uint8_t access,
                    uint64_t address) {
  w.U8(space);
  w.U8(bit_width);
  w.U8(0);  // bit offset
  w.U8(access);
  w.U64(address);
}

void Append(aml::Bytes& out, const aml::Bytes& more) {
  out.insert(out.end(), more.begin(), more.end());
}

// PCI configuration mechanism #1: CONFIG_ADDRESS at 0xcf8, CONFIG_DATA at 0xcfc-0xcff (PCI Local
// Bus 3.0 §3.2.2.3.2).
constexpr uint16_t kPciConfigPorts = 0xcf8;
constexpr uint8_t kPciConfigPortCount = 8;
// A _PRT Address is the device number in the high word; 0xFFFF in the low word means any
// function (ACPI 6.4 §6.2.13).
constexpr uint32_t kPrtAnyFunction = 0xffff;
constexpr uint8_t kPciSlots = 32;
constexpr uint8_t kPciIntxPins = 4;  // INTA# .. INTD#

// _CRS of the host bridge: the bus numbers it decodes and the windows it forwards (producer
// ranges, which become the root bus's resources), plus the config-mechanism ports it consumes
// itself, as firmware on PCs lists them (Linux's arch/x86/pci/acpi.c recognizes 0xcf8-0xcff and
// leaves it out of the root bus's windows).
aml::Bytes PciHostBridgeResources(const AcpiPciHostBridge& pci) {
  std::vector<aml::Bytes> d = {
      aml::WordBusNumber(0, pci.end_bus),
      aml::IoPort(kPciConfigPorts, kPciConfigPorts, 1, kPciConfigPortCount),
  };
  if (pci.io.size > 0) {
    d.push_back(aml::WordIo(static_cast<uint16_t>(pci.io.start),
                            static_cast<uint16_t>(pci.io.start + pci.io.size - 1)));
  }
  if (pci.mmio32.size > 0) {
    d.push_back(aml::DWordMemory(aml::ResourceUsage::kProducer,
                                 static_cast<uint32_t>(pci.mmio32.start),
                                 static_cast<uint32_t>(pci.mmio32.start + pci.mmio32.size - 1)));
  }
  if (pci.mmio64.size > 0) {
    d.push_back(aml::QWordMemory(aml::ResourceUsage::kProducer, pci.mmio64.start,
                                 pci.mmio64.start + pci.mmio64.size - 1));
  }
  return aml::ResourceTemplate(d);
}

// _PRT (ACPI 6.4 §6.2.13): Package { Address, Pin, Source, Source Index } per slot and pin.
// Source Zero says there is no interrupt link device and Source Index is the GSI itself. Slot 0
// is the host bridge, which raises no interrupt.
aml::Bytes PciRoutingTable() {
  std::vector<aml::Bytes> entries;
  for (uint8_t slot = 1; slot < kPciSlots; ++slot) {
    for (uint8_t pin = 0; pin < kPciIntxPins; ++pin) {
      entries.push_back(
          aml::Package({aml::Integer(uint32_t{slot} << 16 | kPrtAnyFunction), aml::Integer(pin),
                        aml::Integer(0), aml::Integer(PciIntxGsi(slot, pin))}));
    }
  }
  return aml::Package(entries);
}

// \_SB.PCI0. Linux's root bridge driver binds to PNP0A03 (here the _CID) and takes a PNP0A08
// _HID to mean PCI Express: extended config space through the MCFG's ECAM. _SEG (§6.5.6) and
// _BBN (§6.5.5) name segment 0, bus 0, matching the MCFG allocation. No _ADR: a device with a
// _HID should not have one (ACPI 6.4 §6.1), and Linux does not read it for a root bridge.
aml::Bytes PciHostBridgeDevice(const AcpiPciHostBridge& pci) {
  aml::Bytes body = aml::Name("_HID", aml::EisaId("PNP0A08"));
  Append(body, aml::Name("_CID", aml::EisaId("PNP0A03")));
  Append(body, aml::Name("_SEG", aml::Integer(0)));
  Append(body, aml::Name("_UID", aml::Integer(0)));
  Append(body, aml::Name("_BBN", aml::Integer(0)));
  Append(body, aml::Name("_CRS", PciHostBridgeResources(pci)));
  Append(body, aml::Name("_PRT", PciRoutingTable()));
  return aml::Device("PCI0", body);
}

// \_SB.MRES: the ECAM area as a motherboard resource (PNP0C02). Linux uses an MCFG region only
// if firmware reserved it, in the e820 map or, once ACPI is up, in the _CRS of a PNP0C01/PNP0C02
// device (arch/x86/pci/mmconfig-shared.c, is_acpi_reserved); the PNP system driver then claims
// it, so no BAR is ever placed over it.
aml::Bytes EcamReservationDevice(const AcpiPciHostBridge& pci) {
  const uint64_t end = pci.ecam_address + pci.EcamSize();
  const aml::Bytes range =
      end <= (uint64_t{1} << 32)
          ? aml::Memory32Fixed(static_cast<uint32_t>(pci.ecam_address),
                               static_cast<uint32_t>(pci.EcamSize()))
          : aml::QWordMemory(aml::ResourceUsage::kConsumer, pci.ecam_address, end - 1);
  aml::Bytes body = aml::Name("_HID", aml::EisaId("PNP0C02"));
  Append(body, aml::Name("_UID", aml::Integer(0)));
  Append(body, aml::Name("_CRS", aml::ResourceTemplate({range})));
  return aml::Device("MRES", body);
}

// DSDT: \_S5 gives the SLP_TYP value (AcpiMachine::s5_sleep_type) that the sleep control register
// then receives (see devices/legacy/acpi_sleep_control.h). A hardware-reduced guest has no 8259 PIC
// and maps no ISA IRQ on its own, so legacy devices with an interrupt are described here: Linux's
// PNP layer then routes their IRQs through the IOAPIC.
size_t WriteDsdt(ByteWriter& w, const AcpiMachine& m) {
  const size_t start = BeginTable(w, "DSDT", 2);
  aml::Bytes body = aml::Name("_S5_", aml::PackageOfIntegers({m.s5_sleep_type, 0, 0, 0}));
  aml::Bytes devices;
  for (const AcpiLegacyDevice& d : m.legacy_devices) {
    aml::Bytes device = aml::Name("_HID", aml::EisaId(d.eisa_id));
    Append(device, aml::Name("_UID", aml::Integer(d.uid)));
    Append(device, aml::Name("_CRS", aml::IoResources(d.io_base, d.io_length, d.irq)));
    Append(devices, aml::Device(d.name, device));
  }
  if (m.pci) {
    Append(devices, PciHostBridgeDevice(*m.pci));
    Append(devices, EcamReservationDevice(*m.pci));
  }
  Append(body, aml::Scope("\\_SB_", devices));
  for (uint8_t b : body) w.U8(b);
  FinishTable(w, start);
  return start;
}

// FADT revision 6 (ACPI 6.4 §5.2.9, Table 5.9): hardware-reduced, so no PM1/GPE blocks; power
// off goes through SLEEP_CONTROL_REG.
size_t WriteFadt(ByteWriter& w, const AcpiMachine& m, uint64_t dsdt_address) {
  const size_t start = BeginTable(w, "FACP", 6);
  w.U32(0);                                    // 36 FIRMWARE_CTRL
  w.U32(static_cast<uint32_t>(dsdt_address));  // 40 DSDT
  w.Zeros(4);                                  // 44 reserved, PM profile, SCI_INT
  w.Zeros(112 - 48);                           // 48 SMI_CMD .. 111: legacy hardware, unused
  // IAPC_BOOT_ARCH sits at 109; rewrite it inside the zeroed span.
  w.bytes()[start + 109] = kBootArchVgaNotPresent & 0xff;
  w.U32(kFadtHwReducedAcpi);      // 112 Flags
  GenericAddress(w, 0, 0, 0, 0);  // 116 RESET_REG (none: the i8042 resets)
  w.U8(0);                        // 128 RESET_VALUE
  w.U16(0);                       // 129 ARM_BOOT_ARCH
  w.U8(0);                        // 131 FADT minor version
  w.U64(0);                       // 132 X_FIRMWARE_CTRL
  w.U64(dsdt_address);            // 140 X_DSDT
  w.Zeros(244 - 148);             // 148 X_PM1a_EVT_BLK .. X_GPE1_BLK: none
  GenericAddress(w, kGasSystemIo, 8, kGasByteAccess, m.sleep_control_port);  // 244 SLEEP_CONTROL
  GenericAddress(w, kGasSystemIo, 8, kGasByteAccess, m.sleep_control_port);  // 256 SLEEP_STATUS
  w.Text("MINIVMM", 8);  // 268 hypervisor vendor identity
  FinishTable(w, start);
  return start;
}

// MADT (ACPI 6.4 §5.2.12): structure types from Table 5.21.
size_t WriteMadt(ByteWriter& w, const AcpiMachine& m) {
  const size_t start = BeginTable(w, "APIC", 5);
  w.U32(static_cast<uint32_t>(m.lapic_address));
  w.U32(0);  // flags: no PCAT_COMPAT, the hardware-reduced guest does not use the 8259s
  for (uint32_t cpu = 0; cpu < m.num_cpus; ++cpu) {
    w.U8(0);  // Processor Local APIC
    w.U8(8);
    w.U8(static_cast<uint8_t>(cpu));  // ACPI processor UID
    w.U8(static_cast<uint8_t>(cpu));  // APIC ID == vCPU index
    w.U32(1);                         // enabled
  }
  w.U8(1);  // I/O APIC
  w.U8(12);
  w.U8(0);  // I/O APIC ID
  w.U8(0);
  w.U32(static_cast<uint32_t>(m.ioapic_address));
  w.U32(0);  // global system interrupt base
  // KVM routes the PIT's IRQ 0 to IOAPIC pin 2, as on a PC (Interrupt Source Override).
  w.U8(2);
  w.U8(10);
  w.U8(0);   // bus: ISA
  w.U8(0);   // source IRQ
  w.U32(2);  // GSI
  w.U16(0);  // flags: conforms to bus
  // LINT1 of every processor is wired to NMI (Local APIC NMI structure).
  w.U8(4);
  w.U8(6);
  w.U8(0xff);  // all processors
  w.U16(0);
  w.U8(1);  // LINT1
  FinishTable(w, start);
  return start;
}

// MCFG (PCI Firmware 3.2 §4.1.2): the header, 8 reserved bytes, then one allocation per ECAM
// range: base address (of bus 0), PCI segment group, start bus, end bus, 4 reserved bytes.
size_t WriteMcfg(ByteWriter& w, const AcpiPciHostBridge& pci) {
  const size_t start = BeginTable(w, "MCFG", 1);
  w.Zeros(8);
  w.U64(pci.ecam_address);
  w.U16(0);  // segment group, as the host bridge's _SEG
  w.U8(0);   // start bus
  w.U8(pci.end_bus);
  w.U32(0);
  FinishTable(w, start);
  return start;
}

}  // namespace

uint8_t AcpiChecksum(const uint8_t* data, size_t length) {
  uint8_t sum = 0;
  for (size_t i = 0; i < length; ++i) sum += data[i];
  return sum;
}

AcpiTables BuildAcpiTables(const AcpiMachine& m) {
  ByteWriter w;
  // RSDP (ACPI 6.4 §5.2.5.3): revision 2 so Linux follows the 64-bit XSDT.
  w.Text("RSD PTR ", 8);
  w.U8(0);  // checksum of the first 20 bytes
  w.Text(kOemId, 6);
  w.U8(2);    // revision
  w.U32(0);   // RsdtAddress: none, the XSDT is enough for ACPI 2.0+ guests
  w.U32(36);  // length
  w.U64(0);   // XsdtAddress, patched below
  w.U8(0);    // extended checksum
  w.Zeros(3);

  const size_t dsdt = WriteDsdt(w, m);
  const size_t fadt = WriteFadt(w, m, m.base_address + dsdt);
  const size_t madt = WriteMadt(w, m);
  const std::optional<size_t> mcfg =
      m.pci ? std::optional<size_t>(WriteMcfg(w, *m.pci)) : std::nullopt;

  const size_t xsdt = BeginTable(w, "XSDT", 1);
  w.U64(m.base_address + fadt);
  w.U64(m.base_address + madt);
  if (mcfg) w.U64(m.base_address + *mcfg);
  FinishTable(w, xsdt);

  w.PatchU64(24, m.base_address + xsdt);
  uint8_t* rsdp = w.bytes().data();
  rsdp[8] = static_cast<uint8_t>(-AcpiChecksum(rsdp, 20));
  rsdp[32] = static_cast<uint8_t>(-AcpiChecksum(rsdp, 36));
  return {std::move(w.bytes()), m.base_address};
}

}  // namespace minivmm
