// Little-endian byte assembly for firmware tables (ACPI, MP): fixed layouts written field by
// field, so every offset in a table is visible in the code that builds it.
#ifndef MINIVMM_GUEST_FIRMWARE_BYTE_WRITER_H_
#define MINIVMM_GUEST_FIRMWARE_BYTE_WRITER_H_

#include <cstdint>
#include <string_view>
#include <vector>

namespace minivmm {

class ByteWriter {
 public:
  size_t size() const { return bytes_.size(); }
  std::vector<uint8_t>& bytes() { return bytes_; }

  void U8(uint8_t v) { bytes_.push_back(v); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  // Writes exactly `width` bytes of text, padding with spaces (ACPI OEM IDs are space padded).
  void Text(std::string_view text, size_t width) {
    for (size_t i = 0; i < width; ++i) U8(i < text.size() ? text[i] : ' ');
  }
  void Zeros(size_t count) { bytes_.insert(bytes_.end(), count, 0); }
  void AlignTo(size_t alignment) {
    while (bytes_.size() % alignment != 0) U8(0);
  }
  void PatchU32(size_t offset, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes_[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  void PatchU64(size_t offset, uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes_[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  }

 private:
  void Le(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_BYTE_WRITER_H_
