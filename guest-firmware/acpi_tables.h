// ACPI tables for a hardware-reduced x86 machine: RSDP, XSDT, FADT, DSDT (with \_S5 so that the
// guest can power off) and MADT (one Local APIC per vCPU, the IOAPIC, the IRQ0 override).
#ifndef MINIVMM_GUEST_FIRMWARE_ACPI_TABLES_H_
#define MINIVMM_GUEST_FIRMWARE_ACPI_TABLES_H_

#include <cstddef>
#include <cstdint>
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

struct AcpiMachine {
  uint32_t num_cpus = 1;
  uint64_t base_address = 0;        // guest-physical address the blob is placed at
  uint16_t sleep_control_port = 0;  // I/O port of the sleep control/status register
  uint8_t s5_sleep_type = 5;        // SLP_TYP that register takes for S5 (soft off), put in \_S5
  uint64_t lapic_address = 0;
  uint64_t ioapic_address = 0;
  std::vector<AcpiLegacyDevice> legacy_devices;
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
