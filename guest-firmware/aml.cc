#include "guest-firmware/aml.h"

#include <string>

namespace minivmm::aml {
namespace {

// Opcodes (ACPI 6.4 §20.3, Table 20.x).
constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kNameOp = 0x08, kBytePrefix = 0x0a,
                  kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kQWordPrefix = 0x0e, kScopeOp = 0x10,
                  kBufferOp = 0x11, kPackageOp = 0x12, kExtOpPrefix = 0x5b, kDeviceOp = 0x82,
                  kRootChar = 0x5c;

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

void AppendLittleEndian(Bytes& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// A NameSeg is four characters, padded with '_' (§20.2.2). A leading '\' roots the path.
Bytes NameString(std::string_view path) {
  Bytes out;
  if (!path.empty() && path[0] == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  }
  for (size_t i = 0; i < 4; ++i) out.push_back(i < path.size() ? path[i] : '_');
  return out;
}

// opcode(s) PkgLength body
Bytes WithPkgLength(Bytes opcode, const Bytes& body) {
  Append(opcode, PkgLength(body.size()));
  Append(opcode, body);
  return opcode;
}

}  // namespace

Bytes PkgLength(size_t body_length) {
  // One byte holds lengths up to 63; otherwise the lead byte's bits 7:6 count the extra bytes
  // and its low nibble holds the low 4 bits of the length.
  if (body_length + 1 < 64) return {static_cast<uint8_t>(body_length + 1)};
  for (int extra = 1; extra <= 3; ++extra) {
    const size_t total = body_length + 1 + extra;
    if (total < (size_t{1} << (4 + 8 * extra))) {
      Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0xf))};
      for (int i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
      return out;
    }
  }
  return {};  // > 256 MiB of AML: not something we build
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  Bytes out;
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    AppendLittleEndian(out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    AppendLittleEndian(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    AppendLittleEndian(out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    AppendLittleEndian(out, value, 8);
  }
  return out;
}

Bytes EisaId(std::string_view id) {
  // Three letters in 5 bits each ('A' = 1), then four hex digits; stored big-endian.
  const uint32_t vendor =
      ((id[0] - 0x40) & 0x1f) << 10 | ((id[1] - 0x40) & 0x1f) << 5 | ((id[2] - 0x40) & 0x1f);
  const uint32_t product = std::stoul(std::string(id.substr(3, 4)), nullptr, 16);
  return {kDWordPrefix, static_cast<uint8_t>(vendor >> 8), static_cast<uint8_t>(vendor),
          static_cast<uint8_t>(product >> 8), static_cast<uint8_t>(product)};
}

Bytes Name(std::string_view name, const Bytes& value) {
  Bytes out{kNameOp};
  Append(out, NameString(name));
  Append(out, value);
  return out;
}

Bytes Scope(std::string_view path, const Bytes& body) {
  Bytes inner = NameString(path);
  Append(inner, body);
  return WithPkgLength({kScopeOp}, inner);
}

Bytes Device(std::string_view name, const Bytes& body) {
  Bytes inner = NameString(name);
  Append(inner, body);
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, inner);
}

Bytes PackageOfIntegers(const std::vector<uint64_t>& values) {
  Bytes inner{static_cast<uint8_t>(values.size())};
  for (uint64_t v : values) Append(inner, Integer(v));
  return WithPkgLength({kPackageOp}, inner);
}

Bytes IoResources(uint16_t base, uint8_t length, int irq) {
  Bytes resources = {0x47,
                     0x01,  // I/O port descriptor, 16-bit decode
                     static_cast<uint8_t>(base),
                     static_cast<uint8_t>(base >> 8),
                     static_cast<uint8_t>(base),
                     static_cast<uint8_t>(base >> 8),
                     0x01,
                     length};  // alignment, length
  if (irq >= 0) {
    const uint16_t mask = static_cast<uint16_t>(1u << irq);
    // IRQ descriptor without flags byte: edge-triggered, active high (an ISA IRQ).
    Append(resources, {0x22, static_cast<uint8_t>(mask), static_cast<uint8_t>(mask >> 8)});
  }
  Append(resources, {0x79, 0x00});  // end tag; checksum 0 means "not checked"
  Bytes inner = Integer(resources.size());
  Append(inner, resources);
  return WithPkgLength({kBufferOp}, inner);
}

}  // namespace minivmm::aml
