// Registers and commands of the 8042 keyboard controller as PC firmware and Linux use them
// (IBM PC AT Technical Reference, "Keyboard Controller"; Linux drivers/input/serio/i8042.h).
#ifndef MINIVMM_DEVICES_LEGACY_I8042_REGISTERS_H_
#define MINIVMM_DEVICES_LEGACY_I8042_REGISTERS_H_

#include <cstdint>

namespace minivmm::i8042 {

// Offsets from the device's base port 0x60: data at 0x60, status (read) / command (write) at
// 0x64.
inline constexpr uint64_t kData = 0;
inline constexpr uint64_t kStatusCommand = 4;

// Status register.
inline constexpr uint8_t kStatusOutputFull = 0x01;      // a byte waits at the data port
inline constexpr uint8_t kStatusInputFull = 0x02;       // never set: input is consumed at once
inline constexpr uint8_t kStatusSystemFlag = 0x04;      // copy of command byte bit 2
inline constexpr uint8_t kStatusLastWasCommand = 0x08;  // last write went to 0x64
inline constexpr uint8_t kStatusNotInhibited = 0x10;    // keyboard inhibit switch off

// Command byte ("controller configuration byte"): keyboard interrupt enabled, POST passed.
inline constexpr uint8_t kCommandByteSystemFlag = 0x04;
inline constexpr uint8_t kCommandByteDefault = 0x01 | kCommandByteSystemFlag;

// Output port: bit 0 drives the CPU's reset line (active low), bit 1 gates A20.
inline constexpr uint8_t kOutputPortNotReset = 0x01;
inline constexpr uint8_t kOutputPortA20 = 0x02;

// Controller commands written to 0x64.
inline constexpr uint8_t kCmdReadCommandByte = 0x20;
inline constexpr uint8_t kCmdWriteCommandByte = 0x60;  // parameter follows at 0x60
inline constexpr uint8_t kCmdSelfTest = 0xaa;
inline constexpr uint8_t kCmdReadOutputPort = 0xd0;
inline constexpr uint8_t kCmdWriteOutputPort = 0xd1;  // parameter follows at 0x60
// 0xf0-0xff pulse the output-port lines whose bits are clear in the low nibble for 6 us;
// 0xfe pulses bit 0 alone, the reset line.
inline constexpr uint8_t kCmdPulseOutputPort = 0xf0;
inline constexpr uint8_t kCmdPulseReset = 0xfe;

inline constexpr uint8_t kSelfTestPassed = 0x55;

}  // namespace minivmm::i8042

#endif  // MINIVMM_DEVICES_LEGACY_I8042_REGISTERS_H_
