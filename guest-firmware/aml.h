// Just enough AML (ACPI Machine Language, ACPI 6.4 §20) to describe fixed legacy devices, the
// \_S5 sleep object and a PCI host bridge in a DSDT. Each function appends the encoding of one
// term, or (the resource descriptors) of one descriptor of a ResourceTemplate.
#ifndef MINIVMM_GUEST_FIRMWARE_AML_H_
#define MINIVMM_GUEST_FIRMWARE_AML_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace minivmm::aml {

using Bytes = std::vector<uint8_t>;

// Name (name, value) with value already encoded (Integer, EisaId, Package, Buffer...).
Bytes Name(std::string_view name, const Bytes& value);
// Scope (path) { body } and Device (name) { body }.
Bytes Scope(std::string_view path, const Bytes& body);
Bytes Device(std::string_view name, const Bytes& body);
// Integers, encoded in the shortest form (§20.2.3: ZeroOp, OneOp, Byte/Word/DWord/QWordConst).
Bytes Integer(uint64_t value);
// EISAID("PNP0501") as the compressed 32-bit ID (§19.3.4 EISAID macro).
Bytes EisaId(std::string_view id);
// Buffer () { data } (§20.2.5.4 DefBuffer).
Bytes Buffer(const Bytes& data);
// Package () { elements }, each element already encoded (§20.2.5.4 DefPackage). NumElements is
// one byte, so at most 255 elements.
Bytes Package(const std::vector<Bytes>& elements);
// Package (n) { integers }.
Bytes PackageOfIntegers(const std::vector<uint64_t>& values);

// ---- Resource descriptors (§6.4), the elements of a ResourceTemplate.

// ResourceTemplate () { descriptors }: a Buffer of the descriptors followed by the End Tag
// (§6.4.2.9; its checksum byte 0 means "not checked").
Bytes ResourceTemplate(const std::vector<Bytes>& descriptors);
// IO (Decode16, min, max, alignment, length): I/O port descriptor (§6.4.2.5).
Bytes IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);
// IRQNoFlags () { irq }: IRQ descriptor without the flags byte, i.e. edge-triggered, active
// high: an ISA interrupt (§6.4.2.1). irq is 0..15.
Bytes IrqNoFlags(uint8_t irq);
// Memory32Fixed (ReadWrite, base, length): 32-bit fixed memory range descriptor (§6.4.3.4).
Bytes Memory32Fixed(uint32_t base, uint32_t length);

// Whether an address space descriptor describes a window the device decodes for the devices
// below it (a bridge's producer window) or a range the device itself uses. ACPI 6.4 marks
// General Flags bit 0 "ignored", but ACPICA still reports it and Linux turns producer ranges of
// a PCI root bridge into the bus's windows (IORESOURCE_WINDOW).
enum class ResourceUsage { kProducer, kConsumer };

// Address space descriptors (§6.4.3.5) for fixed ranges [min, max]: MinFixed, MaxFixed,
// PosDecode, granularity 0, no translation, length max - min + 1, no resource source.
// WordBusNumber (ResourceProducer, ...): the bus numbers a host bridge decodes (§6.4.3.5.3).
Bytes WordBusNumber(uint16_t min, uint16_t max);
// WordIO (ResourceProducer, ..., EntireRange): an I/O port window (§6.4.3.5.3).
Bytes WordIo(uint16_t min, uint16_t max);
// DWordMemory / QWordMemory (usage, ..., NonCacheable, ReadWrite) (§6.4.3.5.2, §6.4.3.5.1).
Bytes DWordMemory(ResourceUsage usage, uint32_t min, uint32_t max);
Bytes QWordMemory(ResourceUsage usage, uint64_t min, uint64_t max);

// ResourceTemplate () { IO (Decode16, base, base, 1, length) IRQNoFlags () { irq } }.
// irq < 0 leaves the IRQ descriptor out.
Bytes IoResources(uint16_t base, uint8_t length, int irq);

// PkgLength (§20.2.4) for a body of `body_length` bytes: the length counts its own bytes too.
Bytes PkgLength(size_t body_length);

}  // namespace minivmm::aml

#endif  // MINIVMM_GUEST_FIRMWARE_AML_H_
