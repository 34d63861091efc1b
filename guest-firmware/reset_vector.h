// The code at the x86 reset vector (physical 0xFFFF0, real-mode F000:FFF0).
//
// A Linux guest on a hardware-reduced ACPI machine without EFI reboots by switching to real
// mode and jumping to the reset vector, as if into the BIOS (arch/x86/kernel/reboot.c:
// reboot_init() picks BOOT_EFI when efi_reboot_required(), which falls through to BOOT_BIOS).
// There is no BIOS here, so the stub does what a reset does: it pulses the reset line through
// the i8042 (command 0xFE to port 0x64), which minivmm handles as a guest reboot.
#ifndef MINIVMM_GUEST_FIRMWARE_RESET_VECTOR_H_
#define MINIVMM_GUEST_FIRMWARE_RESET_VECTOR_H_

#include <array>
#include <cstdint>

namespace minivmm {

inline constexpr uint64_t kResetVectorAddress = 0xffff0;

// 16 bytes of real-mode code: mov al, 0xfe; out 0x64, al; then hlt forever.
inline constexpr std::array<uint8_t, 16> kResetVectorStub = {
    0xb0, 0xfe,  // mov al, 0xfe      (i8042 command: pulse reset)
    0xe6, 0x64,  // out 0x64, al      (i8042 command port)
    0xf4,        // hlt
    0xeb, 0xfd,  // jmp short hlt
    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,  // nop padding to the 1 MiB boundary
};

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_RESET_VECTOR_H_
