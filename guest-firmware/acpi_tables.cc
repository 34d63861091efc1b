#include "guest-firmware/acpi_tables.h"

#include <string_view>

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

// DSDT: \_S5 gives the SLP_TYP value (AcpiMachine::s5_sleep_type) that the sleep control register
// then receives (see devices/acpi_sleep_control.h). A hardware-reduced guest has no 8259 PIC and
// maps no ISA IRQ on its own, so legacy devices with an interrupt are described here: Linux's PNP
// layer then routes their IRQs through the IOAPIC.
size_t WriteDsdt(ByteWriter& w, const AcpiMachine& m) {
  const size_t start = BeginTable(w, "DSDT", 2);
  aml::Bytes body = aml::Name("_S5_", aml::PackageOfIntegers({m.s5_sleep_type, 0, 0, 0}));
  aml::Bytes devices;
  for (const AcpiLegacyDevice& d : m.legacy_devices) {
    aml::Bytes device = aml::Name("_HID", aml::EisaId(d.eisa_id));
    const aml::Bytes uid = aml::Name("_UID", aml::Integer(d.uid));
    device.insert(device.end(), uid.begin(), uid.end());
    const aml::Bytes crs = aml::Name("_CRS", aml::IoResources(d.io_base, d.io_length, d.irq));
    device.insert(device.end(), crs.begin(), crs.end());
    const aml::Bytes node = aml::Device(d.name, device);
    devices.insert(devices.end(), node.begin(), node.end());
  }
  const aml::Bytes scope = aml::Scope("\\_SB_", devices);
  body.insert(body.end(), scope.begin(), scope.end());
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

  const size_t xsdt = BeginTable(w, "XSDT", 1);
  w.U64(m.base_address + fadt);
  w.U64(m.base_address + madt);
  FinishTable(w, xsdt);

  w.PatchU64(24, m.base_address + xsdt);
  uint8_t* rsdp = w.bytes().data();
  rsdp[8] = static_cast<uint8_t>(-AcpiChecksum(rsdp, 20));
  rsdp[32] = static_cast<uint8_t>(-AcpiChecksum(rsdp, 36));
  return {std::move(w.bytes()), m.base_address};
}

}  // namespace minivmm
