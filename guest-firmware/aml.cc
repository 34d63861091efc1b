#include "guest-firmware/aml.h"

#include <string>

namespace minivmm::aml {
namespace {

// Opcodes (ACPI 6.4 §20.3, Table 20.x).
constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kNameOp = 0x08, kBytePrefix = 0x0a,
                  kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kQWordPrefix = 0x0e, kScopeOp = 0x10,
                  kBufferOp = 0x11, kPackageOp = 0x12, kExtOpPrefix = 0x5b, kDeviceOp = 0x82,
                  kRootChar = 0x5c;

// Resource descriptor tags (§6.4.2 small items: name << 3 | length; §6.4.3 large items:
// 0x80 | name, then a 16-bit length of what follows the 3-byte header).
constexpr uint8_t kIrqTag = 0x22, kIoPortTag = 0x47, kEndTag = 0x79, kMemory32FixedTag = 0x86,
                  kDWordAddressTag = 0x87, kWordAddressTag = 0x88, kQWordAddressTag = 0x8a;
constexpr uint8_t kIoDecode16 = 1;  // I/O port descriptor information byte, bit 0
constexpr uint8_t kReadWrite = 1;   // Memory32Fixed information byte / memory _RW, bit 0
// Address space descriptors (§6.4.3.5.1-3): resource type, general flags, type-specific flags.
constexpr uint8_t kMemoryRange = 0, kIoRange = 1, kBusNumberRange = 2;
constexpr uint8_t kConsumer = 1 << 0, kMinFixed = 1 << 2, kMaxFixed = 1 << 3;  // _DEC 0: positive
constexpr uint8_t kIoEntireRange = 3;  // _RNG: both ISA and non-ISA ports
// Memory _MEM (bits 2:1) 0: non-cacheable. Only "prefetchable" (3) changes what Linux does with
// a window (IORESOURCE_PREFETCH, which bars non-prefetchable BARs from it), so plain
// non-cacheable windows take every BAR.
constexpr uint8_t kMemoryNonCacheableReadWrite = kReadWrite;

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

// The Word, DWord and QWord address space descriptors share one layout with `width`-byte
// fields: type, general flags, type-specific flags, _GRA, _MIN, _MAX, _TRA, _LEN. A fixed range
// (_MIF and _MAF set) must have granularity 0 and _LEN = _MAX - _MIN + 1 (§6.4.3.5, Table
// "Valid combinations of address space descriptor fields").
Bytes AddressSpace(uint8_t tag, int width, uint8_t type, ResourceUsage usage, uint8_t specific,
                   uint64_t min, uint64_t max) {
  const uint8_t general =
      kMinFixed | kMaxFixed | (usage == ResourceUsage::kConsumer ? kConsumer : 0);
  Bytes body{type, general, specific};
  AppendLittleEndian(body, 0, width);  // _GRA
  AppendLittleEndian(body, min, width);
  AppendLittleEndian(body, max, width);
  AppendLittleEndian(body, 0, width);  // _TRA: CPU and bus addresses are the same
  AppendLittleEndian(body, max - min + 1, width);
  Bytes out{tag};
  AppendLittleEndian(out, body.size(), 2);
  Append(out, body);
  return out;
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

Bytes Buffer(const Bytes& data) {
  Bytes inner = Integer(data.size());  // BufferSize
  Append(inner, data);
  return WithPkgLength({kBufferOp}, inner);
}

Bytes Package(const std::vector<Bytes>& elements) {
  Bytes inner{static_cast<uint8_t>(elements.size())};  // NumElements
  for (const Bytes& e : elements) Append(inner, e);
  return WithPkgLength({kPackageOp}, inner);
}

Bytes PackageOfIntegers(const std::vector<uint64_t>& values) {
  std::vector<Bytes> elements;
  for (uint64_t v : values) elements.push_back(Integer(v));
  return Package(elements);
}

Bytes ResourceTemplate(const std::vector<Bytes>& descriptors) {
  Bytes resources;
  for (const Bytes& d : descriptors) Append(resources, d);
  Append(resources, {kEndTag, 0x00});
  return Buffer(resources);
}

Bytes IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
  Bytes out{kIoPortTag, kIoDecode16};
  AppendLittleEndian(out, min, 2);
  AppendLittleEndian(out, max, 2);
  Append(out, {alignment, length});
  return out;
}

Bytes IrqNoFlags(uint8_t irq) {
  const uint16_t mask = static_cast<uint16_t>(1u << irq);
  return {kIrqTag, static_cast<uint8_t>(mask), static_cast<uint8_t>(mask >> 8)};
}

Bytes Memory32Fixed(uint32_t base, uint32_t length) {
  Bytes out{kMemory32FixedTag, 9, 0, kReadWrite};
  AppendLittleEndian(out, base, 4);
  AppendLittleEndian(out, length, 4);
  return out;
}

Bytes WordBusNumber(uint16_t min, uint16_t max) {
  return AddressSpace(kWordAddressTag, 2, kBusNumberRange, ResourceUsage::kProducer, 0, min, max);
}

Bytes WordIo(uint16_t min, uint16_t max) {
  return AddressSpace(kWordAddressTag, 2, kIoRange, ResourceUsage::kProducer, kIoEntireRange, min,
                      max);
}

Bytes DWordMemory(ResourceUsage usage, uint32_t min, uint32_t max) {
  return AddressSpace(kDWordAddressTag, 4, kMemoryRange, usage, kMemoryNonCacheableReadWrite, min,
                      max);
}

Bytes QWordMemory(ResourceUsage usage, uint64_t min, uint64_t max) {
  return AddressSpace(kQWordAddressTag, 8, kMemoryRange, usage, kMemoryNonCacheableReadWrite, min,
                      max);
}

Bytes IoResources(uint16_t base, uint8_t length, int irq) {
  std::vector<Bytes> descriptors = {IoPort(base, base, 1, length)};
  if (irq >= 0) descriptors.push_back(IrqNoFlags(static_cast<uint8_t>(irq)));
  return ResourceTemplate(descriptors);
}

}  // namespace minivmm::aml
