// Reading a fuzz input as a sequence of small operations: each takes the bytes it needs from
// the front, and a short input simply ends the sequence.
#ifndef MINIVMM_TESTS_FUZZ_FUZZ_OPS_H_
#define MINIVMM_TESTS_FUZZ_FUZZ_OPS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace minivmm::fuzzing {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : rest_(data, size) {}

  // The next sizeof(T) bytes as a T, or nullopt when fewer remain.
  template <typename T>
  std::optional<T> Take() {
    if (rest_.size() < sizeof(T)) return std::nullopt;
    T value;
    std::memcpy(&value, rest_.data(), sizeof(T));
    rest_ = rest_.subspan(sizeof(T));
    return value;
  }
  // The next n bytes (fewer if fewer remain).
  std::span<const uint8_t> TakeBytes(size_t n) {
    const std::span<const uint8_t> taken = rest_.first(std::min(n, rest_.size()));
    rest_ = rest_.subspan(taken.size());
    return taken;
  }
  bool empty() const { return rest_.empty(); }

 private:
  std::span<const uint8_t> rest_;
};

// One guest access: an op code, an offset, a size and a value (for writes), as drawn from the
// input. Sizes are 1, 2, 4 or 8 bytes.
struct Access {
  uint8_t op = 0;
  uint32_t offset = 0;
  size_t size = 1;
  uint64_t value = 0;
};

inline std::optional<Access> TakeAccess(FuzzInput& input) {
  const std::optional<uint8_t> op = input.Take<uint8_t>();
  const std::optional<uint16_t> offset = input.Take<uint16_t>();
  const std::optional<uint64_t> value = input.Take<uint64_t>();
  if (!op || !offset || !value) return std::nullopt;
  return Access{.op = static_cast<uint8_t>(*op & 0x3f),
                .offset = *offset,
                .size = size_t{1} << ((*op >> 6) & 3),
                .value = *value};
}

inline void Trap(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace minivmm::fuzzing

#endif  // MINIVMM_TESTS_FUZZ_FUZZ_OPS_H_
