#include "devices/legacy/acpi_sleep_control.h"

#include <algorithm>
#include <utility>

#include "vmm/base/log.h"

namespace minivmm {

AcpiSleepControl::AcpiSleepControl(std::function<void()> power_off)
    : power_off_(std::move(power_off)) {}

void AcpiSleepControl::Read(uint64_t /*offset*/, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
}

void AcpiSleepControl::Write(uint64_t /*offset*/, std::span<const uint8_t> data) {
  if (data.size() != 1) {
    MINIVMM_LOG_GUEST_ERROR("acpi: %d-byte write to sleep control ignored", data.size());
    return;
  }
  uint8_t value = data[0];
  // Writes without SLP_EN are routine: OSPM clears WAK_STS (bit 7, write-1-to-clear) before
  // sleeping and writes SLP_TYP alone when preparing to wake.
  if ((value & kSleepEnable) == 0) return;
  uint8_t sleep_type = (value >> kSleepTypeShift) & kSleepTypeMask;
  if (sleep_type != kAcpiSleepTypeS5) {
    static LogBudget budget(1);
    if (budget.Take()) {
      Log(LogLevel::kWarning, "guest: acpi: sleep type %d requested; only S5 (%d) is supported",
          sleep_type, kAcpiSleepTypeS5);
    }
    return;
  }
  if (powered_off_.exchange(true)) return;
  Log(LogLevel::kInfo, "guest requested power off (ACPI S5)");
  if (power_off_) power_off_();
}

}  // namespace minivmm
