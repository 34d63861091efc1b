// ACPI tables for a hardware-reduced x86 machine: RSDP, XSDT, FADT, DSDT (with \_S5 so that the
// guest can power off) and MADT (one Local APIC per vCPU, the IOAPIC, the IRQ0 override); with a
// PCI host bridge, also its DSDT device and the MCFG table.
#ifndef MINIVMM_GUEST_FIRMWARE_ACPI_TABLES_H_
#define MINIVMM_GUEST_FIRMWARE_ACPI_TABLES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace minivmm {

// A fixed ISA device described in the DSDT so the guest's PNP layer finds its ports and IRQ.
struct AcpiLegacyDevice {
  std::string name;     // four-character ACPI name, e.g. "COM1"
  std::string eisa_id;  // PNP ID, e.g. "PNP0501" (16550A-compatible UART)
  uint32_t uid = 0;
  uint16_t io_base = 0;
  uint8_t io_length = 0;
  int irq = -1;  // -1: none
};

// INTx routing on the PCI root bus, one rule for the _PRT the guest reads and the VMM's devices:
// pin `pin` (0 = INTA# .. 3 = INTD#) of the device in slot `slot` raises GSI
// 16 + (slot + pin) mod 8. GSIs 16-23 are the IOAPIC inputs above the ISA IRQs (KVM's IOAPIC has
// 24); rotating by slot spreads devices that all use INTA# over the eight lines, like the
// bridge swizzle (PCI-to-PCI Bridge Architecture 1.2 §9.1). With no link device in the _PRT the
// guest programs these GSIs level-triggered, active low (ACPI 6.4 §6.2.13).
inline constexpr uint32_t kPciIntxFirstGsi = 16;
inline constexpr uint32_t kPciIntxGsiCount = 8;
constexpr uint32_t PciIntxGsi(uint8_t slot, uint8_t pin) {
  return kPciIntxFirstGsi + (uint32_t{slot} + pin) % kPciIntxGsiCount;
}

// [start, start + size) of guest-physical (or I/O port) space; size 0: none.
struct AcpiAddressWindow {
  uint64_t start = 0;
  uint64_t size = 0;
};

// A PCI Express host bridge for segment 0, buses 0..end_bus. The guest finds it as \_SB.PCI0
// (PNP0A08) with its bus range, I/O and memory windows and INTx routing, and its configuration
// space through the MCFG table (ECAM). The ECAM area is also declared a motherboard resource.
struct AcpiPciHostBridge {
  // ECAM base for bus 0: 1 MiB per bus (32 devices x 8 functions x 4 KiB, PCI Express Base 4.0
  // §7.2.2), so the area is EcamSize() bytes.
  uint64_t ecam_address = 0;
  uint8_t end_bus = 0;
  AcpiAddressWindow io;      // ports for I/O BARs; must end at or below 0x10000
  AcpiAddressWindow mmio32;  // memory for BARs below 4 GiB; must end at or below 4 GiB
  AcpiAddressWindow mmio64;  // memory for 64-bit BARs; size 0 leaves it out

  uint64_t EcamSize() const { return (uint64_t{end_bus} + 1) << 20; }
};

struct AcpiMachine {
  uint32_t num_cpus = 1;
  uint64_t base_address = 0;        // guest-physical address the blob is placed at
  uint16_t sleep_control_port = 0;  // I/O port of the sleep control/status register
  uint8_t s5_sleep_type = 5;        // SLP_TYP that register takes for S5 (soft off), put in \_S5
  uint64_t lapic_address = 0;
  uint64_t ioapic_address = 0;
  std::vector<AcpiLegacyDevice> legacy_devices;
  std::optional<AcpiPciHostBridge> pci;  // none: no PCI in the DSDT, no MCFG
};

struct AcpiTables {
  std::vector<uint8_t> blob;  // every table, RSDP first, to be copied to base_address
  uint64_t rsdp_address = 0;
};

AcpiTables BuildAcpiTables(const AcpiMachine& machine);

// Sum of bytes mod 256; a valid ACPI table sums to zero (ACPI 6.4 §5.2.6).
uint8_t AcpiChecksum(const uint8_t* data, size_t length);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_ACPI_TABLES_H_
