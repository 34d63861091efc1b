// What a vCPU needs in guest memory to start directly in 64-bit mode: a flat GDT and identity
// page tables (Linux boot protocol, "64-bit BOOT PROTOCOL": paging on, identity-mapped).
#ifndef MINIVMM_GUEST_FIRMWARE_LONG_MODE_H_
#define MINIVMM_GUEST_FIRMWARE_LONG_MODE_H_

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {

// Selectors the boot protocol requires: __BOOT_CS = 0x10, __BOOT_DS = 0x18.
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
inline constexpr uint16_t kBootTssSelector = 0x20;

// GDT descriptors: null, null, 64-bit code, flat data, TSS (Intel SDM Vol. 3A §3.4.5).
inline constexpr std::array<uint64_t, 5> kBootGdt = {
    0,
    0,
    0x00af9b000000ffff,  // code: present, DPL0, exec/read, L=1, G=1
    0x00cf93000000ffff,  // data: present, DPL0, read/write, D/B=1, G=1
    0x008f8b000000ffff,  // TSS: present, busy 64-bit TSS; KVM wants a usable TR
};

// The identity map covers the first 4 GiB with 2 MiB pages: enough for the kernel, zero page,
// command line and initramfs wherever the loader places them below 4 GiB.
inline constexpr uint64_t kIdentityMappedBytes = 4ull << 30;

// Writes the GDT and the page tables to their fixed addresses (vmm/core/memory_layout.h).
absl::Status WriteLongModeTables(GuestMemory& memory);

}  // namespace minivmm

#endif  // MINIVMM_GUEST_FIRMWARE_LONG_MODE_H_
