// The guest-physical address map of an x86-64 minivmm guest. One place for every fixed address
// so boot code, firmware tables and devices agree.
#ifndef MINIVMM_VMM_CORE_MEMORY_LAYOUT_H_
#define MINIVMM_VMM_CORE_MEMORY_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "vmm/core/guest_memory.h"

namespace minivmm::layout {

// Low memory used by the boot path (all below the 640 KiB conventional-memory limit).
inline constexpr uint64_t kGdtAddress = 0x500;
inline constexpr uint64_t kZeroPageAddress = 0x7000;
inline constexpr uint64_t kBootStackPointer = 0x8ff0;
inline constexpr uint64_t kPml4Address = 0x9000;
inline constexpr uint64_t kPdptAddress = 0xa000;
inline constexpr uint64_t kPdAddress = 0xb000;  // 4 pages: identity-maps the first 4 GiB
inline constexpr uint64_t kCmdlineAddress = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;
// End of conventional memory; the EBDA/VGA/BIOS area above it is reserved in the e820 map.
inline constexpr uint64_t kLowMemoryEnd = 0x9fc00;
// ACPI tables live in the BIOS read-only area, where Linux also scans for the RSDP
// (ACPI 6.4 §5.2.5.1: 0xE0000-0xFFFFF).
inline constexpr uint64_t kAcpiTablesAddress = 0xe0000;
// Up to the last page below 1 MiB, which holds the reset vector (guest-firmware/reset_vector.h).
inline constexpr uint64_t kAcpiTablesMaxSize = 0x1f000;
// The most vCPUs the machine describes: the ACPI tables (one MADT entry per CPU) must fit
// kAcpiTablesMaxSize for this many, which guest-firmware's tests check. [vm] vcpus stops here.
inline constexpr uint32_t kMaxVcpus = 64;
// The protected-mode kernel is loaded at 1 MiB (Linux boot protocol: code32_start default).
inline constexpr uint64_t kKernelLoadAddress = 0x100000;
inline constexpr uint64_t kHighMemoryStart = 0x100000;

// [3 GiB, 4 GiB) is left for 32-bit MMIO (PCI, IOAPIC, LAPIC); RAM beyond 3 GiB goes above 4 GiB.
inline constexpr uint64_t kMmioHoleStart = 0xc0000000;
inline constexpr uint64_t kMmioHoleEnd = 0x100000000;
// Inside the hole: the window PCI BARs below 4 GiB are assigned from, then the PCI Express
// enhanced configuration (ECAM) area for bus 0: 32 devices x 8 functions x 4 KiB (PCI Express
// Base 4.0 §7.2.2), described to the guest by the ACPI MCFG table and reserved in the e820 map.
inline constexpr uint64_t kPciMmio32Start = 0xc0000000;
inline constexpr uint64_t kPciMmio32Size = 0x20000000;
inline constexpr uint64_t kPciEcamAddress = 0xe0000000;
inline constexpr uint64_t kPciEcamSize = 0x100000;
// 64-bit BARs go above RAM (and never below 4 GiB), in a window of this size.
inline constexpr uint64_t kPciMmio64Size = 64ull << 30;
inline constexpr uint64_t kIoapicAddress = 0xfec00000;
inline constexpr uint64_t kLapicAddress = 0xfee00000;

// RAM regions for a guest with memory_bytes of RAM: one region below the MMIO hole and, when
// memory_bytes exceeds it, a second one starting at 4 GiB.
std::vector<GuestRegionSpec> RamRegions(uint64_t memory_bytes);

// Start of the 64-bit PCI MMIO window for a guest with memory_bytes of RAM: the first 1 GiB
// boundary at or above the end of RAM and at least 4 GiB.
uint64_t PciMmio64Start(uint64_t memory_bytes);

}  // namespace minivmm::layout

#endif  // MINIVMM_VMM_CORE_MEMORY_LAYOUT_H_
