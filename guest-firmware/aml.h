// Just enough AML (ACPI Machine Language, ACPI 6.4 §20) to describe fixed legacy devices and the
// \_S5 sleep object in a DSDT. Each function appends the encoding of one term.
#ifndef MINIVMM_GUEST_FIRMWARE_AML_H_
#define MINIVMM_GUEST_FIRMWARE_AML_H_

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
// Package (n) { integers }.
Bytes PackageOfIntegers(const std::vector<uint64_t>& values);
// ResourceTemplate () { IO (Decode16, base, base, 1, length) IRQNoFlags () { irq } } as a
// Buffer (§6.4.2.5 I/O port descriptor, §6.4.2.1 IRQ descriptor, §6.4.2.9 end tag).
// irq < 0 leaves the IRQ descriptor out.
Bytes IoResources(uint16_t base, uint8_t length, int irq);

// PkgLength (§20.2.4) for a body of `body_length` bytes: the length counts its own bytes too.
Bytes PkgLength(size_t body_length);

}  // namespace minivmm::aml

#endif  // MINIVMM_GUEST_FIRMWARE_AML_H_
