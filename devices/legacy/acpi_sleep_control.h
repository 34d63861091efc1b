// The ACPI hardware-reduced sleep control and status registers (ACPI 6.4 §4.8.3.7), named by
// FADT.SLEEP_CONTROL_REG and FADT.SLEEP_STATUS_REG (§5.2.9). Both live at one byte-wide I/O
// port. Writing SLP_EN with SLP_TYP = S5 powers the machine off; nothing else is supported.
#ifndef MINIVMM_DEVICES_LEGACY_ACPI_SLEEP_CONTROL_H_
#define MINIVMM_DEVICES_LEGACY_ACPI_SLEEP_CONTROL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "vmm/core/bus.h"

namespace minivmm {

// Where the FADT points both registers (an 8-bit System I/O generic address).
inline constexpr uint16_t kAcpiSleepControlPort = 0x3c0;
// SLP_TYP value for S5 (soft off); the DSDT's \_S5 package must carry it as its first element.
inline constexpr uint8_t kAcpiSleepTypeS5 = 5;

class AcpiSleepControl : public BusDevice {
 public:
  // Sleep control register fields (ACPI 6.4 §4.8.3.7): SLP_TYP in bits 4:2, SLP_EN in bit 5.
  static constexpr uint8_t kSleepTypeShift = 2;
  static constexpr uint8_t kSleepTypeMask = 0x7;
  static constexpr uint8_t kSleepEnable = 0x20;

  // power_off runs once, on the first S5 request, on the requesting vCPU thread. It should only
  // request the shutdown (stop vCPUs from another thread), not perform it.
  explicit AcpiSleepControl(std::function<void()> power_off);

  std::string_view Name() const override { return "acpi_sleep_control"; }
  // Reads as 0: the sleep status register's WAK_STS (bit 7) is never set, as the guest never
  // wakes from a sleep state here.
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  const std::function<void()> power_off_;
  std::atomic<bool> powered_off_{false};
};

}  // namespace minivmm

#endif  // MINIVMM_DEVICES_LEGACY_ACPI_SLEEP_CONTROL_H_
